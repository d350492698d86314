"""The red team's run with generous limits, graded once per test session and shared.

``test_classgrade_redteam`` asserts on that run (every case but the limit cases, each followed by
a correct submission, graded by classgrade with the sandbox on); ``test_classgrade_postgres``
grades a copy of the same graded course again through the PostgreSQL queue and compares the
outcomes. Use the session fixture ``red_team_run`` (``from red_team_runs import red_team_run`` in
a test module, and mark its tests ``xdist_group(RED_TEAM_GROUP)``, so that one pytest-xdist
worker runs them all): pytest makes a session fixture imported into several modules once per
module, so the run itself is kept here, made on first use. Read the graded course, never change
it: a test that grades it again grades a ``copy_course`` of it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from course import Course

RED_TEAM_GROUP = "red-team"
"""The pytest-xdist group of every test that reads the run: one worker makes it once."""

_RUNS: dict[str, tuple] = {}

COPY_SECONDS = 600
"""How long copying a graded course may take."""


@pytest.fixture(scope="session")
def red_team_run(tmp_path_factory):
    """``(course, run, digest of submitted/ before the run, (survivors, at_exit))`` of the red
    team's run of every case but the limit cases, with generous limits (``_grade`` in
    ``test_classgrade_redteam``)."""
    if "generous" not in _RUNS:
        import test_classgrade_redteam as red_team

        _RUNS["generous"] = red_team._grade(
            tmp_path_factory.mktemp("redteam"), red_team._in_run(limits=False), red_team.RUN_LIMITS
        )
    return _RUNS["generous"]


def copy_course(course: Course, path: Path) -> Course:
    """A copy of ``course`` (and its site folder) at ``path``, as the submissions were made.

    ``cp -a`` keeps what the red team hands in as it is: symbolic links, hard links between the
    course's files, FIFOs and sockets, modes and times. A symbolic link that pointed into
    ``course`` by its absolute path points to the same place in the copy, so grading the copy
    never reaches the original.
    """
    copied = Course(path)
    for source, target in ((course.path, copied.path), (course.site, copied.site)):
        done = subprocess.run(
            ["cp", "-a", "--", str(source), str(target)],
            capture_output=True,
            text=True,
            timeout=COPY_SECONDS,
        )
        if done.returncode != 0:
            raise AssertionError(f"cp -a {source} {target} failed:\n{done.stderr}")
    original = str(course.path)
    for folder, dirs, files in os.walk(copied.path):
        for name in dirs + files:
            link = Path(folder) / name
            if not link.is_symlink():
                continue
            target = os.readlink(link)
            if target == original or target.startswith(original + os.sep):
                link.unlink()
                link.symlink_to(str(copied.path) + target[len(original) :])
    return copied
