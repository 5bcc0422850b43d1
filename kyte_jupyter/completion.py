"""Tab completion for the magics that name a DAG (and a task): ``%run_task``, ``%run_dag``,
``%xcom``, ``%task_log``, ``%render``, ``%lint``, ``%runs``, ``%dag_diff`` and ``%compare``.

A matcher in IPython's completer (``IPCompleter.custom_matchers``), so every front end
that asks the kernel for completions (JupyterLab, VS Code, ``jupyter console``) gets them:
DAG ids first, then the task ids of that DAG, then the magic's option names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

#: Magic name -> how many positional arguments it takes (DAG id, then task id).
POSITIONALS = {
    "run_task": 2, "run_dag": 1, "xcom": 2, "task_log": 2, "render": 2,
    "lint": 1, "runs": 1, "dag_diff": 1, "compare": 1,
}  # fmt: skip

# The magic may follow an assignment (`r = %run_task …`); the rest of the line is its arguments.
LINE_RE = re.compile(
    r"(?:^|.*?[\s=(])%(?P<magic>" + "|".join(POSITIONALS) + r")(?P<args>(?:\s.*)?)$"
)


def _options(parser: Any) -> tuple[list[str], set[str]]:
    """(all long option names, the options that take a value) of a magic's parser."""
    names: list[str] = []
    with_value: set[str] = set()
    for action in getattr(parser, "_actions", []):
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                names.append(opt)
            if action.nargs != 0:
                with_value.add(opt)
    return sorted(names), with_value


def complete(
    line: str,
    parsers: dict[str, Any],
    dag_ids: Callable[[], Iterable[str]],
    task_ids: Callable[[str], Iterable[str]],
) -> list[str]:
    """Completions for the word under the cursor at the end of ``line`` (text up to it)."""
    m = LINE_RE.match(line)
    if m is None:
        return []
    magic, args = m.group("magic"), m.group("args")
    if not args:
        return []  # the cursor is still on the magic's name
    words = args.split()
    current = "" if not args or args[-1].isspace() else words.pop()
    options, with_value = _options(parsers.get(magic))
    if current.startswith("-"):
        return [o for o in options if o.startswith(current)]
    positionals: list[str] = []
    skip = False
    for w in words:
        if skip:
            skip = False
        elif w.startswith("-"):
            skip = w in with_value and "=" not in w
        else:
            positionals.append(w)
    if skip:
        return []  # the value of an option: nothing to offer
    if not positionals:
        return sorted(d for d in dag_ids() if d.startswith(current))
    if len(positionals) == 1 and POSITIONALS[magic] == 2:
        return sorted(t for t in task_ids(positionals[0]) if t.startswith(current))
    return [o for o in options if o.startswith(current)] if not current else []


def register(ipython: Any, notebook: Any, parsers: dict[str, Any]) -> None:
    """Add Kyte's matcher to the shell's completer (IPython's matcher API v2)."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()  # type: ignore[untyped-decorator]
    def kyte_magic_matcher(context: Any) -> dict[str, Any]:
        from . import notebook as _notebook

        line = context.text_until_cursor
        if not _notebook.loaded() or LINE_RE.match(line) is None:
            return {"completions": [], "suppress": False}
        found = complete(line, parsers, notebook.known_dag_ids, notebook.known_task_ids)
        current = "" if not line or line[-1].isspace() else line.split()[-1]
        return {
            "completions": [SimpleCompletion(text=t, type="param") for t in found],
            "matched_fragment": current,
            "suppress": bool(found),
            "ordered": True,
        }

    unregister(ipython)
    ipython.Completer.custom_matchers.append(kyte_magic_matcher)


def unregister(ipython: Any) -> None:
    """Remove Kyte's matcher (``%unload_ext``)."""
    matchers = getattr(getattr(ipython, "Completer", None), "custom_matchers", None)
    if matchers is not None:
        matchers[:] = [m for m in matchers if getattr(m, "__name__", "") != "kyte_magic_matcher"]
