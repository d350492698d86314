"""classgrade as a whole run: refusal without a sandbox, regrades, a killed run, one writer."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from course import Course, correct, fill, grade_points, tool_env

from classgrade import reaper

pytestmark = pytest.mark.slow

A = "rnn"
FULL = sum(grade_points(A).values())
WRONG = {
    "rnn_step_answer": "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n"
    "    return 0 * x_t\n",
    "rnn_sequence_answer": "def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):\n"
    "    return None\n",
}


@pytest.fixture
def course(tmp_path_factory):
    return Course.create(tmp_path_factory.mktemp("runs") / "course", (A,), release=True)


def _dying(course):
    nb = correct(course, A)
    nb.cells.insert(3, nbformat.v4.new_code_cell("import os\nos._exit(1)"))
    return nb


def test_refuses_to_grade_without_a_sandbox_unless_told(course):
    course.submit("ann", A, correct(course, A))
    env = {**tool_env(), "CLASSGRADE_BWRAP": ""}
    command = [sys.executable, "-m", "classgrade", "grade", "--course-dir", str(course.path)]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 3
    assert "bubblewrap" in refused.stderr
    assert "--no-sandbox" in refused.stderr
    assert not (course.path / "autograded").exists()
    forced = subprocess.run(
        [*command, "--no-sandbox", "--quiet"], env=env, capture_output=True, text=True, timeout=600
    )
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "WARNING" in forced.stderr
    assert course.journal()[f"{A}/ann"]["score"] == FULL


def test_a_failed_regrade_leaves_no_stale_score(course):
    course.submit("bea", A, correct(course, A))
    assert course.classgrade("grade", "--quiet").returncode == 0
    assert course.journal()[f"{A}/bea"]["score"] == FULL
    assert course.has_submission("bea", A)
    # The learner resubmits a notebook that kills its kernel: the old full marks must go.
    course.submit("bea", A, _dying(course))
    run = course.classgrade("grade", "--quiet")
    assert run.returncode == 1
    entry = course.journal()[f"{A}/bea"]
    assert entry["status"] == "failed"
    assert "kernel died" in entry["reason"]
    assert not course.has_submission("bea", A)
    assert not course.autograded("bea", A).exists()
    status = course.classgrade("status", "--failed")
    assert "bea" in status.stdout
    assert "failed" in status.stdout


def test_unchanged_submissions_are_not_regraded_and_force_regrades(course):
    course.submit("cal", A, correct(course, A))
    assert course.classgrade("grade", "--quiet").returncode == 0
    again = course.classgrade("grade", "--quiet")
    assert "unchanged since the last run 1" in again.stdout
    forced = course.classgrade("grade", "--quiet", "--force")
    assert "Graded 1" in forced.stdout


@pytest.mark.scheduling
def test_a_killed_run_leaves_no_process_and_the_next_run_finishes_it(course):
    """SIGKILL of the whole command mid-run: no process of it survives; a rerun grades all."""
    students = {
        f"s{i}": (correct(course, A) if i % 2 else fill(course.release(A), WRONG)) for i in range(6)
    }
    # A learner whose notebook takes a while (the run is killed as its first kernel starts, so
    # mid-way in any case; the rerun waits this out once more).
    slow = correct(course, A)
    slow.cells.insert(3, nbformat.v4.new_code_cell("import time\ntime.sleep(5)"))
    students["s_slow"] = slow
    for student, nb in students.items():
        course.submit(student, A, nb)
    run, survivors, at_exit = course.classgrade_tree(
        "grade", "--quiet", "--workers", "2", timeout=900, kill_once_kernel_runs=True
    )
    # Each survivor's parent, group, state and what it waits on say which guarantee failed.
    assert survivors == [], json.dumps({"alive": survivors, "at_exit": at_exit}, indent=1)
    entries = course.journal()
    assert any(e["status"] == "pending" for e in entries.values())
    status = course.classgrade("status")
    assert "did not finish" in status.stdout
    resumed = course.classgrade("grade", "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-2000:]
    for student in students:
        entry = course.journal()[f"{A}/{student}"]
        assert entry["status"] == "graded"
        expected = 0.0 if student != "s_slow" and int(student[1:]) % 2 == 0 else FULL
        assert entry["score"] == expected
        assert course.has_submission(student, A)
    # The killed run's scratch was reaped by the next run (only the killed run's own: other
    # runs, e.g. another pytest-xdist worker's, may come and go meanwhile).
    killed = f"{reaper.SCRATCH_PREFIX}{run.pid}."
    assert not list(Path(tempfile.gettempdir()).glob(f"{killed}*"))


def test_a_second_run_at_the_same_time_is_refused(course):
    course.submit("dan", A, correct(course, A))
    (course.path / ".classgrade").mkdir(exist_ok=True)
    fd = os.open(course.path / ".classgrade" / "run.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        run = course.classgrade("grade", "--quiet")
    finally:
        os.close(fd)
    assert run.returncode == 2
    assert "another grading run" in run.stderr
