"""The what-if options, declared once and shared by ``%run_dag`` and ``%run_task``.

As IPython's ``script_args`` shares options between the script magics, :func:`whatif_args`
adds the same ``@argument`` set to any magic; :func:`from_args` turns the parsed namespace
into a checked :class:`~kyte_jupyter.whatif.spec.WhatIf`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core import magic_arguments

from kyte_jupyter.whatif.spec import WhatIf, parse_options

F = TypeVar("F", bound=Callable[..., Any])

_IDS = ("TASKS: comma-separated task ids, task[i] for one mapped instance, or a task-group "
        "id for all its tasks.")

_ARGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--fail",), dict(action="append", metavar="TASKS",
                       help="Force these tasks to fail as if they raised AirflowFailException "
                            "(no retries). " + _IDS)),
    (("--fail-once",), dict(action="append", metavar="TASKS",
                            help="Force the first try of these tasks to fail; retries then "
                                 "run the real code.")),
    (("--skip",), dict(action="append", metavar="TASKS",
                       help="Force these tasks to skip, as if they raised "
                            "AirflowSkipException.")),
    (("--succeed",), dict(action="append", metavar="TASKS",
                          help="Mark these tasks success without running them, as "
                               "dag.test(mark_success_pattern=...).")),
    (("--timeout",), dict(action="append", metavar="TASKS",
                          help="Force these tasks to time out (AirflowTaskTimeout) on every "
                               "try; retries honoured.")),
    (("--branch",), dict(action="append", metavar="B=T1[,T2]",
                         help="Branch task B follows T1, T2... without running its "
                              "callable (targets directly downstream of B).")),
    (("--xcom",), dict(action="append", metavar="T=JSON",
                       help="Task T succeeds without running and returns this JSON value "
                            "as its XCom.")),
    (("--miss-deadline",), dict(action="store_true",
                                help="Make the DAG's deadline alert miss: its callback runs "
                                     "as Airflow would run it.")),
]


def whatif_args(func: F) -> F:
    """Add the what-if options to a magic (apply below ``@magic_arguments()``)."""
    for names, kwargs in reversed(_ARGS):
        func = magic_arguments.argument(*names, **kwargs)(func)  # type: ignore[no-untyped-call]
    group = magic_arguments.argument_group("what-if (forced outcomes)")  # type: ignore[no-untyped-call]
    return group(func)  # type: ignore[no-any-return]


def from_args(dag: Any, args: argparse.Namespace) -> WhatIf:
    """The checked forced outcomes of parsed magic arguments (raises ``WhatIfError``)."""
    return parse_options(
        dag, fail=args.fail, fail_once=args.fail_once, skip=args.skip, succeed=args.succeed,
        timeout=args.timeout, branch=args.branch, xcom=args.xcom,
        miss_deadline=bool(args.miss_deadline),
    )
