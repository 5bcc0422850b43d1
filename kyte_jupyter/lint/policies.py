"""Apply a deployment's cluster policies to a notebook DAG, as the DAG processor would.

The policies come from an ``airflow_local_settings.py``-style module named by a path (the
``policy_module`` setting): its ``dag_policy(dag)`` and ``task_policy(task)`` run, as in
``DagBag.bag_dag``, on a deep copy of the DAG (policies may mutate what they get; the
notebook's DAG stays as it is). Every violation is collected, not just the first: a
``dag_policy`` that raises and each ``task_policy`` that raises is one error naming the rule.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bridge import lint as _airflow
from .findings import CheckId, Finding, LintConfig

if TYPE_CHECKING:
    from airflow.sdk import DAG

CHECK: CheckId = "policy"

_modules: dict[tuple[str, int, int], types.ModuleType] = {}
_lock = threading.Lock()


class PolicyModuleError(Exception):
    """The policy module cannot be loaded; the message says why."""


def load_policy_module(path: Path) -> types.ModuleType:
    """Import the policy module at ``path`` (again whenever the file changes)."""
    path = Path(path).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError as e:
        raise PolicyModuleError(f"cannot read the policy module {path}: {e.strerror}") from e
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        module = _modules.get(key)
        if module is not None:
            return module
        name = "kyte_policy_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PolicyModuleError(f"{path} is not a Python module")
        module = importlib.util.module_from_spec(spec)
        try:
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(name, None)
            raise PolicyModuleError(
                f"the policy module {path} failed to import: {type(e).__name__}: {e}"
            ) from e
        _modules[key] = module
    return module


def _rule(policy: str, error: BaseException) -> str:
    """The rule a violation names: ``dag_policy`` or ``task_policy`` (plus ``:code`` if the
    message starts with a ``[code]`` tag, as the example policy module's do)."""
    text = str(error).strip()
    if text.startswith("[") and "]" in text:
        return f"{policy}:{text[1 : text.index(']')]}"
    return policy


def check_dag(dag: DAG, config: LintConfig) -> list[Finding]:
    """The cluster-policy findings for one DAG (none without a policy module)."""
    if config.policy_module is None or not config.enabled(CHECK):
        return []
    try:
        module = load_policy_module(config.policy_module)
    except PolicyModuleError as e:
        return [
            Finding(
                severity="error",
                check=CHECK,
                rule="policy-module",
                dag_id=dag.dag_id,
                message=str(e),
            )
        ]
    violation, skip = _airflow.policy_exceptions()
    dag_policy = getattr(module, "dag_policy", None)
    task_policy = getattr(module, "task_policy", None)
    out: list[Finding] = []

    def report(policy: str, e: BaseException, task_id: str | None) -> None:
        rule = _rule(policy, e)
        if not config.enabled(CHECK, rule) or not config.enabled(CHECK, policy):
            return
        if isinstance(e, skip):
            out.append(
                Finding(
                    severity="warning",
                    check=CHECK,
                    rule=rule,
                    dag_id=dag.dag_id,
                    task_id=task_id,
                    message=f"the deployment would skip this DAG ({policy}): {e}",
                )
            )
            return
        kind = "violates" if isinstance(e, violation) else "fails in"
        detail = str(e) if isinstance(e, violation) else f"{type(e).__name__}: {e}"
        out.append(
            Finding(
                severity="error",
                check=CHECK,
                rule=rule,
                dag_id=dag.dag_id,
                task_id=task_id,
                message=f"{kind} the cluster policy {policy}: {detail}",
            )
        )

    try:
        copied: Any = copy.deepcopy(dag)
    except Exception as e:
        return [
            Finding(
                severity="warning",
                check=CHECK,
                rule="copy",
                dag_id=dag.dag_id,
                message=f"cannot copy the DAG to apply the policies to it: {e}",
            )
        ]
    if callable(dag_policy):
        try:
            dag_policy(copied)
        except Exception as e:
            report("dag_policy", e, None)
    if callable(task_policy):
        for task in copied.tasks:
            try:
                task_policy(task)
            except Exception as e:
                report("task_policy", e, task.task_id)
    return out
