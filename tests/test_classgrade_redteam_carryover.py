"""Red team: state carried from one learner to a later learner of the same grading run.

One real ``python -m classgrade grade --workers 1`` run (two job slots, the sandbox on) grades a
handful of learners in the order of their ids. Planters (``a_plant_*``) leave everything they
can in their sandbox (``carryover_probe.carryover_plant_all``): files in every folder they can
write to (/tmp, /dev/shm, the working folder, $HOME, IPython's and Matplotlib's folders, site
folders and ``__pycache__`` if any is writable), environment variables, module state (attributes
on NumPy and on the standard library, ``sys.modules``, builtins, ``sys.path``, the import hooks,
the warning filters, NumPy's print options and error handling, the umask, both global random
generators seeded), open descriptors (a file, a memfd), sockets bound to abstract names, SysV
IPC, a POSIX message queue, and a detached process (double fork, setsid) holding a file lock, a
socket and a descriptor. They also try what the sandbox refuses (keys, the host name, IPython's
history, which the grading kernel keeps in memory only), and print each outcome.

Finders (``b_find_*``) come after them: with two slots, each starts only once a planter's job
has ended, in a slot a planter used. Each finder looks for all of it and for any process not its
own, answers correctly, and must score full marks: a find also breaks its ``simple_rnn_step``,
so the grade shows it.

The first learner of the run (``0_first``) is a finder before any planting: it finds nothing
and lists the files a fresh sandbox holds, which later finders must not exceed. The last
(``c_self_check``) plants and then finds in one kernel: it must find every key it planted, and
lose the points of ``simple_rnn_step`` for it, which shows the finders' checks work.

A pre-started or forked kernel, a reused sandbox, a shared folder or uid would fail here. Marked
``scheduling``: who runs the tests decides how the sandbox isolates (root's leased uid or an
ordinary user's user namespace); the test command runs it as itself and as an ordinary user.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from course import (
    Course,
    answer_of_grade_cells,
    correct,
    grade_points,
)

from classgrade.sandbox import SANDBOX_UID_BASE, SANDBOX_UID_SPAN

pytestmark = [
    pytest.mark.slow,
    pytest.mark.scheduling,
    pytest.mark.xdist_group("red-team-carryover"),
]

A = "rnn"
STEP = "rnn_step_answer"
PROBE = Path(__file__).with_name("carryover_probe.py")
FIRST = "0_first"
PLANTERS = ("a_plant_1", "a_plant_2")
FINDERS = ("b_find_1", "b_find_2", "b_find_3")
SELF_CHECK = "c_self_check"
RUN_LIMITS = (
    "--workers",
    "1",
    "--cell-seconds",
    "120",
    "--notebook-seconds",
    "300",
    "--quiet",
)
RUN_SECONDS = 1200  # the run's deadline; it takes tens of seconds

# What every planter must manage in any sandbox (the rest is tried and reported: a sandbox may
# refuse it). Paths as the kernel sees them (sandbox.KERNEL_FOLDERS, WORKDIR_IN_SANDBOX).
MARKER = "-".join(("c4rry0ver", "7e1f"))
NAME = MARKER.replace("-", "_")
REQUIRED = (
    f"file:/tmp/.{MARKER}",
    f"file:/tmp/home/.{MARKER}",
    f"file:/grading/work/.{MARKER}",
    f"file:/tmp/ipython/profile_default/startup/00-{MARKER}.py",
    "file:/tmp/mpl/matplotlibrc",
    "mplrc",
    f"env:{NAME.upper()}_ENVIRON",
    f"env:{NAME.upper()}_PUTENV",
    f"attr:numpy.{NAME}",
    f"attr:numpy.random.{NAME}",
    f"attr:numpy.linalg.{NAME}",
    f"attr:builtins.{NAME}",
    f"attr:os.{NAME}",
    f"attr:json.{NAME}",
    f"attr:__main__.{NAME}",
    f"sysmodules:{NAME}",
    "syspath",
    "metapath",
    "warnings",
    "numpy-printoptions",
    "numpy-seterr",
    "umask",
    "random:python",
    "random:numpy",
    f"fd:/tmp/{MARKER}.fd",
    f"fd:/memfd:{MARKER}",
    f"abstract:@{MARKER}-kernel",
    f"abstract:@{MARKER}-daemon",
    "sysv:shm",
    "sysv:sem",
    "sysv:msg",
    f"mqueue:/{MARKER}",
    "process:daemon",
    f"flock:/tmp/{MARKER}.lock",
)

PLANT = PROBE.read_text() + "\ncarryover_plant_all()  # planted-here\n"
FIND = (
    PROBE.read_text()
    + "\nif carryover_find_all():\n"
    + "    def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n"
    + "        return None  # something of another learner's was found\n"
)


def _full() -> float:
    return sum(grade_points(A).values())


def _step_points() -> float:
    owner = answer_of_grade_cells(A)
    return sum(p for cell, p in grade_points(A).items() if owner[cell] == STEP)


def _with_cells(nb, *sources: str):
    """``nb`` with learner code cells inserted, in order, right after the answer cell STEP."""
    nb = copy.deepcopy(nb)
    index = next(
        k for k, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == STEP
    )
    for k, source in enumerate(sources, start=1):
        nb.cells.insert(index + k, nbformat.v4.new_code_cell(source))
    return nb


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``(course, finished run, seconds it took)``."""
    course = Course.create(tmp_path_factory.mktemp("carryover") / "course", (A,), release=True)
    answered = correct(course, A)
    course.submit(FIRST, A, _with_cells(answered, FIND))
    for student in PLANTERS:
        course.submit(student, A, _with_cells(answered, PLANT))
    for student in FINDERS:
        course.submit(student, A, _with_cells(answered, FIND))
    course.submit(SELF_CHECK, A, _with_cells(answered, PLANT, FIND))
    started = time.monotonic()
    done = course.classgrade("grade", *RUN_LIMITS, timeout=RUN_SECONDS)
    return course, done, time.monotonic() - started


def _printed(course: Course, student: str) -> str:
    """Everything the learner's cells printed, in order."""
    nb = nbformat.read(course.autograded(student, A), 4)
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "stream"
    )


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix + " ")]


def _planted(text: str) -> dict[str, str]:
    """Key -> ``ok`` or the refusal, of each PLANTED line."""
    out = {}
    for line in _lines(text, "PLANTED"):
        _word, key, rest = [*line.split(" ", 2), ""][:3]
        out[key] = rest.strip()
    return out


def _ok(outcome: str) -> bool:
    return outcome.split(" ", 1)[0] == "ok"


def _found(text: str) -> set[str]:
    return {line.split(" ", 2)[1] for line in _lines(text, "FOUND")}


def _entry(course: Course, student: str) -> dict:
    return course.journal()[f"{A}/{student}"]


def _listing(text: str) -> set[str]:
    """The files a finder listed, with what differs between any two sandboxes made alike (the
    scratch folder's name, IPython's and Matplotlib's files named by pid, time or hash) masked."""
    paths = json.loads(_lines(text, "LISTING")[0].split(" ", 1)[1])
    return {re.sub(r"[0-9a-f]{8,}|\d+", "#", p) for p in paths}


def test_the_run_graded_every_learner(run):
    course, done, seconds = run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for student in (FIRST, *PLANTERS, *FINDERS, SELF_CHECK):
        assert _entry(course, student)["status"] == "graded", _entry(course, student)
    print(f"graded {2 + len(PLANTERS) + len(FINDERS)} notebooks in {seconds:.1f} s")


@pytest.mark.parametrize("student", list(PLANTERS))
def test_each_planter_planted_all_the_sandbox_allows(run, student):
    course, _done, _seconds = run
    printed = _printed(course, student)
    assert "PLANT DONE" in printed, printed[-3000:]
    planted = _planted(printed)
    writable = json.loads(_lines(printed, "WRITABLE")[0].split(" ", 1)[1])
    assert {"/tmp", "/tmp/home", "/grading/work"} <= set(writable), writable
    required = [*REQUIRED, *(f"file:{folder.rstrip('/')}/.{MARKER}" for folder in writable)]
    missing = {k: planted.get(k, "not tried") for k in required if not _ok(planted.get(k, ""))}
    assert not missing, missing
    assert _entry(course, student)["score"] == pytest.approx(_full()), _entry(course, student)


@pytest.mark.parametrize("student", [FIRST, *FINDERS])
def test_no_finder_finds_anything_of_an_earlier_learner(run, student):
    course, _done, _seconds = run
    printed = _printed(course, student)
    assert "FIND DONE" in printed, printed[-3000:]
    assert _lines(printed, "FOUND") == [], printed[-5000:]
    assert _entry(course, student)["score"] == pytest.approx(_full()), _entry(course, student)


@pytest.mark.parametrize("student", list(FINDERS))
def test_a_later_finder_sees_no_file_the_first_did_not(run, student):
    course, _done, _seconds = run
    first = _listing(_printed(course, FIRST))
    later = _listing(_printed(course, student))
    assert later - first == set(), sorted(later - first)


@pytest.mark.parametrize("student", list(FINDERS))
def test_a_later_finder_starts_in_the_state_the_first_did(run, student):
    """Environment, loaded modules, sys.path, import hooks, builtins, the notebook's names,
    NumPy's options, working folder, host name, warning filters: as the first finder's."""
    course, _done, _seconds = run
    first = json.loads(_lines(_printed(course, FIRST), "STATE")[0].split(" ", 1)[1])
    later = json.loads(_lines(_printed(course, student), "STATE")[0].split(" ", 1)[1])
    differences = {}
    for name, value in first.items():
        if later[name] != value:
            if isinstance(value, list):
                differences[name] = {
                    "added": sorted(set(later[name]) - set(value)),
                    "lost": sorted(set(value) - set(later[name])),
                }
            else:
                differences[name] = (value, later[name])
    assert not differences, differences


def test_the_checks_find_everything_planted_in_the_same_kernel(run):
    """Planted and found in one kernel: every planted key is found, and the find costs the
    points of ``simple_rnn_step``."""
    course, _done, _seconds = run
    printed = _printed(course, SELF_CHECK)
    assert "PLANT DONE" in printed, printed[-3000:]
    assert "FIND DONE" in printed, printed[-3000:]
    planted = {key for key, outcome in _planted(printed).items() if _ok(outcome)}
    assert set(REQUIRED) <= planted, sorted(set(REQUIRED) - planted)
    missed = planted - _found(printed)
    assert not missed, sorted(missed)
    score = _entry(course, SELF_CHECK)["score"]
    assert score <= _full() - _step_points(), _entry(course, SELF_CHECK)


def _identity(course: Course, student: str) -> dict:
    """Who the learner's kernel was (uid, namespaces) and when it first printed (time.time())."""
    return json.loads(_lines(_printed(course, student), "IDENTITY")[0].split(" ", 1)[1])


def test_every_finder_looked_after_a_planter_had_planted(run):
    """The run's order, which the case relies on: each finder's kernel looked only after a
    planter had finished planting (two slots, learners in the order of their ids)."""
    course, _done, _seconds = run
    planted = min(float(_lines(_printed(course, s), "PLANT DONE")[0].split()[2]) for s in PLANTERS)
    for student in FINDERS:
        assert _identity(course, student)["at"] > planted, student


def test_no_two_kernels_start_with_the_same_generators(run):
    """Each kernel's global generators were seeded afresh (kernels forked from one template
    would share them); as root, each sandbox ran as a leased uid."""
    course, _done, _seconds = run
    students = (FIRST, *PLANTERS, *FINDERS, SELF_CHECK)
    digests = [_lines(_printed(course, s), "GENERATORS")[0].split()[1] for s in students]
    assert len(set(digests)) == len(digests), dict(zip(students, digests, strict=True))
    for student in students:
        identity = _identity(course, student)
        if os.geteuid() == 0:
            assert SANDBOX_UID_BASE <= identity["uid"] < SANDBOX_UID_BASE + SANDBOX_UID_SPAN
        else:
            assert identity["uid"] == os.geteuid()
