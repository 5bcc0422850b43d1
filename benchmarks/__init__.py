"""Kyte's benchmarks against Airflow's own tools; run ``python -m benchmarks``."""
