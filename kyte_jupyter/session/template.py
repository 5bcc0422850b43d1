"""Build the template metastore: ``python -m kyte_jupyter.session.template`` (AIRFLOW_HOME set).

Run once per Airflow version by :meth:`kyte_jupyter.session.SessionStore.template_db`, in a
subprocess so that neither the server nor a kernel imports Airflow with the wrong home.
"""

from __future__ import annotations

import os
import sqlite3


def main() -> None:
    """Migrate the metastore ``$AIRFLOW_HOME/airflow.cfg`` names; a SQLite one goes to WAL."""
    from ..bridge.metastore import migrate_new_metastore

    migrate_new_metastore()
    path = os.path.join(os.environ["AIRFLOW_HOME"], "airflow.db")
    if not os.path.isfile(path):
        return  # a PostgreSQL template database: nothing more to do
    con = sqlite3.connect(path)
    try:
        # WAL lets the server read task states while a kernel writes them.
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


if __name__ == "__main__":
    main()
