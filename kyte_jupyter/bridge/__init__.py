"""The only package of Kyte that imports Airflow's internals (anything beyond ``airflow.sdk``).

:mod:`.metastore` holds the SQL Kyte runs on Airflow's own tables (crash recovery), with
plain ``sqlite3`` so that it can run before Airflow is imported.
"""
