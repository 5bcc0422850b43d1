"""Failures, trigger rules, branching and short-circuits: the scheduling decisions Kyte's
runner must take exactly as ``dag.test()`` takes them (tests/test_example_dags.py)."""

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, chain, task

with DAG("kyte_trigger_rules", schedule=None, tags=["kyte-test"]) as dag:

    @task
    def extract():
        return [1, 2, 3]

    @task
    def validate(rows):
        raise ValueError(f"{len(rows)} rows failed validation")

    @task(trigger_rule="one_failed")
    def alert():
        return "paged"

    @task(trigger_rule="all_done")
    def cleanup():
        return "cleaned"

    @task(trigger_rule="none_failed")
    def publish():
        return "published"

    @task(trigger_rule="always")
    def audit():
        return "audited"

    @task.branch
    def pick():
        return "left"

    @task.short_circuit
    def gate():
        return False

    rows = extract()
    checked = validate(rows)
    checked >> [alert(), cleanup(), publish()]
    # A long chain behind the failure: upstream_failed must reach its end.
    chain(checked, *[EmptyOperator(task_id=f"after_{i}") for i in range(5)])
    audit()
    left, right = EmptyOperator(task_id="left"), EmptyOperator(task_id="right")
    join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
    rows >> pick() >> [left, right] >> join
    gate() >> EmptyOperator(task_id="gated") >> EmptyOperator(task_id="gated_more")
