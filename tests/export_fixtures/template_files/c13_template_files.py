# Case 13: templates kept in files next to the DAG file: a .sql file rendered through
#          templates_dict / templates_exts, and a .sh file given as bash_command.
# Source: apache/airflow#29883 (jinja2 TemplateNotFound: sql/sample.sql for an example DAG),
#         apache/airflow#2742 (TemplateNotFound for a .sql file path), astronomer/dag-factory#95
#         (template_searchpath not honoured). Jinja looks for template files relative to the
#         DAG file's folder (plus template_searchpath).
# Checks: the rendered SQL and script output; where Kyte looks for the files when the DAG lives
#         in a notebook cell (files placed next to the notebook); the error message when a file
#         is not found.
# Expected (dag.test with report.sql and hello.sh next to the DAG file): render_sql returns
#         "SELECT * FROM sales WHERE day = '<ds>' AND region = 'north'"; run_script prints
#         "hello from script on <ds_nodash>"; run success.
# (Copied from ../shared/cases/13_template_files.py, lines wrapped at 100 columns.)
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def show(templates_dict=None, **_):
    print("SQL", templates_dict["query"])
    return templates_dict["query"]


with DAG(
    "c13_template_files",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"region": "north"},
):
    render_sql = PythonOperator(
        task_id="render_sql",
        python_callable=show,
        templates_dict={"query": "report.sql"},
        templates_exts=[".sql"],
    )
    run_script = BashOperator(task_id="run_script", bash_command="hello.sh")
    render_sql >> run_script
