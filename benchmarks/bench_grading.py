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
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
# Every assignment of the course (solutions/<name>/<name>.ipynb).
ASSIGNMENTS = tuple(sorted(p.parent.name for p in ROOT.glob("solutions/*/*.ipynb")))
SUBMITTED_AT = "2026-01-10 12:00:00.000000 UTC"


def tool_env(extra_path: Path | None = None) -> dict[str, str]:
    """Subprocess environment for nbgrader and classgrade: this checkout importable, TF quiet."""
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
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


def timed(
    command: list[str], cwd: Path, env: dict
) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``command``: its wall-clock seconds, peak memory in bytes and completed process."""
    start = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    meter = PeakMemory(proc.pid)
    out, err = proc.communicate()
    peak = meter.stop()
    done = subprocess.CompletedProcess(command, proc.returncode, out, err)
    return time.monotonic() - start, peak, done


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

    results = {}
    fresh_gradebook(course, pristine)
    seconds, peak, done = timed(
        [sys.executable, "-m", "classgrade", "grade", "--quiet", "--workers", str(args.workers)],
        course.path,
        tool_env(),
    )
    if "Graded" not in done.stdout:
        print(done.stdout, done.stderr[-3000:])
        return 1
    results["classgrade"] = (seconds, peak)
    ours = scores(course)
    print(done.stdout.split("\n\n")[0])

    if args.db:
        with queue_database(args.db) as url:
            slots = 2 * args.workers  # the local pool's jobs at a time, shared by the workers
            for count in (1, 2):
                fresh_gradebook(course, pristine)
                with local_workers(url, count, slots // count, base):
                    seconds, peak, done = timed(
                        [sys.executable, "-m", "classgrade", "grade", "--quiet", "--db", url],
                        course.path,
                        tool_env(),
                    )
                if "Graded" not in done.stdout or scores(course) != ours:
                    print(done.stdout, done.stderr[-3000:])
                    print("the queue's grades differ from the local pool's")
                    return 1
                results[f"queue, {count} worker{'s' * (count > 1)}"] = (seconds, peak)

    if not args.skip_plain:
        fresh_gradebook(course, pristine)
        plain_seconds, plain_peak = 0.0, 0
        for a in ASSIGNMENTS:
            s, p, done = timed(
                [sys.executable, "-m", "nbgrader", "autograde", a],
                course.path,
                tool_env(course.path),
            )
            plain_seconds += s
            plain_peak = max(plain_peak, p)
        results["nbgrader autograde"] = (plain_seconds, plain_peak)
        theirs = scores(course)
        both = set(ours) & set(theirs)
        differ = {k: (ours[k], theirs[k]) for k in both if abs(ours[k] - theirs[k]) > 1e-9}
        shown = {f"{a}/{s}": v for (a, s), v in sorted(differ.items())[:10]}
        print(
            f"Scores compared on {len(both)} submissions graded by both: {len(differ)} differ"
            + (f": {json.dumps(shown)}" if differ else "")
        )

    print()
    print(f"{'':22s} {'s total':>9s} {'s / notebook':>13s} {'peak MB':>9s}")
    for name, (s, p) in results.items():
        print(f"{name:22s} {s:9.1f} {s / notebooks:13.3f} {p / 1e6:9.0f}")
    for name, (s, _p) in results.items():
        if name.startswith("queue"):
            overhead = (s - results["classgrade"][0]) / notebooks
            print(f"{name}: overhead {overhead:+.3f} s per notebook against the local pool")
    if "nbgrader autograde" in results:
        ratio = results["nbgrader autograde"][0] / results["classgrade"][0]
        print(f"classgrade is {ratio:.2f}x faster than plain nbgrader autograde")
    print(
        f"({notebooks} notebooks; {sum(k == 'correct' for k in kinds.values())} correct, "
        f"{sum(k == 'partial' for k in kinds.values())} partial, "
        f"{sum(k == 'broken' for k in kinds.values())} broken learners; "
        f"{os.cpu_count()} cores; this process's own peak "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB)"
    )
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
