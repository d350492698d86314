"""classgrade through the PostgreSQL queue: real server, real worker processes, real faults.

A course whose gradebook lives in a real PostgreSQL (``postgres_server``) is graded by
``python -m classgrade grade --db`` while separate ``python -m classgrade worker`` processes on
loopback take its notebooks. The grades must be exactly those of a local run; a worker SIGKILLed
while it holds a notebook, a coordinator SIGKILLed mid-run, a second run, and a database that
is gone must all end as the class-grading guide says.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import psycopg
import pytest
from course import Course, correct, fill, grade_points, partial, tool_env
from nbgrader.api import Gradebook
from postgres_server import postgres  # noqa: F401 (the session fixture)
from red_team_runs import (  # noqa: F401 (the session fixture)
    RED_TEAM_GROUP,
    copy_course,
    red_team_run,
)
from test_classgrade_launchers import section_blocks
from test_gradebook_postgres import course_api, use_database

from classgrade import job_queue

pytestmark = pytest.mark.slow

A = "rnn"
COURSE_ID = "rnn-course"
FULL = sum(grade_points(A).values())
LEASE = 10  # seconds: a killed worker's notebook moves on quickly
WAIT_SECONDS = 600
WRONG = {
    "rnn_step_answer": "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n"
    "    return 0 * x_t\n",
}


def _slow(course: Course, seconds: int) -> nbformat.NotebookNode:
    """A correct notebook that sleeps first: a worker surely holds it for a while."""
    nb = correct(course, A)
    nb.cells.insert(3, nbformat.v4.new_code_cell(f"import time\ntime.sleep({seconds})"))
    return nb


class Workers:
    """``classgrade worker`` processes on the course's database, stopped at the end."""

    def __init__(self, url: str, folder: Path):
        self.url = url
        self.folder = folder
        self.processes: list[subprocess.Popen] = []

    def start(self, count: int, processes: int = 1) -> None:
        """Start ``count`` workers; return once each says it takes notebooks."""
        started = []
        for _ in range(count):
            n = len(self.processes)
            started.append(self.folder / f"worker-{n}.stderr")
            with started[-1].open("w") as stderr:
                self.processes.append(
                    subprocess.Popen(
                        [
                            *(sys.executable, "-m", "classgrade", "worker", "--db", self.url),
                            *("--processes", str(processes), "--lease-seconds", str(LEASE)),
                        ],
                        env=tool_env(),
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                )
        _wait_for(
            lambda: all("grading up to" in path.read_text() for path in started),
            "the workers to start",
        )

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=60)


def _wait_for(condition, what: str, seconds: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {seconds} s")
        time.sleep(0.2)


@pytest.fixture
def pg_course(tmp_path, postgres) -> Iterator[tuple[Course, str, Workers]]:  # noqa: F811
    """A released course with its gradebook and queue in a fresh PostgreSQL database."""
    database = postgres.new_database()
    course = Course.create(tmp_path / "course", (A,))
    use_database(course, postgres.url(database, "postgresql+psycopg"))
    course.nbgrader("generate_assignment", A, "--force")
    workers = Workers(postgres.url(database), tmp_path)
    try:
        yield course, postgres.url(database), workers
    finally:
        workers.stop()


def _scores(course: Course) -> dict[str, dict[str, float]]:
    """Each learner's score per grade cell, from the PostgreSQL gradebook."""
    url = _gradebook_url(course)
    with Gradebook(url, COURSE_ID) as gb:
        out = {}
        for student in gb.students:
            try:
                nb = gb.find_submission_notebook(A, A, student.id)
            except Exception:
                continue
            out[student.id] = {g.name: g.score for g in nb.grades}
        return out


def _gradebook_url(course: Course) -> str:
    text = (course.path / "nbgrader_config.py").read_text()
    return text.rsplit("c.CourseDirectory.db_url = ", 1)[1].strip().strip("'\"")


def _submit_class(course: Course) -> None:
    course.submit("ann", A, correct(course, A))
    course.submit("bob", A, partial(course, A, keep=1))
    course.submit("cat", A, fill(course.release(A), WRONG))
    course.submit("dan", A, correct(course, A))


def _grade(course: Course, url: str, *args: str) -> subprocess.CompletedProcess:
    return course.classgrade("grade", "--quiet", "--db", url, "--lease-seconds", str(LEASE), *args)


def test_two_workers_give_the_grades_of_a_local_run(pg_course):
    course, url, workers = pg_course
    _submit_class(course)
    local = course.classgrade("grade", "--quiet", "--workers", "1")
    assert local.returncode == 0, local.stdout + local.stderr[-3000:]
    expected = _scores(course)
    assert set(expected) == {"ann", "bob", "cat", "dan"}
    workers.start(2)
    queued = _grade(course, url, "--force")
    assert queued.returncode == 0, queued.stdout + queued.stderr[-3000:]
    assert "Graded 4" in queued.stdout
    assert _scores(course) == expected
    # One job per notebook, each answered and its result row consumed.
    with job_queue.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM results").fetchone() == (0,)
        states = conn.execute("SELECT status, count(*) FROM procrastinate_jobs GROUP BY 1")
        assert dict(states.fetchall()) == {"succeeded": 4}
    again = _grade(course, url)
    assert "unchanged since the last run 4" in again.stdout


@pytest.mark.scheduling
def test_a_killed_worker_loses_its_notebook_to_another(pg_course):
    """SIGKILL of a worker holding a notebook: another grades it; the learner is not charged."""
    course, url, workers = pg_course
    course.submit("slow", A, _slow(course, 20))
    course.submit("ann", A, correct(course, A))
    workers.start(1)
    run = subprocess.Popen(
        [
            *(sys.executable, "-m", "classgrade", "grade", "--quiet", "--db", url),
            *("--lease-seconds", str(LEASE), "--course-dir", str(course.path)),
        ],
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        victim = psutil.Process(workers.processes[0].pid)
        # It holds a notebook once a sandbox (bubblewrap) runs under it.
        _wait_for(
            lambda: any("bwrap" in " ".join(_cmdline(p)) for p in victim.children(recursive=True)),
            "the worker to start a kernel",
        )
        tree = victim.children(recursive=True)
        workers.processes[0].send_signal(signal.SIGKILL)
        workers.processes[0].wait(timeout=60)
        workers.start(1)  # the other worker, started after the kill
        out, err = run.communicate(timeout=WAIT_SECONDS)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out + err[-3000:]
    assert "Graded 2" in out
    assert _scores(course)["slow"] == _scores(course)["ann"]
    assert sum(_scores(course)["slow"].values()) == FULL
    with job_queue.connect(url) as conn:
        retried = conn.execute("SELECT max(attempts) FROM procrastinate_jobs").fetchone()
    assert retried is not None
    assert retried[0] >= 1
    # Nothing of the killed worker lives on: its job, kernel and sandbox ended with it.
    _wait_for(lambda: not any(_alive(p) for p in tree), "the killed worker's processes to end", 60)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.scheduling
def test_a_killed_coordinator_is_finished_by_a_rerun(pg_course):
    """The coordinator SIGKILLed mid-run; a second one meanwhile is refused; formgrader and
    ``nbgrader export`` read the gradebook while it is written; a rerun finishes the class.

    Mid-run, the coordinator is stopped (SIGSTOP) while the second one tries, however slowly the
    busy machine starts it: a stopped process keeps its lock, as a slow one would.
    """
    course, url, workers = pg_course
    _submit_class(course)
    course.submit("slow", A, _slow(course, 15))
    workers.start(2)
    run = subprocess.Popen(
        [
            *(sys.executable, "-m", "classgrade", "grade", "--quiet", "--db", url),
            *("--lease-seconds", str(LEASE), "--course-dir", str(course.path)),
        ],
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _graded(course) >= 1, "the first grade to be recorded")
        run.send_signal(signal.SIGSTOP)
        assert _graded(course) < 5, "the run ended before it could be stopped mid-run"
        second = _grade(course, url)
        assert second.returncode == 2, second.stdout + second.stderr[-3000:]
        assert "another grading run" in second.stderr
        run.send_signal(signal.SIGCONT)
        # Read while the run writes: everything graded so far is there (and maybe more).
        entries = course.journal().items()
        graded = {k.split("/")[1]: e["score"] for k, e in entries if e["status"] == "graded"}
        seen = {
            s["student"]: s["score"]
            for s in course_api(course).get_submissions(A)  # formgrader's query
            if s.get("autograded")
        }
        assert graded.items() <= seen.items()
        export = course.path / "mid-run.csv"
        course.nbgrader("export", "--to", str(export))
        with export.open() as f:
            exported = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(f)}
        assert graded.items() <= exported.items()
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    rerun = _grade(course, url)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-3000:]
    journal = course.journal()
    assert {k: e["status"] for k, e in journal.items()} == {
        f"{A}/{s}": "graded" for s in ("ann", "bob", "cat", "dan", "slow")
    }
    scores = _scores(course)
    assert sum(scores["ann"].values()) == FULL
    assert sum(scores["slow"].values()) == FULL
    assert scores["dan"] == scores["ann"]
    assert 0 < sum(scores["bob"].values()) < FULL
    # Nothing was queued twice: the rerun found each notebook's job queued, running or done.
    with job_queue.connect(url) as conn:
        states = conn.execute("SELECT status, count(*) FROM procrastinate_jobs GROUP BY 1")
        assert dict(states.fetchall()) == {"succeeded": 5}


def _graded(course: Course) -> int:
    path = course.path / ".classgrade" / "journal.json"
    if not path.exists():
        return 0
    try:
        return sum(e.get("status") == "graded" for e in course.journal().values())
    except ValueError:
        return 0


def test_a_worker_refuses_to_start_without_a_sandbox(pg_course):
    _course, url, _workers = pg_course
    refused = subprocess.run(
        [sys.executable, "-m", "classgrade", "worker", "--db", url],
        env={**tool_env(), "CLASSGRADE_BWRAP": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 3
    assert "bubblewrap" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_database_that_is_gone_is_a_clear_message(pg_course, postgres):  # noqa: F811
    """Workers and coordinator name the problem in one line, without the password."""
    course, url, _workers = pg_course
    course.submit("ann", A, correct(course, A))
    dead = url.replace(f":{postgres.port}/", f":{_closed_port()}/")
    worker = subprocess.run(
        [sys.executable, "-m", "classgrade", "worker", "--db", dead],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 2, worker.stderr
    assert "cannot reach the database" in worker.stderr
    run = _grade(course, dead)
    assert run.returncode == 2, run.stderr
    assert "cannot reach the database" in run.stderr
    for done in (worker, run):
        assert "Traceback" not in done.stderr
        assert postgres.password not in done.stderr + done.stdout
    assert _scores(course) == {}  # no grade recorded


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_guides_local_example_runs_as_written(pg_course):
    """The guide's two local workers and ``grade``, run by bash from the course folder."""
    course, url, _workers = pg_course
    _submit_class(course)
    (example,) = [b for b in section_blocks("bash") if 'worker --db "$DB"' in b]
    done = subprocess.run(
        ["bash", "-e", "-c", example],
        cwd=course.path,
        env={**tool_env(), "DB": url},
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "Graded 4" in done.stdout
    scores = _scores(course)
    assert sum(scores["ann"].values()) == FULL
    assert scores["dan"] == scores["ann"]


def test_workers_log_in_as_the_guides_role_and_cannot_read_grades(pg_course, postgres):  # noqa: F811
    """The guide's role for workers: it grades a class, and nbgrader's tables are closed to it."""
    course, url, workers = pg_course
    course.submit("ann", A, correct(course, A))
    job_queue.prepare(url)  # what the first `grade --db` does
    (grants,) = section_blocks("sql")
    password = "worker-" + postgres.password[:8]
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in grants.replace("'...'", f"'{password}'").split(";"):
            if statement.strip():
                conn.execute(statement)  # type: ignore[call-overload]
    role_url = url.replace(f"postgres:{postgres.password}@", f"grading_worker:{password}@")
    with psycopg.connect(role_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM public.grade")
    workers.url = role_url
    workers.start(1)
    run = _grade(course, url)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert sum(_scores(course)["ann"].values()) == FULL


@pytest.mark.xdist_group(RED_TEAM_GROUP)  # on the worker that makes the red team's run
def test_the_red_team_gets_the_same_outcomes_through_the_queue(
    tmp_path,
    postgres,  # noqa: F811
    red_team_run,  # noqa: F811
):
    """The red team's submissions (all but the limit cases), graded by the local pool (the
    red team's own run, shared) and then, in a copy of that graded course, by two queue workers:
    every learner's status, score and reason are the same."""
    import test_classgrade_redteam as red_team

    graded, local, _, _ = red_team_run
    assert "Graded" in local.stdout, local.stderr[-3000:]

    def outcomes(course: Course) -> dict[str, tuple]:
        return {
            key: (e["status"], e.get("score"), e.get("reason"))
            for key, e in course.journal().items()
        }

    expected = outcomes(graded)
    course = copy_course(graded, tmp_path / "course")
    url = postgres.url(postgres.new_database())
    workers = Workers(url, tmp_path)
    workers.start(2, processes=2)
    try:
        queued = _grade(course, url, *red_team.RUN_LIMITS, "--force")
    finally:
        workers.stop()
    assert "Graded" in queued.stdout, queued.stderr[-3000:]
    # --force marked every entry of the copied journal pending before grading: each outcome
    # compared is the queue run's own.
    assert outcomes(course) == expected
