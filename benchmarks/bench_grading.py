"""Grade a fabricated class with classgrade and with plain ``nbgrader autograde``; compare.

    python benchmarks/bench_grading.py --learners 100

Fabricates a course in a temporary folder (every assignment, released by nbgrader),
and ``--learners`` learners per assignment: mostly correct, some partial, a few broken. Then it
grades the class twice from the same submissions, each into a fresh gradebook: with
``python -m classgrade grade`` (sandbox on, all isolation) and with plain
``nbgrader autograde <assignment>`` (its defaults, one batch per assignment). It prints seconds
per notebook for each, their ratio, peak memory, and checks that both gave the same scores to
every submission that both graded.

    python benchmarks/bench_grading.py --learners 50 --skip-plain --db temporary

With ``--db`` (a PostgreSQL address, or ``temporary`` for a throwaway server started with
Debian's initdb/pg_ctl as the tests do) it also grades the class through the queue: the same
``grade`` with ``--db``, once with one local ``classgrade worker`` and once with two, and
prints each one's overhead per notebook against the local pool. The gradebook stays the same
SQLite file, so the difference is the queue's alone.

    git worktree add /tmp/before <revision>
    python benchmarks/bench_grading.py --learners 20 --skip-plain --baseline /tmp/before --rounds 3

With ``--baseline`` (another checkout of the project) it grades the class ``--rounds`` times
with each checkout's classgrade, alternating (this one, the baseline, this one, ...), so both
see the same machine; it prints each round and the ratio of the medians.

    python benchmarks/bench_grading.py --learners 8 --skip-plain --timings

With ``--timings`` classgrade's run notes where each notebook's time goes
(``classgrade.grade_outcome.timings``, off otherwise) and the benchmark prints the breakdown,
from the submission's preparation to its recorded grade: median and 90th percentile seconds per
notebook of each phase and its share of the total; then what the sandboxed kernel imports as it
starts (``python -X importtime`` inside a sandbox made as a notebook's is), heaviest first.
The timing files are read as untrusted data (``read_timings``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
# Every assignment of the course (solutions/<name>/<name>.ipynb).
ASSIGNMENTS = tuple(sorted(p.parent.name for p in ROOT.glob("solutions/*/*.ipynb")))
SUBMITTED_AT = "2026-01-10 12:00:00.000000 UTC"


def tool_env(extra_path: Path | None = None, root: Path = ROOT) -> dict[str, str]:
    """Environment for nbgrader and classgrade: ``root``'s checkout importable, TF quiet."""
    paths = [str(root)] + ([str(extra_path)] if extra_path else [])
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(paths),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TF_ENABLE_ONEDNN_OPTS": "0",
    }
    env.pop("NBGRADER_EXECUTION", None)
    return env


class Course:
    """A copy of the course (config, solutions, gradecheck), released by nbgrader itself."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
        shutil.copy(ROOT / "nbgrader_config.py", path / "nbgrader_config.py")
        shutil.copytree(ROOT / "gradecheck", path / "gradecheck", ignore=ignore)
        shutil.copytree(ROOT / "solutions", path / "solutions", ignore=ignore)
        subprocess.run(
            [sys.executable, "-m", "nbgrader", "generate_assignment", "*", "--force"],
            cwd=path,
            env=tool_env(path),
            capture_output=True,
            check=True,
            timeout=1800,
        )

    def release(self, assignment: str) -> nbformat.NotebookNode:
        """The released (student) notebook of ``assignment``."""
        return nbformat.read(self.path / "exercises" / assignment / f"{assignment}.ipynb", 4)

    def submit(self, student: str, assignment: str, notebook) -> None:
        """Put ``notebook`` (a notebook, or bytes as they are) where nbgrader collects it."""
        folder = self.path / "submitted" / student / assignment
        folder.mkdir(parents=True)
        path = folder / f"{assignment}.ipynb"
        if isinstance(notebook, bytes):
            path.write_bytes(notebook)  # a broken file reaches the graders as it is
        else:
            nbformat.write(notebook, path)
        (folder / "timestamp.txt").write_text(SUBMITTED_AT)


@functools.cache
def solution_answers(assignment: str) -> tuple[tuple[str, str], ...]:
    """(answer cell id, the solution's code) of every answer cell, read once per assignment."""
    source = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", 4)
    return tuple(
        (cell.metadata["nbgrader"]["grade_id"], cell.source)
        for cell in source.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    )


def answered(course: Course, assignment: str, keep: int | None = None):
    """The released notebook with the first ``keep`` (default: all) answers from solutions/."""
    wanted = dict(solution_answers(assignment)[:keep])
    notebook = course.release(assignment)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in wanted:
            cell.source = wanted[grade_id]
    return notebook


def fabricate(course: Course, learners: int) -> dict[str, str]:
    """Submissions for every learner and assignment; returns learner -> kind."""
    kinds = {}
    for i in range(learners):
        student = f"learner{i:03d}"
        # 80 % correct, 15 % partial, 5 % broken (a dead kernel or invalid JSON).
        kind = "broken" if i % 20 == 19 else "partial" if i % 20 >= 16 else "correct"
        kinds[student] = kind
        for a in ASSIGNMENTS:
            if kind == "correct":
                nb = answered(course, a)
            elif kind == "partial":
                nb = answered(course, a, keep=max(1, len(solution_answers(a)) // 2))
            elif i % 40 == 19:
                nb = b'{"cells": [ this is not JSON'
            else:
                nb = answered(course, a)
                nb.cells.insert(3, nbformat.v4.new_code_cell("import os\nos._exit(1)"))
            course.submit(student, a, nb)
    return kinds


class PeakMemory:
    """Peak resident memory of a process tree, sampled (children's rusage misses live ones)."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        while not self._stop.wait(0.2):
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return

    def stop(self) -> int:
        """Stop sampling; the peak resident memory seen, in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Timed:
    """One timed command: wall-clock and CPU seconds, peak memory, what it printed."""

    seconds: float
    cpu_seconds: float
    peak: int
    done: subprocess.CompletedProcess


PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def adopt_orphans() -> None:
    """Make this process the subreaper of its descendants (Linux), once.

    A process whose parent ended (multiprocessing's fork server, once the run's main process
    exits) is then re-parented here rather than to init, and its CPU time reaches this
    process's children's rusage when :func:`reap_orphans` waits for it.
    """
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_orphans(known: set[int], seconds: float = 120.0) -> None:
    """Wait for the adopted processes (children not in ``known``) to end, up to ``seconds``."""
    import psutil

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        adopted = [p.pid for p in psutil.Process().children() if p.pid not in known]
        if not adopted:
            return
        for pid in adopted:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    time.sleep(0.05)
    print(f"(processes of the run still running after {seconds:.0f} s: their CPU is not counted)")


def timed(command: list[str], cwd: Path, env: dict) -> Timed:
    """Run ``command``: its wall-clock seconds, peak memory in bytes and completed process.

    The CPU seconds are those of every process of the command's tree (kernels, jobs, the fork
    server, the command itself): each parent reaps its children, and this process adopts and
    reaps those whose parent ended first, so their time reaches its children's rusage.
    """
    import psutil

    adopt_orphans()
    known = {p.pid for p in psutil.Process().children()}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    meter = PeakMemory(proc.pid)
    out, err = proc.communicate()
    peak = meter.stop()
    seconds = time.monotonic() - start
    reap_orphans(known)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done = subprocess.CompletedProcess(command, proc.returncode, out, err)
    return Timed(seconds, cpu, peak, done)


def fresh_gradebook(course: Course, pristine: Path) -> None:
    """Reset the course to the gradebook ``pristine``, with nothing graded yet."""
    for name in ("autograded", ".classgrade", "gradebook-backups"):
        shutil.rmtree(course.path / name, ignore_errors=True)
    shutil.copyfile(pristine, course.path / "gradebook.db")


def scores(course: Course) -> dict[tuple[str, str], float]:
    """Each graded (assignment, student)'s total score, read from the gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course.path / 'gradebook.db'}") as gb:
        for a in ASSIGNMENTS:
            for sub in gb.assignment_submissions(a):
                out[(a, sub.student.id)] = float(sub.score)
    return out


@contextlib.contextmanager
def queue_database(db: str):
    """The queue's database: ``db``, or a throwaway server's (stopped and removed after)."""
    if db != "temporary":
        yield db
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import PostgresServer, postgres_bindir

    bindir = postgres_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (scripts/install-debian-packages.sh)")
    server = PostgresServer.start(bindir)
    try:
        yield server.url(server.new_database())
    finally:
        server.stop()


@contextlib.contextmanager
def local_workers(url: str, count: int, processes: int, logs: Path):
    """``count`` ``classgrade worker`` processes, each grading ``processes`` at a time."""
    procs, started = [], []
    for n in range(count):
        started.append(logs / f"worker-{n}.stderr")
        with started[-1].open("w") as stderr:
            command = [sys.executable, "-m", "classgrade", "worker", "--db", url]
            procs.append(
                subprocess.Popen(
                    [*command, "--processes", str(processes)],
                    env=tool_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            )
    deadline = time.monotonic() + 300
    while not all("grading up to" in p.read_text() for p in started):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit("the workers did not start: " + started[0].read_text()[-2000:])
        time.sleep(0.2)
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=300)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=60)


# -- where a notebook's time goes (--timings) --------------------------------------------------

MAX_NAME_CHARS = 40
MAX_ENTRIES = 200
"""Marks and sums kept per line of a timing file (a line is one process's flush)."""
PHASES = (
    # (label, from mark, to mark): consecutive on one notebook's path
    ("prepare: read, sanitise (run)", "prepare", "prepared"),
    ("wait for a slot, fork (run)", "prepared", "forked"),
    ("job process starts", "forked", "job"),
    ("sandbox set-up (scratch, sys.path)", "job", "kernel_start"),
    ("cgroup made", "kernel_start", "cgroup"),
    ("kernel process spawned (bwrap)", "cgroup", "kernel_spawned"),
    ("executor set-up", "kernel_spawned", "client"),
    ("kernel start to kernel_info reply", "client", "kernel_info_reply"),
    ("IOPub flush poll (jupyter_client)", "kernel_info_reply", "kernel_ready"),
    ("probe import in the kernel", "probe", "probe_ready"),
    ("outputs capped and sanitised, answer", "executed", "answer"),
    ("answer reaches the run", "answer", "answered"),
    ("recorded: files, gradebook, journal", "answered", "recorded"),
)
SUMS = (
    ("learner and setup cells (kernel)", "kernel_cells"),
    ("grade cells: learner calls (kernel)", "channel_requests"),
    ("setup cells again in the grader", "setup_cells_in_grader"),
)
FIRST_MARKS = ("prepare", "forked", "job")
LAST_MARKS = ("recorded", "answered", "answer", "executed")


@dataclass
class ProcessTimes:
    """What one process noted for one key: marks (name -> seconds) and sums (name -> seconds)."""

    key: str
    pid: int
    forked: float | None
    marks: dict[str, float] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)


def _number(value: object, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and low <= value <= high else None


def _name(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS and value.isprintable():
        return value
    return None


def read_timings(folder: Path, start: float, end: float) -> list[ProcessTimes]:
    """Every line of the folder's files, checked: untrusted data, whoever wrote it.

    A mark outside ``[start, end]`` (the run's own span on this clock), a sum outside
    ``[0, end - start]``, a name that is not short printable text, or a line that is not
    the expected JSON is dropped; the first value of a name repeated in a line is kept.
    """
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in path.read_text().splitlines()[:100_000]:
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(data, dict) or not isinstance(data.get("key", ""), str):
                    continue
                pid = data.get("pid")
                times = ProcessTimes(
                    key=data.get("key", "")[:500],
                    pid=pid if type(pid) is int else -1,
                    forked=_number(data.get("forked"), start, end),
                )
                marks = data.get("marks")
                for item in marks[:MAX_ENTRIES] if isinstance(marks, list) else []:
                    if isinstance(item, list) and len(item) == 2:
                        name, t = _name(item[0]), _number(item[1], start, end)
                        if name is not None and t is not None:
                            times.marks.setdefault(name, t)
                sums = data.get("sums")
                for name, s in list(sums.items())[:MAX_ENTRIES] if isinstance(sums, dict) else []:
                    checked, seconds = _name(name), _number(s, 0.0, end - start)
                    if checked is not None and seconds is not None:
                        times.sums.setdefault(checked, seconds)
                out.append(times)
    return out


def _notebook_timings(folder: Path, start: float, end: float) -> list[dict[str, float]]:
    """Each notebook's marks and sums (seconds), from the run's and its job's timing files."""
    run_marks: dict[str, dict[str, float]] = {}
    jobs: dict[tuple[int, float], dict] = {}
    for record in read_timings(folder, start, end):
        if record.forked is None:  # the run's main process, which forks nothing it times
            marks = run_marks.setdefault(record.key, {})
            for name, t in record.marks.items():
                marks.setdefault(name, t)
            continue
        job = jobs.setdefault((record.pid, record.forked), {"key": "", "marks": {}, "sums": {}})
        job["key"] = job["key"] or record.key
        for name, t in record.marks.items():
            job["marks"].setdefault(name, t)
        for name, value in record.sums.items():
            job["sums"].setdefault(name, value)
        job["marks"]["forked"] = record.forked
    out = []
    for job in jobs.values():
        key = job["key"]
        marks = dict(job["marks"])
        if key:
            for name, t in run_marks.get(key, {}).items():
                marks.setdefault(name, t)
            for name, t in run_marks.get(key.rsplit("/", 1)[0], {}).items():
                marks.setdefault(name, t)
        out.append({**{f"sum:{k}": v for k, v in job["sums"].items()}, **marks})
    return out


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_breakdown(folder: Path, start: float, end: float) -> None:
    """Per phase: median and 90th percentile seconds per notebook, and share of the total."""
    notebooks = _notebook_timings(folder, start, end)
    complete = [n for n in notebooks if "executed" in n and any(m in n for m in FIRST_MARKS)]
    if not complete:
        print("No timings were recorded (is classgrade.timings hooked into this tree?)")
        return
    first = next(m for m in FIRST_MARKS if all(m in n for n in complete))
    last = next(m for m in LAST_MARKS if all(m in n for n in complete))
    totals = [max(0.0, n[last] - n[first]) for n in complete]
    rows: list[tuple[str, list[float]]] = []
    for label, a, b in PHASES:
        values = [max(0.0, n[b] - n[a]) for n in complete if a in n and b in n]
        if values:
            rows.append((label, values))
    for label, name in SUMS:
        values = [n.get(f"sum:{name}", 0.0) for n in complete]
        rows.append((label, values))
    grader = [
        max(0.0, n.get("sum:grade_cells", 0.0) - n.get("sum:channel_requests", 0.0))
        for n in complete
    ]
    rows.append(("grade cells: the grader's own work", grader))
    counted = {name for _, name in SUMS} | {"grade_cells"}
    rest = [
        max(
            0.0,
            n["executed"]
            - n.get("probe_ready", n.get("kernel_ready", n["executed"]))
            - sum(n.get(f"sum:{k}", 0.0) for k in counted),
        )
        for n in complete
    ]
    rows.append(("nbclient between cells, kernel end", rest))
    whole = sum(totals)
    print()
    print(
        f"Where a notebook's time goes ({len(complete)} of {len(notebooks)} notebooks timed, "
        f"from '{first}' to '{last}'; seconds per notebook):"
    )
    print(f"  {'phase':40s} {'median':>8s} {'p90':>8s} {'share':>7s}")
    shown = 0.0
    for label, values in rows:
        share = sum(values) / whole if whole else 0.0
        shown += sum(values)
        print(
            f"  {label:40s} {statistics.median(values):8.3f} "
            f"{_quantile(values, 0.9):8.3f} {share:7.1%}"
        )
    print(f"  {'(not in a phase above)':40s} {'':8s} {'':8s} {1 - shown / whole:7.1%}")
    print(
        f"  {'total':40s} {statistics.median(totals):8.3f} {_quantile(totals, 0.9):8.3f} {1:7.0%}"
    )


IMPORTING_KERNEL = """\
import os, sys
from ipykernel.kernelapp import IPKernelApp
app = IPKernelApp.instance()
app.initialize(sys.argv[1:])
import numpy, _classgrade_codec, _classgrade_channel
sys.stderr.flush()
os._exit(0)
"""


def _in_sandbox(argv_of: object, runs: int) -> tuple[list[float], str]:
    """Run a command in a fresh notebook sandbox ``runs`` times: seconds, last stderr."""
    sys.path.insert(0, str(ROOT))
    from classgrade.sandbox import Limits, Sandbox, kernel_environment, sandbox_uid

    seconds, stderr = [], ""
    sandbox = Sandbox(Limits(), uid=sandbox_uid(0))
    try:
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="bench-importtime-") as tmp:
                scratch = Path(tmp) / "scratch"
                sandbox.prepare_scratch(scratch)
                command = sandbox.command(scratch, argv_of(scratch))  # type: ignore[operator]
                began = time.monotonic()
                done = subprocess.run(
                    command,
                    env=kernel_environment(),
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                seconds.append(time.monotonic() - began)
                if done.returncode != 0:
                    raise SystemExit(f"the sandboxed command failed: {done.stderr[-2000:]}")
                stderr = done.stderr
    finally:
        sandbox.release()
    return seconds, stderr


def print_kernel_imports(top: int = 15, runs: int = 3) -> None:
    """What the sandboxed kernel imports as it starts, measured with ``python -X importtime``."""
    bare, _ = _in_sandbox(lambda scratch: [sys.executable, "-P", "-c", "pass"], runs)

    def kernel(scratch: Path) -> list[str]:
        return [
            sys.executable,
            "-X",
            "importtime",
            "-P",
            "-c",
            IMPORTING_KERNEL,
            "-f",
            str(scratch / "ipc" / "kernel.json"),
            "--transport=ipc",
            f"--ip={scratch / 'ipc' / 'k'}",
            "--HistoryManager.enabled=False",
            "--HistoryManager.hist_file=:memory:",
            "--IPKernelApp.log_level=ERROR",
        ]

    started, report = _in_sandbox(kernel, runs)
    rows = []  # (self us, cumulative us, depth, name)
    for line in report.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((int(self_us), int(cumulative), depth, name.strip()))
    total = sum(r[0] for r in rows) / 1e6
    print()
    print(
        f"The sandboxed kernel's start, outside a grading run ({runs} runs each, median): "
        f"sandbox and a bare Python {statistics.median(bare):.3f} s; sandbox, Python, "
        f"the kernel's imports and set-up {statistics.median(started):.3f} s, of which "
        f"imports {total:.3f} s (-X importtime, {len(rows)} modules, last run)."
    )
    print("  Heaviest top-level imports (cumulative; 'self' is the module's own code):")
    print(f"  {'module':38s} {'cumulative s':>12s} {'self s':>8s}")
    top_level = sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[:top]
    for self_us, cumulative, _depth, name in top_level:
        print(f"  {name:38s} {cumulative / 1e6:12.3f} {self_us / 1e6:8.3f}")
    print("  Heaviest modules by their own code:")
    for self_us, _cumulative, _depth, name in sorted(rows, key=lambda r: -r[0])[:top]:
        print(f"  {name:38s} {'':12s} {self_us / 1e6:8.3f}")


def grade_command(*options: object) -> list[str]:
    """``classgrade grade`` of the course in the working folder, quiet, with ``options``."""
    return [sys.executable, "-m", "classgrade", "grade", "--quiet", *map(str, options)]


def compare_with_baseline(
    course: Course, pristine: Path, args: argparse.Namespace, expected: dict
) -> str:
    """Grade the class with this checkout and ``args.baseline`` in turn; a table of the runs."""
    baseline = args.baseline.resolve()
    if not (baseline / "classgrade" / "__main__.py").is_file():
        raise SystemExit(f"--baseline {baseline} is not a checkout of this project")
    runs: dict[str, list[Timed]] = {"this checkout": [], "baseline": []}
    for _ in range(args.rounds):
        for name, root in (("this checkout", ROOT), ("baseline", baseline)):
            fresh_gradebook(course, pristine)
            run = timed(grade_command("--workers", args.workers), course.path, tool_env(root=root))
            if "Graded" not in run.done.stdout or scores(course) != expected:
                raise SystemExit(
                    f"{name}'s run failed or gave other scores:\n{run.done.stdout}\n"
                    f"{run.done.stderr[-3000:]}"
                )
            runs[name].append(run)
    notebooks = args.learners * len(ASSIGNMENTS)
    lines = [f"Interleaved with the baseline {baseline} ({args.rounds} rounds, same scores):"]
    for name, values in runs.items():
        each = ", ".join(f"{r.seconds / notebooks:.3f}" for r in values)
        lines.append(
            f"  {name:14s} s / notebook: {each}; median "
            f"{statistics.median(r.seconds for r in values) / notebooks:.3f}; CPU s / notebook "
            f"{statistics.median(r.cpu_seconds for r in values) / notebooks:.3f}; peak MB "
            f"{max(r.peak for r in values) / 1e6:.0f}"
        )
    ratio = statistics.median(r.seconds for r in runs["baseline"]) / statistics.median(
        r.seconds for r in runs["this checkout"]
    )
    lines.append(f"  this checkout is {ratio:.2f}x as fast as the baseline (median time ratio)")
    return "\n".join(lines)


def main() -> int:
    """Fabricate the class, grade it both ways and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-plain", action="store_true", help="time classgrade only")
    parser.add_argument("--keep", type=Path, help="build the course here and keep it")
    parser.add_argument(
        "--db", help="also grade through the queue in this PostgreSQL database ('temporary')"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout whose classgrade to compare, interleaved"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each with --baseline")
    parser.add_argument(
        "--timings",
        action="store_true",
        help="print where a notebook's time goes, and what the sandboxed kernel imports",
    )
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-grading-"))
    course_dir = base / "course"
    if course_dir.exists():
        shutil.rmtree(course_dir)
    print(f"Fabricating {args.learners} learners x {len(ASSIGNMENTS)} assignments in {course_dir}")
    course = Course(course_dir)
    kinds = fabricate(course, args.learners)
    notebooks = args.learners * len(ASSIGNMENTS)
    pristine = base / "gradebook-pristine.db"
    shutil.copyfile(course.path / "gradebook.db", pristine)

    results: dict[str, Timed] = {}
    fresh_gradebook(course, pristine)
    env = tool_env()
    timing_dir = base / "timings"
    if args.timings:
        shutil.rmtree(timing_dir, ignore_errors=True)
        timing_dir.mkdir()
        env["CLASSGRADE_TIMINGS"] = str(timing_dir)  # grade_outcome.TIMINGS_ENV
    began = time.monotonic()
    results["classgrade"] = run = timed(
        grade_command("--workers", args.workers),
        course.path,
        env,
    )
    ended = time.monotonic()
    if "Graded" not in run.done.stdout:
        print(run.done.stdout, run.done.stderr[-3000:])
        return 1
    ours = scores(course)
    print(run.done.stdout.split("\n\n")[0])

    if args.baseline:
        print(compare_with_baseline(course, pristine, args, ours))

    if args.db:
        with queue_database(args.db) as url:
            slots = 2 * args.workers  # the local pool's jobs at a time, shared by the workers
            for count in (1, 2):
                fresh_gradebook(course, pristine)
                with local_workers(url, count, slots // count, base):
                    run = timed(
                        grade_command("--db", url),
                        course.path,
                        tool_env(),
                    )
                if "Graded" not in run.done.stdout or scores(course) != ours:
                    print(run.done.stdout, run.done.stderr[-3000:])
                    print("the queue's grades differ from the local pool's")
                    return 1
                results[f"queue, {count} worker{'s' * (count > 1)}"] = run

    if not args.skip_plain:
        fresh_gradebook(course, pristine)
        batches = [
            timed(
                [sys.executable, "-m", "nbgrader", "autograde", a],
                course.path,
                tool_env(course.path),
            )
            for a in ASSIGNMENTS
        ]
        results["nbgrader autograde"] = Timed(
            sum(b.seconds for b in batches),
            sum(b.cpu_seconds for b in batches),
            max(b.peak for b in batches),
            batches[-1].done,
        )
        theirs = scores(course)
        both = set(ours) & set(theirs)
        differ = {k: (ours[k], theirs[k]) for k in both if abs(ours[k] - theirs[k]) > 1e-9}
        shown = {f"{a}/{s}": v for (a, s), v in sorted(differ.items())[:10]}
        print(
            f"Scores compared on {len(both)} submissions graded by both: {len(differ)} differ"
            + (f": {json.dumps(shown)}" if differ else "")
        )

    print()
    print(f"{'':22s} {'s total':>9s} {'s / notebook':>13s} {'CPU s / nb':>11s} {'peak MB':>9s}")
    for name, r in results.items():
        print(
            f"{name:22s} {r.seconds:9.1f} {r.seconds / notebooks:13.3f} "
            f"{r.cpu_seconds / notebooks:11.3f} {r.peak / 1e6:9.0f}"
        )
    for name, r in results.items():
        if name.startswith("queue"):
            overhead = (r.seconds - results["classgrade"].seconds) / notebooks
            print(f"{name}: overhead {overhead:+.3f} s per notebook against the local pool")
    if "nbgrader autograde" in results:
        ratio = results["nbgrader autograde"].seconds / results["classgrade"].seconds
        print(f"classgrade is {ratio:.2f}x faster than plain nbgrader autograde")
    print(
        f"({notebooks} notebooks; {sum(k == 'correct' for k in kinds.values())} correct, "
        f"{sum(k == 'partial' for k in kinds.values())} partial, "
        f"{sum(k == 'broken' for k in kinds.values())} broken learners; "
        f"{os.cpu_count()} cores; this process's own peak "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB)"
    )
    if args.timings:
        print_breakdown(timing_dir, began, ended)
        print_kernel_imports()
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
