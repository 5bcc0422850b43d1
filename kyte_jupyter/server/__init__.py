"""The Kyte jupyter-server extension (never imports Airflow; see docs/design.md)."""
