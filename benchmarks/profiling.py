"""Where a warm ``%run_task`` and a ``%run_dag`` spend their time, per task.

``python -m benchmarks.profiling [--reps 30] [--sizes 200] [--what-if] [--out DIR]``

In one real kernel (like the benchmarks) it:

1. records a pyinstrument profile of the kernel's main thread over ``--reps`` warm
   ``%run_task`` calls (text and HTML);
2. records py-spy samples of every thread of the kernel over the same loop (raw collapsed
   stacks), and sums them per thread for the frames that matter;
3. times each phase with :mod:`benchmarks.phases` (Kyte's runner steps, the Task SDK,
   every execution-API request, FastAPI inside the API, AnyIO thread hops, SQL and commits
   by thread) for warm ``%run_task`` and for ``%run_dag`` of each ``--sizes``, and prints
   milliseconds per task;
4. with ``--what-if``, measures variants of the in-process execution API from
   :mod:`benchmarks.whatif` against Kyte as it ships, interleaved in rounds.

Everything is written to ``<out>/profile-<timestamp>/`` and the summary printed as markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import dags  # noqa: E402
from benchmarks.kernel import BenchKernel  # noqa: E402
from benchmarks.run import DEFAULT_OUT, child_env, define_cell, load_text, log, timed_cell  # noqa: E402

RUN_TASK = "_kb_r = %run_task bench_1 t_0"


def loop_cell(reps: int) -> str:
    """A cell running ``reps`` warm ``%run_task`` calls, as a notebook user would, in a loop."""
    return timed_cell(
        f"for _ in range({reps}):\n"
        "    _kb_r = get_ipython().run_line_magic('run_task', 'bench_1 t_0')\n"
        "    assert _kb_r.state == 'success', _kb_r"
    )


def per_task_table(snap: dict[str, list[Any]], tasks: int, cell_s: float) -> str:
    """Phases as a markdown table in ms per task, with derived lines that split the API."""
    ms: dict[str, float] = {k: float(v[1]) * 1000 / tasks for k, v in snap.items()}
    calls: dict[str, float] = {k: float(v[0]) / tasks for k, v in snap.items()}

    def total(prefix: str, suffix: str = "") -> float:
        return sum(v for k, v in ms.items() if k.startswith(prefix) and k.endswith(suffix))

    api_requests = total("api ", "") - total("api server") - total("api worker")
    app = ms.get("api server: whole ASGI app (middlewares, Cadwyn, FastAPI) [loop]", 0.0)
    endpoints = total("api worker: ti_")
    deps_in_workers = total("api worker: ") - endpoints
    hops = total("api worker hop")
    run_ep = ms.get("api server: FastAPI run_endpoint_function", 0.0)
    solve = ms.get("api server: FastAPI solve_dependencies", 0.0)
    serial = ms.get("api server: FastAPI serialize_response", 0.0)
    top = ms.get("kyte Runner.run_tasks", 0.0) or ms.get("kyte Runner.run_dag", 0.0)
    run_one = ms.get("kyte Runner._run_one", 0.0)
    in_process = ms.get("sdk run_task_in_process", 0.0)
    sql_api = total("sql ", "[api]")
    sql_main = total("sql ", "[main]")
    direct = total("direct: serve")
    derived = [
        ("cell wall time in the kernel (magic, display, bookkeeping, try)", cell_s * 1000 / tasks),
        ("  Kyte runner, whole call", top),
        ("    Kyte bookkeeping outside the try (runs, TI queries, update_state, audit)",
         top - run_one),
        ("    one try: run_task_in_process", in_process),
        ("      execution-API requests, seen from the kernel thread", api_requests),
    ]
    if direct:
        derived += [
            ("        Kyte's DirectTransport: Airflow's route functions + their session",
             direct),
            ("          of which the route functions (ti_run, rtif, state, xcom)",
             total("direct: route")),
            ("        httpx client + dispatch (requests − DirectTransport)",
             api_requests - direct),
        ]
    if app:
        derived += [
            ("        a2wsgi/httpx bridge (request time − ASGI app time)", api_requests - app),
            ("        ASGI app on the API loop thread", app),
            ("          middlewares + Cadwyn + routing (app − deps − endpoint − serialise)",
             app - solve - run_ep - serial),
            ("          FastAPI solve_dependencies (session, version, auth deps)", solve),
            ("          FastAPI run_endpoint_function", run_ep),
            ("          FastAPI serialize_response", serial),
            ("        in AnyIO worker threads: endpoint bodies (ti_run, rtif, state)", endpoints),
            ("        in AnyIO worker threads: sync dependencies (DB session open/close…)",
             deps_in_workers),
            ("        AnyIO thread hops (start wait + return), "
             f"{calls.get('api worker hop: back to the event loop', 0):.0f} per task", hops),
            ("        SQL statements + commits in the API threads", sql_api),
        ]
    derived += [
        ("      Task SDK in the kernel thread (context, run, finalize, comms)",
         in_process - api_requests),
        ("    SQL statements + commits in the kernel thread", sql_main),
    ]
    lines = ["| phase (derived) | ms/task |", "|---|---:|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in derived]
    lines += ["", "| measured phase (inclusive) | calls/task | ms/task |", "|---|---:|---:|"]
    for k in sorted(ms, key=lambda k: -ms[k]):
        lines.append(f"| {k} | {calls[k]:.2f} | {ms[k]:.2f} |")
    return "\n".join(lines)


SPY_THREADS = {
    # thread name: the frame a sample must contain to count (None: every sample)
    "thread: MainThread": "KyteMagics.run_task",
    "thread: InProcessExecutionAPI-loop": None,
    "thread: AnyIO worker thread": None,
    "thread: Thread-N (_handle_socket_comms)": None,
}


def spy_summary(raw: Path, rate: int, tasks: int, top: int = 25) -> str:
    """Per-thread inclusive wall time of py-spy's collapsed stacks, in ms per task."""
    inclusive: dict[str, Counter[str]] = defaultdict(Counter)
    per_thread: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = re.sub(r"\s*\(\d+\)", "", frames[0])
        thread = re.sub(r"Thread-\d+", "Thread-N", thread)
        if thread not in SPY_THREADS:
            continue
        names = [re.sub(r" \((.*?):\d+\)$", r" (\1)", f) for f in frames[1:]]
        root = SPY_THREADS[thread]
        if root is not None:
            below = [i for i, n in enumerate(names) if n.startswith(root)]
            if not below:
                continue
            names = names[below[0]:]
        per_thread[thread] += int(count)
        for name in set(names):
            inclusive[thread][name] += int(count)
    scale = 1000 / rate / tasks
    out = [f"py-spy at {rate} Hz with idle samples; ms per task (wall, sampled, inclusive; "
           "the kernel thread counted inside `KyteMagics.run_task` only). A loaded machine "
           "drops samples: read proportions, not totals.", ""]
    for thread, n in per_thread.most_common():
        out += [f"**{thread}** — {n * scale:.1f} ms/task sampled", "",
                "| frame | ms/task |", "|---|---:|"]
        shown = [(f, c) for f, c in inclusive[thread].most_common()
                 if not re.match(r"(Thread\.|WorkerThread\.run|BaseEventLoop\.run_forever)", f)]
        out += [f"| `{f}` | {c * scale:.2f} |" for f, c in shown[:top]]
        out.append("")
    return "\n".join(out)


FIRST_STEPS = [
    ("`%load_ext kyte_jupyter`", "%load_ext kyte_jupyter"),
    ("`import airflow` (Kyte's import_airflow: import, quiet logs, tune SQLite)",
     "from kyte_jupyter.magics import import_airflow\nimport_airflow()"),
    ("`%%dag` of the 1-task DAG (Airflow already imported)", None),
    ("first `%run_task`", "_kb_r = %run_task bench_1 t_0 -q"),
    ("second `%run_task` (warm, for reference)", "_kb_r = %run_task bench_1 t_0 -q"),
]


def first_run_phases(work: Path, reps: int) -> str:
    """Cold costs of a fresh kernel, one step per cell, medians over ``reps`` fresh kernels."""
    times: dict[str, list[float]] = defaultdict(list)
    for i in range(reps):
        k = BenchKernel(work / f"first-{i}.ipynb", work / "sessions", work,
                        {"PYTHONPATH": child_env()["PYTHONPATH"]})
        try:
            for label, code in FIRST_STEPS:
                cell = timed_cell(code) if code else define_cell(dags.dag_source(1))
                times[label].append(k.ok(cell, {"dt": "_kb_dt"}).expressions["dt"])
        finally:
            k.shutdown()
    lines = [f"## Cold start: a fresh kernel step by step (median of {reps} kernels)", "",
             "| step | median | min–max |", "|---|---:|---:|"]
    total = 0.0
    for label, _ in FIRST_STEPS:
        v = times[label]
        if not label.startswith("second"):
            total += statistics.median(v)
        lines.append(f"| {label} | {statistics.median(v) * 1000:.0f} ms "
                     f"| {min(v) * 1000:.0f}–{max(v) * 1000:.0f} ms |")
    lines += [f"| **sum of the cold steps** | **{total * 1000:.0f} ms** | |", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__)
    p.add_argument("--reps", type=int, default=30, help="warm %%run_task calls per profile")
    p.add_argument("--sizes", type=int, nargs="*", default=[200],
                   help="%%run_dag DAG sizes to account (default 200)")
    p.add_argument("--what-if", action="store_true", help="measure benchmarks.whatif variants")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds for --what-if")
    p.add_argument("--what-if-dag", type=int, nargs="*", default=[], metavar="N",
                   help="with --what-if, also %%run_dag of these sizes (setupmemo, direct)")
    p.add_argument("--first", type=int, default=0, metavar="N",
                   help="also time the cold steps of N fresh kernels")
    p.add_argument("--no-spy", action="store_true", help="skip py-spy")
    p.add_argument("--spy-rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out / f"profile-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kyte-profile-"))
    os.environ["KYTE_SESSIONS_ROOT"] = str(work / "sessions")
    report = [f"# Kyte profile {stamp}", "", f"load before: {load_text()}", ""]
    log(f"profiling; output in {out}; load {load_text()}")
    from kyte_jupyter.session import SessionStore

    SessionStore(work / "sessions").template_db()  # migrated once, outside every timing
    if args.first:
        log(f"cold steps in {args.first} fresh kernels")
        report.append(first_run_phases(work, args.first))
    k = BenchKernel(work / "profile.ipynb", work / "sessions", work,
                    {"PYTHONPATH": child_env()["PYTHONPATH"]})
    try:
        k.ok("%load_ext kyte_jupyter")
        for n in sorted({1, *args.sizes}):
            k.ok(define_cell(dags.dag_source(n)))
        for _ in range(3):
            k.ok(RUN_TASK)

        # 1. pyinstrument, main thread.
        log("pyinstrument over warm %run_task")
        text, html = out / "pyinstrument-run_task.txt", out / "pyinstrument-run_task.html"
        r = k.ok(
            "from pyinstrument import Profiler as _KbProfiler\n"
            "_kb_p = _KbProfiler(interval=0.0005)\n_kb_p.start()\n"
            + loop_cell(args.reps)
            + "_kb_p.stop()\n"
            f"open({str(text)!r}, 'w').write(_kb_p.output_text(unicode=True, color=False))\n"
            f"open({str(html)!r}, 'w').write(_kb_p.output_html())\n",
            {"dt": "_kb_dt"})
        report += [f"## pyinstrument (kernel main thread), {args.reps} warm `%run_task`", "",
                   f"{r.expressions['dt'] / args.reps * 1000:.1f} ms per call while profiled; "
                   f"profile: `{text}`, `{html}`", ""]

        # 2. py-spy, every thread.
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not args.no_spy and Path(spy).exists():
            log("py-spy over warm %run_task")
            raw = out / "py-spy-run_task.txt"
            proc = subprocess.Popen(
                [spy, "record", "--pid", str(k.pid), "--rate", str(args.spy_rate), "--idle",
                 "--threads", "--nonblocking", "--format", "raw", "-o", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            try:
                time.sleep(1.0)
                r = k.ok(loop_cell(args.reps), {"dt": "_kb_dt"})
            finally:
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=60)
            if raw.is_file():
                report += [f"## py-spy (all threads), {args.reps} warm `%run_task`", "",
                           f"{r.expressions['dt'] / args.reps * 1000:.1f} ms per call while "
                           f"sampled; raw stacks: `{raw}`", "",
                           spy_summary(raw, args.spy_rate, args.reps)]
            else:
                report += ["## py-spy", "", f"py-spy wrote nothing: {err.decode()[-500:]}", ""]

        # 3. Phase accounting.
        k.ok("import benchmarks.phases as _kb_phases\n_kb_phases.install()")
        log("phase accounting: warm %run_task")
        k.ok("_kb_phases.reset()")
        cell_total = 0.0
        cells = []
        for _ in range(args.reps):
            r = k.ok(timed_cell(RUN_TASK), {"dt": "_kb_dt"})
            cells.append(r.expressions["dt"])
            cell_total += r.expressions["dt"]
        snap = k.value("_kb_phases.snapshot()")
        report += [f"## Phases of a warm `%run_task` (trivial task), {args.reps} calls", "",
                   f"cell median {statistics.median(cells) * 1000:.1f} ms "
                   f"(min {min(cells) * 1000:.1f}); load {load_text()}", "",
                   per_task_table(snap, args.reps, cell_total), ""]
        for n in args.sizes:
            log(f"phase accounting: %run_dag of {n} tasks")
            k.ok("_kb_phases.reset()")
            r = k.ok(timed_cell(f"_kb_r = %run_dag {dags.dag_id(n)}"), {"dt": "_kb_dt"})
            snap = k.value("_kb_phases.snapshot()")
            report += [f"## Phases of `%run_dag` with {n} trivial tasks", "",
                       f"run {r.expressions['dt']:.2f} s, "
                       f"{r.expressions['dt'] / n * 1000:.1f} ms/task; load {load_text()}", "",
                       per_task_table(snap, n, r.expressions["dt"]), ""]
        k.ok("_kb_phases.uninstall()")

        # 4. What-if variants.
        if args.what_if:
            variants = ["", "http"]
            k.ok("import benchmarks.whatif as _kb_whatif")
            results: dict[str, list[float]] = defaultdict(list)
            cpus: dict[str, list[float]] = defaultdict(list)
            for rnd in range(args.rounds):
                log(f"what-if round {rnd + 1}/{args.rounds}")
                for v in variants:
                    k.ok(f"_kb_whatif.apply({v!r})")
                    k.ok(RUN_TASK)  # settle
                    for _ in range(max(5, args.reps // 3)):
                        r = k.ok(timed_cell(RUN_TASK),
                                 {"dt": "_kb_dt", "cpu": "_kb_cpu", "s": "_kb_r.state"})
                        if r.expressions["s"] != "success":
                            raise RuntimeError(f"what-if {v!r}: task ended {r.expressions['s']}")
                        results[v or "kyte"].append(r.expressions["dt"])
                        cpus[v or "kyte"].append(r.expressions["cpu"])
            k.ok("_kb_whatif.restore()")
            dag_results: dict[str, list[float]] = defaultdict(list)
            for n in args.what_if_dag:
                if n not in args.sizes:
                    k.ok(define_cell(dags.dag_source(n)))
                for rnd in range(args.rounds):
                    log(f"what-if %run_dag {n}, round {rnd + 1}/{args.rounds}")
                    for v in ("", "setupmemo", "http"):
                        k.ok(f"_kb_whatif.apply({v!r})")
                        r = k.ok(timed_cell(f"_kb_r = %run_dag {dags.dag_id(n)}"),
                                 {"dt": "_kb_dt", "cpu": "_kb_cpu", "s": "_kb_r.state"})
                        if r.expressions["s"] != "success":
                            raise RuntimeError(f"what-if {v!r}: run ended {r.expressions['s']}")
                        key = f"%run_dag {n}: {v or 'kyte'}"
                        dag_results[key].append(r.expressions["dt"])
                        cpus[key].append(r.expressions["cpu"])
                k.ok("_kb_whatif.restore()")
            base = statistics.median(results["kyte"])
            base_cpu = statistics.median(cpus["kyte"])
            report += ["## What-if: variants of the in-process execution API "
                       "(warm `%run_task`, interleaved rounds)", "",
                       "Wall time is what the user waits for; the kernel's CPU time (all "
                       "threads) is steadier on a loaded machine but does not see time spent "
                       "waiting for threads to be scheduled.", "",
                       "| variant | wall median | wall min | wall vs Kyte | CPU median "
                       "| CPU vs Kyte |", "|---|---:|---:|---:|---:|---:|"]
            for v, vals in results.items():
                med, cpu = statistics.median(vals), statistics.median(cpus[v])
                report.append(f"| {v} | {med * 1000:.1f} ms | {min(vals) * 1000:.1f} ms "
                              f"| {base / med:.2f}× | {cpu * 1000:.1f} ms "
                              f"| {base_cpu / cpu:.2f}× |")
            report.append("")
            if dag_results:
                report += ["| %run_dag variant | wall median | wall min | wall vs Kyte "
                           "| CPU median | CPU vs Kyte |", "|---|---:|---:|---:|---:|---:|"]
                for v, vals in dag_results.items():
                    stock_key = v.split(":")[0] + ": kyte"
                    stock = statistics.median(dag_results[stock_key])
                    stock_cpu = statistics.median(cpus[stock_key])
                    med, cpu = statistics.median(vals), statistics.median(cpus[v])
                    report.append(f"| {v} | {med:.2f} s | {min(vals):.2f} s "
                                  f"| {stock / med:.2f}× | {cpu:.2f} s "
                                  f"| {stock_cpu / cpu:.2f}× |")
                report.append("")
    finally:
        with contextlib.suppress(Exception):
            k.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    report.append(f"load after: {load_text()}")
    text_report = "\n".join(report)
    (out / "profile.md").write_text(text_report + "\n", encoding="utf-8")
    print(text_report)
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
