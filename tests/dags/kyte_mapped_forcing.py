"""A mapped task next to independent tasks: forced outcomes on mapped and unmapped tasks of
one DAG must settle as ``dag.test()`` settles them (tests/test_whatif_oracle.py). Forcing
``--succeed leak`` here once crashed Airflow's ``_get_ready_tis`` and left the run running."""

from airflow.sdk import DAG, task

with DAG("kyte_mapped_forcing", schedule=None, tags=["kyte-test"]) as dag:

    @task
    def extract():
        return [1, 2, 3]

    @task
    def square(x):
        return x * x

    @task
    def total(values):
        return sum(values)

    @task
    def leak():
        return "independent"

    @task(trigger_rule="all_done")
    def report():
        return "reported"

    total(square.expand(x=extract())) >> report()
    leak()
