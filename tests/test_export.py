"""Export without Airflow: file layout, what goes in and what stays out, every bad input.

The Airflow round trip (a stock DagBag parses the files into the kernel's DAGs) is in
test_export_roundtrip.py; these tests only read the generated code, so they are fast.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbconvert.utils.exceptions import ConversionException

from kyte_jupyter import cli
from kyte_jupyter.export import (
    HEADER_MARK,
    ExportError,
    KyteDagExporter,
    OutputPathError,
    build_dag_files,
    export_dags,
    export_notebook,
    resolve_output_dir,
    written_by_kyte,
)

sys.path.insert(0, str(Path(__file__).parent / "export_fixtures"))

from notebooks import PIPELINE, build, include, md  # noqa: E402

IMPORTS = include(
    "from airflow.providers.standard.operators.bash import BashOperator\n"
    "from airflow.sdk import task\n"
)


def export(cells: list[str], dag_id: str | None = None, **kw: object) -> dict[str, str]:
    return export_dags(build(cells, **kw), "nb.ipynb", dag_id)  # type: ignore[arg-type]


def problems(cells: list[str], dag_id: str | None = None) -> list[str]:
    with pytest.raises(ExportError) as info:
        export(cells, dag_id)
    assert str(info.value).startswith("Cannot export nb.ipynb:")
    return info.value.problems


def body_after_header(source: str) -> str:
    lines = source.split("\n")
    assert lines[0].startswith(HEADER_MARK)
    end = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "\n".join(lines[end:]).strip("\n") + "\n"


def dag_call(source: str) -> dict[str, str]:
    """The keyword arguments of the generated ``with DAG(...)``, as source text."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.With):
            call = node.items[0].context_expr
            assert isinstance(call, ast.Call) and ast.unparse(call.func) == "DAG"
            return {k.arg or "": ast.unparse(k.value) for k in call.keywords}
    raise AssertionError("no with DAG(...) in the file")


def strings(source: str) -> set[str]:
    return {
        n.value
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


# ---- grown DAGs (%%dag DAG_ID) ------------------------------------------------------------


def test_grown_dag_cells_go_into_one_with_dag_in_notebook_order() -> None:
    out = export(
        [
            IMPORTS,
            "%%dag etl --schedule @daily --start-date 2024-01-31 --tags a,b\n"
            'first = BashOperator(task_id="first", bash_command="echo 1")',
            '%%dag other\nx = BashOperator(task_id="x", bash_command="echo x")',
            "%%dag etl --schedule @hourly --description 'Two cells'\n"
            'second = BashOperator(task_id="second", bash_command="echo 2")\n'
            "first >> second",
        ]
    )
    assert list(out) == ["etl", "other"]
    etl = out["etl"]
    assert dag_call(etl) == {
        "dag_id": "'etl'",
        "schedule": "'@hourly'",  # the later cell's explicit option wins, as in the kernel
        "start_date": "pendulum.datetime(2024, 1, 31, tz='UTC')",
        "tags": "['a', 'b']",
        "description": "'Two cells'",
    }
    assert etl.index('task_id="first"') < etl.index('task_id="second"')
    assert "import pendulum\n" in etl and "from airflow.sdk import DAG\n" in etl
    assert "\n    first >> second\n" in etl
    assert 'task_id="x"' not in etl


def test_grown_dag_without_options_has_schedule_none_and_no_start_date() -> None:
    src = export([IMPORTS, '%%dag bare\nBashOperator(task_id="t", bash_command="echo")'])["bare"]
    assert dag_call(src) == {"dag_id": "'bare'", "schedule": "None"}
    assert "pendulum" not in src


def test_default_args_json_becomes_a_python_literal() -> None:
    cell = (
        "%%dag d --default-args "
        '\'{"retries": 2, "email_on_failure": false, "owner": null, "pool": "p", "x": 1.5}\'\n'
        'BashOperator(task_id="t", bash_command="echo")'
    )
    src = export([IMPORTS, cell])["d"]
    args = ast.literal_eval(dag_call(src)["default_args"])
    assert args == {"retries": 2, "email_on_failure": False, "owner": None, "pool": "p", "x": 1.5}


def test_long_default_args_are_wrapped_one_key_per_line() -> None:
    value = {f"key_{i}": "v" * 10 for i in range(8)}
    cell = (
        f"%%dag d --default-args '{json.dumps(value)}'\nBashOperator(task_id='t', bash_command='e')"
    )
    src = export([IMPORTS, cell])["d"]
    assert '    default_args={\n        "key_0": "vvvvvvvvvv",\n' in src
    assert max(len(line) for line in src.splitlines()) <= 100


def test_multiline_strings_keep_their_exact_text_when_indented() -> None:
    sql = "\n    SELECT *\n      FROM t\n    WHERE day = '{{ ds }}'\n"
    bash = "\nset -e\n  echo {{ ds }}\\\n  done\n"
    cell = (
        "%%dag s\n"
        f'a = BashOperator(task_id="a", bash_command="""{bash}""")\n'
        f'b = BashOperator(task_id="b", bash_command="""{sql}""")\n'
        'c = BashOperator(task_id="c", bash_command=f"""{a.task_id}\n  x\n""")\n'
        "def f():\n"
        '    """Doc\n    string."""\n'
        "    return 1\n"
    )
    src = export([IMPORTS, cell])["s"]
    assert bash.replace("\\\n", "") in strings(src)
    assert sql in strings(src)
    assert "Doc\n    string." in strings(src)  # a docstring's text does not change either
    assert '\n    c = BashOperator(task_id="c", bash_command=f"""{a.task_id}\n  x\n""")' in src
    compile(src, "s.py", "exec")


def test_body_imports_join_the_imports_at_the_top() -> None:
    src = export(
        [
            IMPORTS,
            "%%dag d\nimport os\nfrom airflow.sdk import task_group\n\n"
            'BashOperator(task_id="t", bash_command=os.sep)',
        ]
    )["d"]
    head = src.split("\n\n\n")[0]
    assert "import os\n\nfrom airflow.providers" in head
    assert "from airflow.sdk import DAG, task, task_group" not in head  # task is unused: pruned
    assert "from airflow.sdk import DAG, task_group" in head
    assert "\n    import" not in src


# ---- whole-DAG-file cells (%%dag alone) ----------------------------------------------------

FILE_CELL = '''\
"""A DAG file."""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("alpha", schedule=None) as dag:
    EmptyOperator(task_id="start")
'''


def test_whole_file_cell_is_exported_verbatim_under_the_header() -> None:
    out = export([md("# title"), "x = 1", "%%dag\n" + FILE_CELL, "%run_dag alpha"])
    assert list(out) == ["alpha"]
    assert body_after_header(out["alpha"]) == FILE_CELL
    assert out["alpha"].startswith(f"{HEADER_MARK} from the notebook nb.ipynb.\n")


def test_cell_with_several_dags_is_one_file_selected_by_any_of_its_ids() -> None:
    cell = (
        "%%dag\nfrom airflow.sdk import DAG, dag\n"
        "from airflow.providers.standard.operators.empty import EmptyOperator\n"
        'with DAG("one"):\n    EmptyOperator(task_id="a")\n'
        'two = DAG(dag_id="two")\nEmptyOperator(task_id="b", dag=two)\n'
        '@dag(dag_id="three")\ndef make():\n    EmptyOperator(task_id="c")\nmake()\n'
        "@dag\ndef four():\n    EmptyOperator(task_id='d')\nfour()\n"
        "@dag\ndef never_called():\n    pass\n"
    )
    files = build_dag_files(build([cell]), "nb.ipynb")
    assert [(f.filename, f.dag_ids) for f in files] == [("one.py", ("one", "two", "three", "four"))]
    assert '"one", "two", "three", "four"' in files[0].source.split("\n")[1]
    assert list(export([cell], dag_id="three")) == ["one"]


def test_dag_ids_through_constants_and_aliases_are_found() -> None:
    out = export(
        [
            include('PREFIX = "team_"'),
            "%%dag\nfrom airflow.sdk import DAG as D, dag as make_dag\n"
            'NAME = PREFIX + "daily"\n'
            "with D(NAME):\n    pass\n"
            '@make_dag(dag_id=f"{PREFIX}weekly")\ndef w():\n    pass\nw()\n',
        ]
    )
    assert list(out) == ["team_daily"]
    assert '"team_daily", "team_weekly"' in out["team_daily"]


def test_future_imports_move_to_the_top_when_include_cells_come_first() -> None:
    out = export(
        [include("from __future__ import annotations\nimport json"), "%%dag\n" + FILE_CELL]
    )
    src = out["alpha"]
    code = body_after_header(src)
    assert code.startswith("from __future__ import annotations\n\n")
    assert code.count("from __future__") == 1
    assert "import json" not in src  # unused shared import
    compile(src, "alpha.py", "exec")


# ---- what is left out and shared ------------------------------------------------------------


def test_scratch_cells_markdown_and_other_magics_are_left_out() -> None:
    cells = [
        md("# Notes: SECRET_MARKDOWN"),
        IMPORTS,
        "scratch_value = 41  # SCRATCH",
        "%run_task d t",
        "r = %run_dag d",
        "df = %xcom d t",
        "!echo SHELL",
        "%%time\nSLOW = 1",
        "%%dag d\nBashOperator(task_id='t', bash_command='echo')",
        "%%dag\n",  # empty: the kernel refuses it, so it contributes nothing
    ]
    src = export(cells)["d"]
    for text in ("SECRET_MARKDOWN", "SCRATCH", "run_task", "xcom", "SHELL", "SLOW", "%"):
        assert text not in src


def test_include_cells_come_in_notebook_order_with_their_imports_on_top() -> None:
    src = export(
        [
            IMPORTS,
            include("import json\n\nA = 1"),
            "%%dag d\nBashOperator(task_id='t', bash_command=json.dumps(HELPERS))",
            include("# shared helpers\nimport os  # noqa: F401 - side effects\n\nHELPERS = [A, 2]"),
        ]
    )["d"]
    code = body_after_header(src)
    assert code.startswith(
        "from airflow.providers.standard.operators.bash import BashOperator\n"
        "from airflow.sdk import DAG\n\n"
        "import json\n# shared helpers\nimport os  # noqa: F401 - side effects\n\nA = 1\n"
    )
    assert code.index("A = 1") < code.index("HELPERS = [A, 2]") < code.index("with DAG(")


def test_unused_shared_imports_are_pruned_per_file() -> None:
    shared = include(
        "import json\nimport os.path\nfrom airflow.sdk import Asset, task\n"
        "from airflow.providers.standard.operators.bash import BashOperator"
    )
    out = export(
        [
            shared,
            "%%dag a\n@task\ndef t():\n    return json.dumps(os.path.sep)\nt()",
            "%%dag b\nBashOperator(task_id='x', bash_command='e')",
        ]
    )
    assert "import json\nimport os.path\n" in out["a"]
    assert "from airflow.sdk import DAG, task\n" in out["a"] and "Asset" not in out["a"]
    assert "json" not in out["b"] and "from airflow.sdk import DAG\n" in out["b"]


def test_generated_dag_name_does_not_clash_with_the_notebooks_own_dag() -> None:
    src = export(
        [
            include("DAG = 'not the class'\nfrom airflow.sdk import task"),
            "%%dag d\n@task\ndef t():\n    return DAG\nt()",
        ]
    )["d"]
    assert "import airflow.sdk\n" in src and "with airflow.sdk.DAG(\n" in src


def test_export_is_deterministic() -> None:
    nb = build(PIPELINE)
    assert export_dags(nb, "p.ipynb") == export_dags(nb, "p.ipynb")


def test_exported_files_are_ruff_clean_and_formatted(tmp_path: Path) -> None:
    from ruff.__main__ import find_ruff_bin  # ruff is a test dependency

    ruff = str(find_ruff_bin())
    for name, src in export_dags(build(PIPELINE), "pipeline.ipynb").items():
        path = tmp_path / f"{name}.py"
        path.write_text(src)
    args = ["--no-cache", "--config", "line-length=100"]
    check = subprocess.run(
        [ruff, "check", *args, "--select", "E,F,W,B,I,UP", "--target-version", "py310", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [ruff, "format", *args, "--diff", "."], cwd=tmp_path, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


# ---- names the exported code needs --------------------------------------------------------


def test_names_defined_only_in_scratch_cells_are_reported_with_cell_and_line() -> None:
    found = problems(
        [
            IMPORTS,
            "threshold = 3\nimport pandas as pd",
            "%%dag d\n@task\ndef t():\n    return threshold + len(pd.DataFrame())\nt()",
        ]
    )
    assert len(found) == 2
    assert found[0].startswith("cell 3, line 4: `threshold` is defined only in cell 2")
    assert "kyte-include" in found[0]
    assert found[1].startswith("cell 3, line 4: `pd` is defined only in cell 2")


def test_names_from_another_dags_cells_or_ipython_are_reported() -> None:
    found = problems(
        [
            IMPORTS,
            "%%dag a\ndef helper():\n    return 1\nBashOperator(task_id='x', bash_command='e')",
            "%%dag b\n\nBashOperator(task_id='y', bash_command=str(helper()))\ndisplay(1)",
        ],
        dag_id="b",
    )
    assert found == [
        "cell 3, line 3: `helper` is defined only in cell 2 (DAG 'a'), which is not exported "
        "with DAG 'b'. Tag the cell that defines it `kyte-include` to share it, or define "
        "`helper` in an exported cell.",
        "cell 3, line 4: `display` exists only inside IPython, not when Airflow parses the DAG "
        "file; remove it from this cell.",
    ]


def test_scratch_names_shadowed_locally_or_defined_in_exported_code_are_fine() -> None:
    out = export(
        [
            IMPORTS,
            "rows = [1]\nn = 2\nk = 3\nitem = 4\nCls = 5\nlimit = 6\nerr = 7",
            include("limit = 10"),
            "%%dag d\n"
            "class Cfg:\n    k = 1\n    j = k + 1\n"
            "@task\ndef t(rows=None, *args, **kw):\n"
            "    n = len(rows or [])\n"
            "    total = [item * 2 for item in range(n) if item < limit]\n"
            "    try:\n        pass\n    except Exception as err:\n        print(err)\n"
            "    return total, __file__, len(args), kw\n"
            "t()",
        ]
    )
    assert "d" in out


def test_name_used_before_the_cell_that_defines_it_is_reported() -> None:
    found = problems(
        [
            IMPORTS,
            "%%dag d\nBashOperator(task_id='t', bash_command=COMMAND)",
            "%%dag d\nCOMMAND = 'echo'",
        ]
    )
    assert found == [
        "cell 2, line 2: `COMMAND` is used here but defined only later, in cell 3; move cell 3 "
        "above cell 2."
    ]


def test_shared_code_using_a_dag_cells_name_is_reported() -> None:
    found = problems([IMPORTS, "%%dag d\nCOMMAND = 'echo'", include("DEFAULT = COMMAND")])
    assert found == [
        "cell 3, line 1: `COMMAND` is used here but defined only later, in cell 2; shared code "
        "comes first in the exported file, so define `COMMAND` in a `kyte-include` cell instead."
    ]


# ---- bad input ----------------------------------------------------------------------------


def test_unknown_dag_id_lists_the_dags_of_the_notebook() -> None:
    found = problems([IMPORTS, "%%dag a\nBashOperator(task_id='t', bash_command='e')"], "zzz")
    assert found == ["there is no DAG 'zzz' in this notebook (DAGs found: 'a')."]


def test_notebook_without_dags_says_how_to_add_one() -> None:
    assert "defines no DAG" in problems([md("hello"), "x = 1"])[0]


def test_syntax_errors_in_exported_cells_are_reported_with_cell_and_line() -> None:
    found = problems(
        [
            IMPORTS,
            "this is scratch ( and may be broken",
            "%%dag d\nBashOperator(task_id='t',\n    bash_command='e'",
            include("x = 1\ndef f(:\n    pass"),
        ]
    )
    assert found[0].startswith("cell 3, line 2: SyntaxError:") and "was never closed" in found[0]
    assert found[1].startswith("cell 4, line 2: SyntaxError:")


def test_ipython_syntax_in_an_exported_cell_is_explained() -> None:
    found = problems(
        [
            include("%matplotlib inline\nimport json"),
            "%%dag d\nfiles = !ls\nprint(files)",
        ]
    )
    assert found == [
        "cell 1, line 1: `%matplotlib inline` is IPython syntax (a magic or shell command), "
        "which a DAG file cannot contain; move it to a cell without `kyte-include`.",
        "cell 2, line 2: `files = !ls` is IPython syntax (a magic or shell command), which a "
        "DAG file cannot contain; move it to another cell.",
    ]


def test_malformed_dag_options_are_reported_on_line_one() -> None:
    found = problems(["%%dag d --default-args '{retries: 2}'\nx = 1"])
    assert found[0].startswith("cell 1, line 1: --default-args is not valid JSON")
    found = problems(["\n\n%%dag d --start-date tomorrow\nx = 1"])
    assert found[0].startswith("cell 1, line 3: --start-date 'tomorrow' is not a date")


def test_dag_id_that_cannot_be_found_statically_is_reported() -> None:
    found = problems(
        [
            "%%dag\nfrom airflow.sdk import DAG\nimport os\n"
            "with DAG(os.environ['NAME']):\n    pass\n"
            "def factory(name):\n    return DAG(name)\n"
        ]
    )
    assert found[0].startswith("cell 1, line 4: Kyte cannot tell this DAG's id")
    assert found[1].startswith("cell 1, line 7: a DAG is created inside the function `factory`")
    found = problems(["%%dag\nx = 1"])
    assert found[0].startswith("cell 1: this %%dag cell defines no DAG that Kyte can find.")


def test_conflicting_definitions_of_one_dag_id_are_reported() -> None:
    one = "%%dag\nfrom airflow.sdk import DAG\nwith DAG('a'):\n    pass"
    grown = "%%dag a\nx = 1"
    assert problems([one, one]) == [
        "cell 2: DAG 'a' is also defined by cell 1; keep one of the two cells (delete or rename "
        "the other) so the export knows which one you mean."
    ]
    assert problems([one, grown]) == [
        "DAG 'a' is defined by the whole-DAG-file cell 1 and grown by `%%dag a` cells (2); give "
        "one of them another id."
    ]


def test_include_cells_must_not_create_dags_or_be_other_magics() -> None:
    found = problems(
        [
            include("from airflow.sdk import DAG\nd = DAG('shared')"),
            "%%time\nx = 1",
            "%%dag a\nx = 1",
        ]
    )
    assert found[0].startswith("cell 1, line 2: this `kyte-include` cell creates 'shared'")
    nb = build(["%%time\nx = 1", "%%dag a\nx = 1"], tags={0: ["kyte-include"]})
    with pytest.raises(ExportError) as info:
        export_dags(nb, "nb.ipynb")
    assert info.value.problems[0].startswith("cell 1: it is tagged `kyte-include` but is a %%time")


def test_dag_ids_differing_only_in_case_are_reported() -> None:
    found = problems(["%%dag ETL\nx = 1", "%%dag etl\nx = 2"])
    assert found == [
        "cell 2: DAG 'etl' and DAG 'ETL' differ only in case, so their files would collide on "
        "some systems; rename one of them."
    ]


def test_dag_id_unusable_as_a_file_name_is_reported() -> None:
    found = problems(["%%dag\nfrom airflow.sdk import DAG\nwith DAG('../escape'):\n    pass"])
    assert found == [
        "cell 1: DAG id '../escape' cannot be a file name; use letters, digits, '_', '-' and '.' "
        "(as Airflow requires)."
    ]


def test_problems_of_other_dags_do_not_block_the_dag_asked_for() -> None:
    cells = [IMPORTS, "%%dag ok\nBashOperator(task_id='t', bash_command='e')", "%%dag bad\n(("]
    assert list(export(cells, dag_id="ok")) == ["ok"]
    assert problems(cells)[0].startswith("cell 3, line 2: SyntaxError")


# ---- files on disk ------------------------------------------------------------------------


def write_notebook(path: Path, cells: list[str]) -> Path:
    nbformat.write(build(cells), path)
    return path


GOOD = [IMPORTS, "%%dag a\nBashOperator(task_id='t', bash_command='e')", "%%dag b\nx = 1"]


def test_export_notebook_writes_into_dags_next_to_the_notebook(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    nb = write_notebook(tmp_path / "work" / "etl.ipynb", GOOD)
    paths = export_notebook(nb)
    assert paths == [tmp_path / "work" / "dags" / "a.py", tmp_path / "work" / "dags" / "b.py"]
    assert all(written_by_kyte(p) for p in paths)
    assert "from the notebook etl.ipynb." in paths[0].read_text()
    assert oct(paths[0].stat().st_mode & 0o777) == oct(0o644)
    assert export_notebook(nb, dag_id="b", output_dir=tmp_path / "out") == [
        tmp_path / "out" / "b.py"
    ]


def test_files_kyte_did_not_write_are_never_overwritten_without_force(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "etl.ipynb", GOOD)
    out = tmp_path / "dags"
    out.mkdir()
    (out / "b.py").write_text("# my own DAG\n")
    with pytest.raises(ExportError) as info:
        export_notebook(nb)
    assert info.value.problems == [
        f"{out / 'b.py'} exists and was not written by Kyte; export would overwrite it. Move it "
        "away, choose another output folder, or use --force to overwrite it."
    ]
    assert not (out / "a.py").exists(), "nothing is written when anything is wrong"
    assert (out / "b.py").read_text() == "# my own DAG\n"
    export_notebook(nb, force=True)
    assert written_by_kyte(out / "b.py")
    (out / "a.py").write_text(HEADER_MARK + " earlier export\n")
    export_notebook(nb)  # Kyte's own files are overwritten silently
    assert "BashOperator" in (out / "a.py").read_text()


def test_output_that_is_not_a_folder_is_reported(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "etl.ipynb", GOOD)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError) as info:
        export_notebook(nb, output_dir=tmp_path / "file")
    assert "is not a folder" in info.value.problems[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "there is no notebook at"),
        ("{not json", "is not a valid Jupyter notebook"),
        ('{"cells": 3, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "no list of cells"),
        (
            '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"source": "x"}]}',
            "cell 1 has no cell type",
        ),
        (b"\xff\xfe\x00", "not UTF-8"),
        ("[]", "is not a valid Jupyter notebook"),
    ],
)
def test_unreadable_notebooks_are_reported(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "broken.ipynb"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    with pytest.raises(ExportError) as info:
        export_notebook(path)
    assert message in info.value.problems[0]
    assert not (tmp_path / "dags").exists()


def test_a_folder_is_not_a_notebook(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="is a folder, not a notebook"):
        export_notebook(tmp_path)


# ---- command line and nbconvert -----------------------------------------------------------


def test_cli_exports_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nb = write_notebook(tmp_path / "etl.ipynb", GOOD)
    # --no-lint: jupyter kyte lint (tests/test_lint.py) would import Airflow in a subprocess.
    out = str(tmp_path / "o")
    assert cli.main(["export", str(nb), "--dag", "a", "--output", out, "--no-lint"]) == 0
    assert capsys.readouterr().out == f"Wrote {tmp_path / 'o' / 'a.py'}\n"
    (tmp_path / "o" / "b.py").write_text("mine")
    assert cli.main(["export", str(nb), "-o", str(tmp_path / "o"), "--no-lint"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("jupyter kyte export: Cannot export etl.ipynb:\n  - ")
    assert "use --force" in err and err.endswith("Nothing was written.\n")
    assert cli.main(["export", str(nb), "-o", str(tmp_path / "o"), "--force", "--no-lint"]) == 0
    assert cli.main([]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export"])
    assert exit_info.value.code == 2


def test_console_script_runs_as_jupyter_kyte(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "etl.ipynb", GOOD)
    script = Path(sys.executable).parent / "jupyter-kyte"
    proc = subprocess.run(
        [str(script), "export", nb.name, "--dag", "b"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"Wrote {os.path.join('dags', 'b.py')}\n"


def test_nbconvert_exporter_writes_every_dag_file(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "etl.ipynb", GOOD)
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "kyte_dag", nb.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert written_by_kyte(tmp_path / "a.py") and written_by_kyte(tmp_path / "b.py")
    assert not (tmp_path / "etl.py").exists()


def test_nbconvert_exporter_in_process(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "etl.ipynb", GOOD)
    source, resources = KyteDagExporter().from_filename(str(nb))
    assert source == export_dags(build(GOOD), "etl.ipynb")["a"]
    assert resources["output_extension"] == ".py"
    b = resources["outputs"][os.path.join(os.curdir, "b.py")].decode()
    assert b == export_dags(build(GOOD), "etl.ipynb")["b"]
    assert resources["unique_key"] == "a"  # the main output is named after its DAG
    source, resources = KyteDagExporter(dag_id="b").from_filename(str(nb))
    assert source == b and resources["unique_key"] == "b" and not resources["outputs"]
    with pytest.raises(ConversionException, match="there is no DAG 'nope'"):
        KyteDagExporter(dag_id="nope").from_filename(str(nb))


# ---- nothing is written outside the root (issue 13.3) -------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A root holding ``proj/etl.ipynb``, and a folder ``outside`` the root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "proj").mkdir(parents=True)
    outside.mkdir()
    return root, write_notebook(root / "proj" / "etl.ipynb", GOOD), outside


def test_default_dags_folder_linked_outside_the_root_is_refused(
    project: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, nb, outside = project
    (nb.parent / "dags").symlink_to(outside, target_is_directory=True)
    for kw in ({}, {"root": root}):  # the CLI's default root (the notebook's folder), the server's
        with pytest.raises(OutputPathError) as info:
            export_notebook(nb, **kw)  # type: ignore[arg-type]
        (problem,) = info.value.problems
        assert problem.startswith(f"the output folder {nb.parent / 'dags'} leads to {outside} ")
        assert (
            "through a symbolic link" in problem
            and "Replace the link with a real folder" in problem
        )
        assert isinstance(info.value, ExportError) and info.value.notebook == "etl.ipynb"
    # ... exactly as the same outside folder named as the output is
    with pytest.raises(OutputPathError, match="is outside"):
        export_notebook(nb, output_dir=outside, root=root)
    assert cli.main(["export", str(nb)]) == 1
    err = capsys.readouterr().err
    assert "through a symbolic link" in err and err.endswith("Nothing was written.\n")
    assert list(outside.iterdir()) == []
    # A link that stays inside the root is fine.
    (root / "shared").mkdir()
    (nb.parent / "dags").unlink()
    (nb.parent / "dags").symlink_to(root / "shared", target_is_directory=True)
    assert export_notebook(nb, root=root) == [
        nb.parent / "dags" / "a.py",
        nb.parent / "dags" / "b.py",
    ]
    assert written_by_kyte(root / "shared" / "a.py")
    with pytest.raises(OutputPathError):  # but not outside the notebook's folder by default
        export_notebook(nb)


def test_a_file_linked_outside_the_root_is_never_written_through(
    project: tuple[Path, Path, Path],
) -> None:
    root, nb, outside = project
    victim = outside / "a.py"
    victim.write_text(HEADER_MARK + " - looks like Kyte's, so export would overwrite it\n")
    (nb.parent / "dags").mkdir()
    (nb.parent / "dags" / "a.py").symlink_to(victim)
    for kw in ({}, {"root": root}, {"force": True}):
        with pytest.raises(OutputPathError) as info:
            export_notebook(nb, **kw)  # type: ignore[arg-type]
        assert info.value.problems == [
            f"the output file {nb.parent / 'dags' / 'a.py'} leads to {victim} through a symbolic "
            f"link, outside {info.value.root}; export writes nothing outside it. Replace the link "
            f"with a real file, or choose an output folder inside {info.value.root}."
        ]
    assert victim.read_text().endswith("would overwrite it\n")
    assert not (nb.parent / "dags" / "b.py").exists(), "nothing is written when a path is refused"
    # A link to a file inside the root is followed: the file it names is updated.
    (nb.parent / "dags" / "a.py").unlink()
    (nb.parent / "mine.py").write_text(HEADER_MARK + "\n")
    (nb.parent / "dags" / "a.py").symlink_to(nb.parent / "mine.py")
    export_notebook(nb)
    assert (nb.parent / "dags" / "a.py").is_symlink()
    assert "BashOperator" in (nb.parent / "mine.py").read_text()


def test_dotdot_and_absolute_outputs_are_checked_where_they_really_lead(
    project: tuple[Path, Path, Path],
) -> None:
    root, nb, outside = project
    for output in ("../../outside", str(outside), "proj/../../outside", "/tmp"):
        with pytest.raises(OutputPathError, match="is outside"):
            export_notebook(nb, output_dir=output, root=root)
    assert resolve_output_dir(nb, "proj/x/../out", root) == root / "proj/x/../out"
    assert export_notebook(nb, "a", "proj/x/../out", root=root) == [root / "proj/x/../out/a.py"]
    assert written_by_kyte(root / "proj" / "out" / "a.py")
    assert export_notebook(nb, "a", root / "abs", root=root) == [root / "abs" / "a.py"]
    # `..` after a link goes where the OS takes it, not where the text seems to point.
    (root / "jump").symlink_to(outside / "deep", target_is_directory=True)
    (outside / "deep").mkdir()
    with pytest.raises(OutputPathError, match="through a symbolic link"):
        export_notebook(nb, output_dir="jump/../out", root=root)
    assert not (outside / "out").exists() and not (root / "out").exists()
    with pytest.raises(OutputPathError, match="not a usable path"):
        resolve_output_dir(nb, "bad\0name", root)


def test_cli_root_option_bounds_an_explicit_output(
    project: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, nb, outside = project
    assert cli.main(["export", str(nb), "-o", str(outside), "--root", str(root)]) == 1
    assert f"the output folder {outside} is outside {root}" in capsys.readouterr().err
    assert list(outside.iterdir()) == []
    assert cli.main(["export", str(nb), "-o", str(outside)]) == 0  # the folder the user named
    assert written_by_kyte(outside / "a.py")


def test_nbconvert_refuses_outputs_outside_the_root(project: tuple[Path, Path, Path]) -> None:
    root, nb, outside = project
    victim = outside / "b.py"
    victim.write_text("precious\n")
    (nb.parent / "b.py").symlink_to(victim)

    def nbconvert(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "kyte_dag", *args]
        return subprocess.run(cmd, cwd=nb.parent, capture_output=True, text=True)

    proc = nbconvert(nb.name)  # b.py, next to the notebook, links outside
    assert proc.returncode != 0
    assert f"the output file {nb.parent / 'b.py'} leads to {victim}" in proc.stderr
    assert victim.read_text() == "precious\n" and not (nb.parent / "a.py").exists()
    proc = nbconvert(nb.name, "--output-dir", str(outside), f"--KyteDagExporter.root={root}")
    assert proc.returncode != 0 and f"is outside {root}" in proc.stderr
    (nb.parent / "b.py").unlink()
    proc = nbconvert(nb.name, "--output", "../../outside/x", f"--KyteDagExporter.root={root}")
    assert proc.returncode != 0 and "is outside" in proc.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["b.py"]
    proc = nbconvert(nb.name, "--stdout")  # writes nothing: nothing to check
    assert proc.returncode == 0 and proc.stdout.startswith(HEADER_MARK)
