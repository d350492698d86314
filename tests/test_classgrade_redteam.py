"""Red team: hostile and broken submissions of the real assignments, graded by classgrade.

Every guarantee in the class-grading guide's table (book/class-grading.md) that a submission
can attack has submissions here, built from the generated student notebooks of all four
assignments. All of them, each followed by a correct
submission, are graded by real runs with the sandbox on; then each outcome is asserted: the
score it must get, or the failure and its reason. The correct submissions must all score full
marks. Two runs, each on a course of its own: the cases whose outcome depends on the sandbox's
limits, its identity or its kills (LIMIT_CASES: endless loops, sleeps, bombs, floods, detached
processes, reads of the host's files) are graded with short limits that they hit by design
(marked ``scheduling``: the test command runs them beside busy CPUs, as itself and as an ordinary
user); every other case with generous limits that a busy two-core machine stays well inside.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import re
import socket
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from course import (
    ASSIGNMENTS,
    ROOT,
    Course,
    answer_of_grade_cells,
    correct,
    fill,
    grade_points,
    solution_answers,
)
from red_team_runs import RED_TEAM_GROUP, red_team_run  # noqa: F401 (the session fixture)

# One pytest-xdist worker makes each run once: the generous run's tests (and the queue's test that
# grades a copy of it) in one group, the limit run's in another (both marks join its name). Named
# here, since many tests find their run by name (request.getfixturevalue).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(RED_TEAM_GROUP)]
LIMIT_RUN_GROUP = pytest.mark.xdist_group("red-team-limits")

A = "rnn"  # the assignment most poisons are built from
STEP, SEQUENCE = "rnn_step_answer", "rnn_sequence_answer"

WRONG_STEP = """def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    return np.tanh(x_t @ W_xh)  # ignores the state: wrong
"""
WRONG_SEQUENCE = """def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    return np.zeros((np.shape(x)[0], np.shape(x)[1], np.shape(W_hh)[0]))
"""
SLEEP_MARKER = "3171"
TIMESTAMP = "2026-01-10 12:00:00.000000 UTC"
MADE = object()  # a builder's answer: it made the submission folder (or link) itself
HIDDEN_TEXT = ("BEGIN HIDDEN TESTS", "gradecheck", "SQLite format")
GUIDE = ROOT / "book" / "class-grading.md"
GUARANTEES_HEADING = "## 保证什么，不保证什么"
# What a failed import says in the sandbox: TensorFlow and Keras are not in it at all.
NOT_AVAILABLE = "the grading kernel has only NumPy, SciPy and Matplotlib"

# The sections of this file -> the rows (aspects) of the guide's table of guarantees they attack.
THREAT_ROWS = {
    "file": ("分数对应学习者自己的工作",),
    "order": ("分数对应学习者自己的工作",),
    "kernel": ("评分进程里运行的代码", "宿主机上的文件", "不留下进程"),
    "data": ("评分进程里运行的代码",),
    "links": ("读取提交",),
    "display": ("教师看到的文字",),
    "resilience": ("一本笔记本不拖住全班", "资源限制", "机器繁忙时"),
    "keras": ("用 Keras 的层代替自己的代码",),
}
# Rows no submission can attack here, each with the test (file, function) that backs it.
TESTED_ELSEWHERE = {
    "不留下旧分数": (
        "test_classgrade_redteam_inputs.py",
        "test_changed_points_and_a_stricter_hidden_test_regrade",
    ),
    "反馈": ("test_classgrade_agrees.py", "test_scores_and_messages_match_plain_nbgrader"),
    "`--no-sandbox`": (
        "test_classgrade_runs.py",
        "test_refuses_to_grade_without_a_sandbox_unless_told",
    ),
    "评分后的笔记本和反馈页面": (
        "test_classgrade_redteam_rendering.py",
        "test_no_page_runs_script_requests_or_navigates",
    ),
    "一本笔记本留下的东西到不了下一本": (
        "test_classgrade_redteam_carryover.py",
        "test_no_finder_finds_anything_of_an_earlier_learner",
    ),
}


@dataclass
class Poison:
    name: str
    threat: str  # a section of this file (a key of THREAT_ROWS), or "control"
    expect: str  # "graded" or "failed"
    score: float | None = None  # expected total for "graded"
    reason: tuple[str, ...] = ()  # one of these in the failure reason
    assignment: str = A
    student: str | None = None  # a learner id of its own (default: p<index>_<name>)
    # Also accepted: a failure with one of these in its reason (a bomb may take its kernel).
    or_failed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # each of these in the autograded notebook's error outputs


def _cells(nb, grade_id: str):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]


def _grade_cells(nb):
    return [
        c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
        and not c.metadata["nbgrader"].get("solution")
    ]


def _wrong(course):
    return fill(course.release(A), {STEP: WRONG_STEP, SEQUENCE: WRONG_SEQUENCE})


def _with_cell(nb, source: str, after: str = SEQUENCE):
    """``nb`` with a learner code cell inserted after the answer cell ``after``."""
    nb = copy.deepcopy(nb)
    index = nb.cells.index(_cells(nb, after)[0])
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


def _answers(step: str | None = None, sequence: str | None = None) -> dict[str, str]:
    answers = solution_answers(A)
    if step is not None:
        answers[STEP] = step
    if sequence is not None:
        answers[SEQUENCE] = sequence
    return answers


POISONS: list[Poison] = []
BUILDERS = {}


def poison(name, threat, expect, score=None, reason=(), **more):
    def register(builder):
        POISONS.append(Poison(name, threat, expect, score, tuple(reason), **more))
        BUILDERS[name] = builder
        return builder

    return register


def full(assignment: str = A) -> float:
    return sum(grade_points(assignment).values())


# -- Tampering with the notebook file ------------------------------------------------------


@poison("edit_locked_tests", "file", "graded", 0)
def _(course, folder):
    nb = _wrong(course)
    for cell in _grade_cells(nb):
        cell.source = "pass  # the tests are gone"
        cell.metadata.nbgrader["locked"] = False
    return nb


@poison("change_points_type_locked", "file", "graded", 7)
def _(course, folder):
    nb = correct(course, A)
    for cell in _grade_cells(nb):
        cell.metadata.nbgrader.update(points=100, locked=False)
    _grade_cells(nb)[0].cell_type = "markdown"
    return nb


@poison("rename_grade_id", "file", "graded", 7)
def _(course, folder):
    nb = correct(course, A)
    _cells(nb, "rnn_step_bias")[0].metadata.nbgrader["grade_id"] = "renamed_by_learner"
    return nb


@poison("delete_test_cells", "file", "graded", 0)
def _(course, folder):
    nb = _wrong(course)
    nb.cells = [c for c in nb.cells if c not in _grade_cells(nb)]
    return nb


@poison("strip_test_metadata", "file", "graded", 0)
def _(course, folder):
    nb = _wrong(course)
    for cell in _grade_cells(nb):
        del cell.metadata["nbgrader"]
        cell.source = "pass"
    return nb


@poison("duplicate_grade_cell", "file", "graded", 7)
def _(course, folder):
    nb = correct(course, A)
    cell = _cells(nb, "rnn_step_bias")[0]
    nb.cells.insert(nb.cells.index(cell), copy.deepcopy(cell))
    nb.cells.append(copy.deepcopy(cell))
    return nb


@poison("schema_version", "file", "graded", 7)
def _(course, folder):
    nb = correct(course, A)
    for cell in nb.cells:
        if "nbgrader" in cell.metadata:
            cell.metadata.nbgrader["schema_version"] = 99
    return nb


@poison("skip_execution_tags", "file", "graded", 0)
def _(course, folder):
    nb = course.release(A)  # untouched: every answer raises NotImplementedError
    for cell in nb.cells:
        cell.metadata["tags"] = ["skip-execution", "raises-exception"]
    return nb


@poison("bogus_kernelspec", "file", "graded", 7)
def _(course, folder):
    nb = correct(course, A)
    nb.metadata["kernelspec"] = {"name": "bash", "display_name": "Bash", "language": "bash"}
    return nb


@poison("prebaked_outputs", "file", "graded", 0)
def _(course, folder):
    nb = _wrong(course)
    for cell in _grade_cells(nb):
        cell.execution_count = 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="all passed\n")]
    return nb


@poison("invalid_json", "file", "failed", reason=("not valid JSON",))
def _(course, folder):
    return b'{"cells": [{"cell_type": "code", "source": '


@poison("renamed_notebook", "file", "failed", reason=("renamed",))
def _(course, folder):
    return ("my-homework", correct(course, A))


@poison("empty_folder", "file", "failed", reason=("empty",))
def _(course, folder):
    return None


@poison("oversized_notebook", "file", "failed", reason=("limit",))
def _(course, folder):
    nb = correct(course, A)
    nb.cells.append(nbformat.v4.new_markdown_cell("x" * 3_000_000))
    return nb


@poison("shadow_module_files", "file", "graded", 0)
def _(course, folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "numpy.py").write_text("def allclose(*a, **k):\n    return True\n")
    (folder / "rnn_ref.py").write_text("def simple_rnn_step(*a, **k):\n    return 0\n")
    (folder / "gradecheck.py").write_text("raise SystemExit\n")
    startup = folder / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-cheat.py").write_text("import numpy\nnumpy.allclose = lambda *a, **k: True\n")
    return _wrong(course)


# -- From inside the kernel ------------------------------------------------------------------


@poison("patch_numpy_testing", "kernel", "graded", 0)
def _(course, folder):
    return _with_cell(
        _wrong(course),
        "np.testing.assert_allclose = lambda *a, **k: None\n"
        "np.allclose = lambda *a, **k: True\n"
        "np.testing.assert_array_almost_equal = lambda *a, **k: None\n"
        "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n",
    )


@poison("input_transformer", "kernel", "graded", 0)
def _(course, folder):
    return _with_cell(
        _wrong(course),
        "def _blank(lines):\n"
        "    return ['pass\\n'] if any('assert' in l for l in lines) else lines\n"
        "get_ipython().input_transformers_cleanup.append(_blank)\n"
        "get_ipython().input_transformers_post.append(_blank)\n",
    )


@poison("pre_run_cell_hook", "kernel", "graded", 0)
def _(course, folder):
    return _with_cell(
        _wrong(course),
        "def _hook(*args):\n"
        "    import numpy\n"
        "    numpy.allclose = lambda *a, **k: True\n"
        "    numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "get_ipython().events.register('pre_run_cell', _hook)\n"
        "get_ipython().events.register('pre_execute', _hook)\n",
    )


@poison("override_showtraceback", "kernel", "graded", 0)
def _(course, folder):
    return _with_cell(
        _wrong(course),
        "ip = get_ipython()\n"
        "ip.showtraceback = lambda *a, **k: None\n"
        "ip.set_custom_exc((BaseException,), lambda *a, **k: None)\n",
    )


@poison("always_equal_object", "kernel", "graded", 0)
def _(course, folder):
    cheat = (
        "class Anything:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "    shape = (2, 2)\n"
        "    def __array__(self, *a, **k):\n        raise TypeError('no')\n"
    )
    return fill(
        course.release(A),
        {
            STEP: cheat
            + "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n    return Anything()\n",
            SEQUENCE: "def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):\n"
            "    return np.array([Anything()], dtype=object)\n",
        },
    )


@poison("ndarray_subclass", "kernel", "graded", 0)
def _(course, folder):
    cheat = (
        "class Yes(np.ndarray):\n"
        "    def __eq__(self, other):\n        return np.ones(np.shape(other), bool)\n"
        "    def __array__(self, *a, **k):\n        return np.asarray(EXPECTED)\n"
    )
    return fill(
        course.release(A),
        {
            STEP: cheat + "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n"
            "    return np.zeros((len(x_t), len(W_hh))).view(Yes)\n",
            SEQUENCE: WRONG_SEQUENCE,
        },
    )


@poison("calls_reference_package", "kernel", "graded", 0)
def _(course, folder):
    return fill(
        course.release(A),
        _answers(
            step="def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n"
            "    import rnn_ref\n"
            "    return rnn_ref.simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h)\n",
            sequence="def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):\n"
            "    import rnn_ref\n"
            "    p = rnn_ref.SimpleRNNParams(W_xh=W_xh, W_hh=W_hh, b_h=b_h)\n"
            "    return rnn_ref.simple_rnn(x, p, return_sequences=True, initial_state=h0)\n",
        ),
    )


# The step uses Keras's own cell: the sandbox has no Keras, so the import fails and says so; its
# 4 points lost. The sequence is the learner's own code, and the hidden tests grade it with a
# correct step in place of the learner's: 3 points.
@poison("calls_keras_cell", "kernel", "graded", 3, errors=(NOT_AVAILABLE,))
def _(course, folder):
    return fill(
        course.release(A),
        _answers(
            step="def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n"
            "    import keras\n"
            "    cell = keras.layers.SimpleRNNCell(np.shape(W_hh)[0], use_bias=b_h is not None)\n"
            "    cell.build((None, np.shape(x_t)[1]))\n"
            "    cell.set_weights([W_xh, W_hh] + ([b_h] if b_h is not None else []))\n"
            "    out, _ = cell(np.asarray(x_t, 'float32'), [np.asarray(h_prev, 'float32')])\n"
            "    return np.asarray(out, dtype=float)\n"
        ),
    )


@poison("read_hidden_files_and_gradebook", "kernel", "graded", 0)
def _(course, folder):
    targets = [
        str(ROOT / "solutions" / A / f"{A}.ipynb"),
        str(course.path / "solutions" / A / f"{A}.ipynb"),
        str(course.path / "gradebook.db"),
        str(ROOT / "gradecheck" / "rnn.py"),
        str(course.path / "submitted"),
        str(Path.home() / ".bashrc"),
        "../../../../solutions/rnn/rnn.ipynb",
    ]
    return _with_cell(
        _wrong(course),
        "import os, sqlite3\n"
        f"for path in {targets!r}:\n"
        "    print('REACHABLE' if os.path.exists(path) else 'unreachable', path)\n"
        f"db = {str(course.path / 'gradebook.db')!r}\n"
        "try:\n"
        "    con = sqlite3.connect(db)\n"
        "    con.execute('UPDATE grade SET manual_score = 100')\n"
        "    con.commit()\n"
        "    print('WROTE GRADEBOOK')\n"
        "except Exception as exc:\n"
        "    print('no gradebook:', exc)\n",
    )


@poison("detached_process", "kernel", "graded", 7)
def _(course, folder):
    return _with_cell(
        correct(course, A),
        "import subprocess, os\n"
        f"subprocess.Popen(['sleep', '{SLEEP_MARKER}'], start_new_session=True)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execvp('sleep', ['sleep', '{SLEEP_MARKER}'])\n",
    )


@poison("sys_exit", "kernel", "graded", 7)
def _(course, folder):
    return _with_cell(correct(course, A), "import sys\nsys.exit(3)\n", after=STEP)


@poison("os_exit", "kernel", "failed", reason=("kernel died",))
def _(course, folder):
    return _with_cell(correct(course, A), "import os\nos._exit(1)\n", after=STEP)


@poison("segfault", "kernel", "failed", reason=("kernel died",))
def _(course, folder):
    return _with_cell(correct(course, A), "import ctypes\nctypes.string_at(0)\n", after=STEP)


@poison("memory_bomb", "kernel", "graded", 7)
def _(course, folder):
    return _with_cell(
        correct(course, A),
        # np.empty does not touch the pages: only the sandbox's memory limit stops this.
        "blocks = []\nwhile True:\n    blocks.append(np.empty(256 * 1024 * 1024, np.uint8))\n",
        after=STEP,
    )


@poison("infinite_loop", "kernel", "graded", 7)
def _(course, folder):
    return _with_cell(correct(course, A), "while True:\n    pass\n", after=STEP)


@poison("loop_ignoring_interrupts", "kernel", "failed", reason=("wall-clock", "interrupt"))
def _(course, folder):
    return _with_cell(
        correct(course, A),
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n",
        after=STEP,
    )


@poison("huge_output", "kernel", "graded", 7)
def _(course, folder):
    return _with_cell(
        correct(course, A),
        "print('x' * 20_000_000)\n"
        "from IPython.display import display, HTML\n"
        "display(HTML('<b>' + 'y' * 5_000_000 + '</b>'))\n",
    )


@poison("html_and_script_output", "kernel", "graded", 7)
def _(course, folder):
    nb = _with_cell(
        correct(course, A),
        "from IPython.display import display, HTML, Javascript, SVG\n"
        "display(HTML('<img src=x onerror=\"alert(1)\"><script>alert(2)</script>'))\n"
        "display(Javascript('alert(3)'))\n"
        'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(4)"/>\'))\n',
    )
    nb.cells.append(
        nbformat.v4.new_markdown_cell('<script>alert(5)</script><a href="javascript:x">l</a>')
    )
    return nb


@poison("stderr_noise_correct", "kernel", "graded", 7)
def _(course, folder):
    return fill(
        course.release(A),
        _answers(
            step="import sys, warnings\n"
            "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n"
            "    print('debug: computing a step', file=sys.stderr)\n"
            "    warnings.warn('a warning from the learner')\n"
            "    np.exp(np.array([1000.0]))  # overflow warning\n"
            "    z = x_t @ W_xh + h_prev @ W_hh + (0 if b_h is None else b_h)\n"
            "    return 2 / (1 + np.exp(-2 * z)) - 1  # tanh written naively\n"
        ),
    )


# Correct, but the answer cell imports TensorFlow first: the import fails (with the message), so
# the step is never defined and its checks score 0; the sequence, defined in its own cell, is
# graded with a correct step in its place: 3 points.
@poison("imports_tensorflow_correct", "kernel", "graded", 3, errors=(NOT_AVAILABLE,))
def _(course, folder):
    return fill(
        course.release(A),
        _answers(
            step="import tensorflow as tf\n"
            "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n"
            "    z = tf.matmul(x_t, W_xh) + tf.matmul(h_prev, W_hh)\n"
            "    if b_h is not None:\n"
            "        z = z + b_h\n"
            "    return tf.tanh(z)\n"
        ),
    )


@poison("wrong_answers_control", "control", "graded", 0)
def _(course, folder):
    return _wrong(course)


@poison("wrong_step_only", "control", "graded", 3)
def _(course, folder):
    return fill(course.release(A), _answers(step=WRONG_STEP))


# -- Links and special files, everywhere a file is read -------------------------------------
# Intake follows no link and accepts regular files and folders only: each of these fails the
# submission with a plain reason, and nothing it points to reaches autograded/.


def _timestamp(folder: Path) -> None:
    (folder / "timestamp.txt").write_text(TIMESTAMP)


def _submission_of(course, folder, notebook=None) -> None:
    """``folder`` holding a correct notebook (or ``notebook``) and a timestamp."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = notebook if notebook is not None else correct(course, A)
    (folder / f"{A}.ipynb").write_text(json.dumps(nb, indent=1))
    _timestamp(folder)


@poison("notebook_link_absolute", "links", "failed", reason=(f"{A}.ipynb is a symbolic link",))
def _(course, folder):
    folder.mkdir(parents=True)
    (folder / f"{A}.ipynb").symlink_to(course.path / "solutions" / A / f"{A}.ipynb")
    _timestamp(folder)
    return MADE


@poison("notebook_link_relative", "links", "failed", reason=(f"{A}.ipynb is a symbolic link",))
def _(course, folder):
    folder.mkdir(parents=True)
    # submitted/<student>/<a>/ -> up three levels is the course folder
    (folder / f"{A}.ipynb").symlink_to(Path("../../..") / "solutions" / A / f"{A}.ipynb")
    assert (folder / f"{A}.ipynb").resolve().is_file()
    _timestamp(folder)
    return MADE


@poison("notebook_link_to_release", "links", "failed", reason=(f"{A}.ipynb is a symbolic link",))
def _(course, folder):
    folder.mkdir(parents=True)
    (folder / f"{A}.ipynb").symlink_to(Path("../../../exercises") / A / f"{A}.ipynb")
    _timestamp(folder)
    return MADE


@poison("notebook_link_loop", "links", "failed", reason=(f"{A}.ipynb is a symbolic link",))
def _(course, folder):
    folder.mkdir(parents=True)
    (folder / f"{A}.ipynb").symlink_to(f"{A}.ipynb")
    _timestamp(folder)
    return MADE


@poison("notebook_is_a_folder", "links", "failed", reason=(f"{A}.ipynb is missing",))
def _(course, folder):
    (folder / f"{A}.ipynb").mkdir(parents=True)
    (folder / f"{A}.ipynb" / f"{A}.ipynb").write_text(json.dumps(correct(course, A)))
    _timestamp(folder)
    return MADE


@poison("timestamp_link", "links", "failed", reason=("timestamp.txt is a symbolic link",))
def _(course, folder):
    folder.mkdir(parents=True)
    (folder / f"{A}.ipynb").write_text(json.dumps(correct(course, A)))
    (folder / "timestamp.txt").symlink_to(course.path / "gradebook.db")
    return MADE


@poison("learner_folder_link_to_learner", "links", "failed", reason=("is a symbolic link",))
def _(course, folder):
    other = course.path / "submitted" / "p000z_correct"  # a real learner's folder
    folder.parent.symlink_to(other, target_is_directory=True)
    return MADE


@poison("learner_folder_link_to_solutions", "links", "failed", reason=("is a symbolic link",))
def _(course, folder):
    folder.parent.symlink_to(course.path / "solutions", target_is_directory=True)
    return MADE


@poison("learner_folder_link_to_root", "links", "failed", reason=("is a symbolic link",))
def _(course, folder):
    folder.parent.symlink_to("/", target_is_directory=True)
    return MADE


@poison("timestamp_garbage", "file", "graded", 7)
def _(course, folder):
    _submission_of(course, folder)
    (folder / "timestamp.txt").write_bytes(b"\xff\xfe\x1b[2J=cmd\n\x00" * 40)
    return MADE


@poison("assignment_folder_link", "links", "failed", reason=("is a symbolic link",))
def _(course, folder):
    folder.parent.mkdir(parents=True)
    folder.symlink_to(Path("../../solutions") / A, target_is_directory=True)
    assert (folder / f"{A}.ipynb").is_file()
    return MADE


@poison("extra_file_link_passwd", "links", "failed", reason=("passwd is a symbolic link",))
def _(course, folder):
    _submission_of(course, folder)
    (folder / "passwd").symlink_to("/etc/passwd")
    return MADE


@poison("extra_folder_link", "links", "failed", reason=("data is a symbolic link",))
def _(course, folder):
    _submission_of(course, folder)
    (folder / "data").symlink_to(course.path / "solutions", target_is_directory=True)
    return MADE


@poison("notebook_fifo", "links", "failed", reason=(f"{A}.ipynb is a FIFO",))
def _(course, folder):
    folder.mkdir(parents=True)
    os.mkfifo(folder / f"{A}.ipynb")
    _timestamp(folder)
    return MADE


@poison("timestamp_fifo", "links", "failed", reason=("timestamp.txt is a FIFO",))
def _(course, folder):
    folder.mkdir(parents=True)
    (folder / f"{A}.ipynb").write_text(json.dumps(correct(course, A)))
    os.mkfifo(folder / "timestamp.txt")
    return MADE


@poison("extra_fifo_in_subfolder", "links", "failed", reason=("notes/pipe is a FIFO",))
def _(course, folder):
    _submission_of(course, folder)
    (folder / "notes").mkdir()
    os.mkfifo(folder / "notes" / "pipe")
    return MADE


@poison("notebook_hard_link", "links", "failed", reason=("hard links",))
def _(course, folder):
    folder.mkdir(parents=True)
    os.link(course.path / "solutions" / A / f"{A}.ipynb", folder / f"{A}.ipynb")
    _timestamp(folder)
    return MADE


@poison("extra_file_hard_link", "links", "failed", reason=("config.py has 2 hard links",))
def _(course, folder):
    _submission_of(course, folder)
    os.link(course.path / "nbgrader_config.py", folder / "config.py")
    return MADE


@poison("extra_socket", "links", "failed", reason=("sock is a socket",))
def _(course, folder):
    _submission_of(course, folder)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(folder / "sock"))
    finally:
        server.close()
    return MADE


@poison("folders_nested_20_deep", "links", "failed", reason=("nested more than 12 deep",))
def _(course, folder):
    _submission_of(course, folder)
    deep = folder.joinpath(*["d"] * 20)
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("deep")
    return MADE


@poison("three_thousand_files", "links", "failed", reason=("more than 2000 files",))
def _(course, folder):
    _submission_of(course, folder)
    many = folder / "many"
    many.mkdir()
    for k in range(3000):
        (many / f"f{k:04d}").write_text("x")
    return MADE


@poison("timestamp_one_megabyte", "links", "failed", reason=("timestamp.txt is 1000000 bytes",))
def _(course, folder):
    _submission_of(course, folder)
    (folder / "timestamp.txt").write_text("2" * 1_000_000)
    return MADE


# -- Non-data handed to the grader ------------------------------------------------------------
# The step returns (or is) something that is not plain data: both step cells score 0 with the
# channel's message; the sequence is the learner's own and is graded with a correct step: 3.

STEP_HEAD = "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n"
NOT_DATA = ("expected an array or a number",)


def _step_returning(body: str, before: str = ""):
    def build(course, folder):
        return fill(course.release(A), _answers(step=before + STEP_HEAD + body))

    return build


for _name, _body, _what in [
    ("returns_module_numpy", "    return np\n", "a module (numpy)"),
    ("returns_module_os", "    import os\n    return os\n", "a module (os)"),
    ("returns_class", "    return np.ndarray\n", "a class (ndarray)"),
    ("returns_generator", "    return (v for v in x_t)\n", "generator"),
    ("returns_dict_with_object_keys", "    return {1: x_t}\n", "keys that are not strings"),
    (
        "returns_deep_nesting",
        "    v = 0\n    for _ in range(40):\n        v = [v]\n    return v\n",
        "nested too deeply",
    ),
    (
        "returns_object_array_of_modules",
        "    import os\n    return np.array([os, np], dtype=object)\n",
        "an object of type ndarray",
    ),
]:
    poison(_name, "data", "graded", 3, errors=(_what, *NOT_DATA))(_step_returning(_body))


# A function object is a handle to the kernel's own function, never data: the tests' array
# conversion fails on it.
poison("returns_function_object", "data", "graded", 3)(
    _step_returning("    return simple_rnn_step\n")
)

poison("array_method_raises_system_exit", "data", "graded", 3, errors=("Exit",))(
    _step_returning(
        "    return Exits()\n",
        before="class Exits:\n    def __array__(self, *a, **k):\n        raise SystemExit(9)\n",
    )
)

# Plain data with a learner-made shape: a tuple type claiming hostile field names, and an
# array over the channel's 64 MB cap per message.
poison("returns_tuple_with_hostile_fields", "data", "graded", 3)(
    _step_returning(
        "    h = np.tanh(x_t @ W_xh + h_prev @ W_hh)\n    return Fields((h, h))\n",
        before="class Fields(tuple):\n    _fields = ('__class__', '__reduce__')\n",
    )
)
poison("returns_oversized_array", "data", "graded", 3, errors=NOT_DATA)(
    _step_returning("    return np.ones((9000, 9000))\n")
)

# The same escape as above, on the way a name is fetched (not a call's result).
poison("answer_name_array_raises_interrupt", "data", "graded", 3)(
    lambda course, folder: fill(
        course.release(A),
        _answers(
            step="class Interrupts:\n"
            "    def __array__(self, *a, **k):\n"
            "        raise KeyboardInterrupt\n"
            "simple_rnn_step = Interrupts()\n"
        ),
    )
)

for _name, _binding, _what in [
    ("answer_name_is_module", "import os\nsimple_rnn_step = os\n", "a module (os)"),
    ("answer_name_is_class", "simple_rnn_step = type('Step', (), {})\n", "a class (Step)"),
]:
    poison(_name, "data", "graded", 3, errors=(_what, "not a function or plain data"))(
        lambda course, folder, _b=_binding: fill(course.release(A), _answers(step=_b))
    )


def _marker_module(course) -> str:
    """A module that, imported anywhere outside the sandbox, leaves marker files behind."""
    return (
        "import os\n"
        f"for _target in (__file__ + '.pwned', {str(course.path / 'PWNED')!r}):\n"
        "    try:\n"
        "        with open(_target, 'w') as _f:\n"
        "            _f.write('imported')\n"
        "    except OSError:\n"
        "        pass\n"
        "def simple_rnn_step(*a, **k):\n"
        "    raise SystemExit('the grader imported a learner module')\n"
    )


RETURN_EXTRA_MODULE = """import sys, importlib
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    for name in ({names}):
        try:
            return sys.modules.get(name) or importlib.import_module(name)
        except ImportError:
            pass
    return sys
"""


@poison("ships_module_and_returns_it", "data", "graded", 3, errors=("a module",))
def _(course, folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pwn.py").write_text(_marker_module(course))
    return fill(course.release(A), _answers(step=RETURN_EXTRA_MODULE.format(names="'pwn',")))


@poison("ships_gradecheck_package", "data", "graded", 3, errors=("a module",))
def _(course, folder):
    package = folder / "gradecheck"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(_marker_module(course))
    (package / "rnn.py").write_text(_marker_module(course))
    (folder / "rnn_ref.py").write_text(_marker_module(course))
    return fill(
        course.release(A),
        _answers(step=RETURN_EXTRA_MODULE.format(names="'gradecheck.rnn', 'gradecheck'")),
    )


# The sequence hands non-data to the correct step substituted for the learner's: the
# sequence's cell scores 0, the learner's own step is graded as usual: 4.
poison("callback_argument_module", "data", "graded", 4)(
    lambda course, folder: fill(
        course.release(A),
        _answers(
            sequence="import os\n"
            "def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):\n"
            "    h = np.zeros((np.shape(x)[0], np.shape(W_hh)[0])) if h0 is None else h0\n"
            "    out = []\n"
            "    for t in range(np.shape(x)[1]):\n"
            "        h = simple_rnn_step(x[:, t], h, W_xh, W_hh, os)\n"
            "        out.append(h)\n"
            "    return np.stack(out, axis=1)\n"
        ),
    )
)

poison("callback_argument_function", "data", "graded", 4)(
    lambda course, folder: fill(
        course.release(A),
        _answers(
            sequence="def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):\n"
            "    h = np.zeros((np.shape(x)[0], np.shape(W_hh)[0])) if h0 is None else h0\n"
            "    out = []\n"
            "    for t in range(np.shape(x)[1]):\n"
            "        h = simple_rnn_step(x[:, t], h, W_xh, simple_rnn_sequence, b_h)\n"
            "        out.append(h)\n"
            "    return np.stack(out, axis=1)\n"
        ),
    )
)


# lstm_step returns its pair with a module in it: that cell only (2 of 21) is lost.
@poison("lstm_step_returns_module_in_tuple", "data", "graded", full("lstm") - 2, assignment="lstm")
def _(course, folder):
    answers = solution_answers("lstm")
    answers["lstm_step_answer"] = (
        "import os\n"
        "def lstm_step(x_t, h_prev, c_prev, params):\n"
        "    return (np.zeros_like(h_prev), os)\n"
    )
    return fill(course.release("lstm"), answers)


# -- Cell order, in every assignment ---------------------------------------------------------
# The last answers and their grade cells (with the data cells they need) moved to the top,
# every earlier function left unimplemented: each grade cell scores only what it names, so
# the submission gets exactly the points of the answers it implemented.

LAST_ANSWERS = {
    "rnn": ["rnn_sequence_answer"],
    "lstm": ["lstm_keras_split_answer", "lstm_keras_forward_answer"],
    "gru": ["gru_candidate_reset_after_answer", "gru_keras_forward_answer"],
    "brnn": ["brnn_bidirectional_answer"],
    "bptt": ["bptt_lstm_step_answer", "bptt_gru_step_answer"],
}


def _gid(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _implemented_points(assignment: str, implemented) -> float:
    owner = answer_of_grade_cells(assignment)
    return sum(p for g, p in grade_points(assignment).items() if owner[g] in implemented)


def _last_cells_first(course, assignment: str):
    implemented = LAST_ANSWERS[assignment]
    answers = solution_answers(assignment)
    nb = fill(course.release(assignment), {k: answers[k] for k in implemented})
    owner = answer_of_grade_cells(assignment)
    setup = f"{assignment}_setup"
    moved_ids = set(implemented) | {g for g, a in owner.items() if a in implemented}
    data = [
        c
        for c in nb.cells
        if c.cell_type == "code"
        and c.metadata.get("nbgrader", {}).get("locked")
        and not c.metadata["nbgrader"].get("grade")
        and _gid(c) != setup
    ]
    moved = data + [c for c in nb.cells if _gid(c) in moved_ids]
    rest = [c for c in nb.cells if c not in moved]
    top = next(i for i, c in enumerate(rest) if _gid(c) == setup) + 1
    nb.cells = rest[:top] + moved + rest[top:]
    assert [_gid(c) for c in nb.cells].index(_gid(moved[-1])) < [_gid(c) for c in nb.cells].index(
        next(a for a in solution_answers(assignment) if a not in implemented)
    )
    return nb


def _answers_below_their_tests(course, assignment: str):
    """Correct, with every answer cell moved below its last grade cell, and learner cells
    between them."""
    nb = correct(course, assignment)
    owner = answer_of_grade_cells(assignment)
    for answer in solution_answers(assignment):
        graders = [g for g, a in owner.items() if a == answer]
        cell = _cells(nb, answer)[0]
        nb.cells.remove(cell)
        last = nb.cells.index(_cells(nb, graders[-1])[0])
        nb.cells[last + 1 : last + 1] = [
            nbformat.v4.new_code_cell(f"# my notes on {answer}\n_seen = {answer!r}\n"),
            cell,
            nbformat.v4.new_markdown_cell("learner's text between cells"),
        ]
    return nb


for _a in ASSIGNMENTS:
    poison(
        f"last_cells_first_{_a}",
        "order",
        "graded",
        _implemented_points(_a, LAST_ANSWERS[_a]),
        assignment=_a,
    )(lambda course, folder, _a=_a: _last_cells_first(course, _a))
    poison(f"shuffled_correct_{_a}", "order", "graded", full(_a), assignment=_a)(
        lambda course, folder, _a=_a: _answers_below_their_tests(course, _a)
    )


# -- Names and reasons an instructor reads ----------------------------------------------------
# Learner ids that a spreadsheet would run as formulas (a folder name cannot hold "/"), each
# with a correct submission: graded in full, neutralised in the export.

FORMULA_IDS = ['=HYPERLINK("x.example","y")', "+cmd", "-1", "@SUM(1)"]
for _k, _sid in enumerate(FORMULA_IDS):
    poison(f"formula_id_{_k}", "display", "graded", full(A), student=_sid)(
        lambda course, folder: correct(course, A)
    )


def _renamed(names):
    def build(course, folder):
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_text(json.dumps(correct(course, A)))
        _timestamp(folder)
        return MADE

    return build


poison("renamed_with_escape_codes", "display", "failed", reason=("renamed",))(
    _renamed(["\x1b[31mred\x1b[0m\u202e.ipynb"])
)
poison("renamed_forty_long_names", "display", "failed", reason=("rnn.ipynb is missing",))(
    _renamed([f"n{k:02d}" + "y" * 200 + ".ipynb" for k in range(40)])
)
poison("renamed_with_newline", "display", "failed", reason=("renamed",))(
    _renamed(["x\nrnn       p000_forged          graded 7 of 7\r.ipynb"])
)


# -- Resilience: one notebook never stalls or fails another ----------------------------------

# Bounded by the run's --processes 64 (a cgroup's pids.max, or RLIMIT_NPROC per sandbox uid);
# at most 2**10 processes even if nothing bounded it (each lives 3 s, far longer than the tree
# takes to grow, and the whole bomb is over well inside the limit run's 10 s cell). Either outcome
# is allowed, the correct submission after it must be unaffected; graded, the bomb must have been
# refused forks.
FORK_BOMB = """import os, time
root = os.getpid()
refused_r, refused_w = os.pipe()
os.set_blocking(refused_r, False)
for _ in range(10):
    try:
        os.fork()
    except OSError:
        os.write(refused_w, b"r")
        break
if os.getpid() != root:
    time.sleep(3)
    os._exit(0)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
try:
    refused = len(os.read(refused_r, 1 << 16))
except BlockingIOError:
    refused = 0
print("BOMB OVER, FORKS REFUSED:", refused)
"""

poison("fork_bomb", "resilience", "graded", 7, or_failed=(".ipynb: ",))(
    lambda course, folder: _with_cell(correct(course, A), FORK_BOMB)
)

# Five children of 1000 MB each: each under the per-process limit (4096 MB), 5 GB together,
# over the notebook's limit. Every child reports once it touched its memory, then holds it until
# the parent has heard from all of them (or seen them die): five holding at once means the
# notebook's total was not bounded.
MEMORY_SPREAD = """import os, select
import numpy as np
ready_r, ready_w = os.pipe()
hold_r, hold_w = os.pipe()
children = []
for k in range(5):
    pid = os.fork()
    if pid == 0:
        try:
            os.close(hold_w)  # the parent's copy alone: its close releases every child
            block = np.ones(1000 * 1024 * 1024 // 8)
            os.write(ready_w, b"x")
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    children.append(pid)
holding, ended = 0, set()
while holding + len(ended) < 5:
    if select.select([ready_r], [], [], 0.2)[0]:
        holding += len(os.read(ready_r, 5))
    for pid in children:
        if pid not in ended and os.waitpid(pid, os.WNOHANG)[0]:
            ended.add(pid)
os.close(hold_w)
for pid in children:
    if pid not in ended:
        os.waitpid(pid, 0)
print("REPORTED", holding, "ENDED EARLY", len(ended))
if holding == 5 and not ended:
    print("ALL FIVE " + "HELD")
"""

poison(
    "memory_over_five_children",
    "resilience",
    "graded",
    7,
    or_failed=("memory", "kernel died"),
)(lambda course, folder: _with_cell(correct(course, A), MEMORY_SPREAD))

BIG_WRITE = """import errno, os
written, stopped = 0, None
try:
    for k in range(40):
        with open(f"fill{k}.bin", "wb") as f:
            for _ in range(50):
                f.write(b"\\0" * (1 << 20))
                written += 1 << 20
except OSError as exc:
    stopped = errno.errorcode.get(exc.errno, exc.errno)
for k in range(40):
    if os.path.exists(f"fill{k}.bin"):
        os.remove(f"fill{k}.bin")
print("WRITE STOPPED", stopped, "AFTER", written >> 20, "MB")
"""

poison("writes_two_gigabytes", "resilience", "graded", 7)(
    lambda course, folder: _with_cell(correct(course, A), BIG_WRITE)
)

poison("system_exit_in_function", "resilience", "graded", 3, errors=("SystemExit",))(
    _step_returning("    raise SystemExit(4)\n")
)

poison("os_exit_in_function", "resilience", "failed", reason=("kernel died",))(
    _step_returning("    import os\n    os._exit(3)\n")
)

# Interrupted at the call limit: both step cells score 0, the sequence is graded: 3.
poison("sleeps_past_call_limit", "resilience", "graded", 3, errors=("did not return within",))(
    _step_returning("    import time\n    time.sleep(10**6)\n")
)

poison(
    "function_ignores_interrupts",
    "resilience",
    "failed",
    reason=("ignored an interrupt",),
)(
    _step_returning(
        "    import time\n"
        "    while True:\n"
        "        try:\n"
        "            time.sleep(0.5)\n"
        "        except KeyboardInterrupt:\n"
        "            pass\n"
    )
)

# The step's first call imports SciPy's statistics and then hangs inside matplotlib's import (a
# one-shot hook): the call limit cuts it half-way, by design. The later calls compute the step,
# and the sequence imports matplotlib afresh and draws a Rectangle: no KeyError from a half
# import.
# The first step cell scores 0 (interrupted): 2 + 3 = 5.
IMPORT_CUT_STEP = """import sys, time
_first_call = [True]
class _HangOnce:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib.patches":
            sys.meta_path.remove(self)
            while True:
                time.sleep(0.1)
        return None
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    if _first_call[0]:
        _first_call[0] = False
        hook = _HangOnce()
        sys.meta_path.insert(0, hook)
        try:
            import scipy.stats
            import matplotlib.pyplot
        finally:
            if hook in sys.meta_path:
                sys.meta_path.remove(hook)
    z = x_t @ W_xh + h_prev @ W_hh
    if b_h is not None:
        z = z + b_h
    return np.tanh(z)
"""
IMPORT_CUT_SEQUENCE = """def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    fig, ax = plt.subplots()
    ax.add_patch(Rectangle((0, 0), 1, 1))
    plt.close(fig)
    N, T, _ = np.shape(x)
    h = np.zeros((N, np.shape(W_hh)[0])) if h0 is None else h0
    states = []
    for t in range(T):
        h = simple_rnn_step(x[:, t], h, W_xh, W_hh, b_h)
        states.append(h)
    return np.stack(states, axis=1)
"""

poison("import_cut_then_matplotlib", "resilience", "graded", 5)(
    lambda course, folder: fill(
        course.release(A), _answers(step=IMPORT_CUT_STEP, sequence=IMPORT_CUT_SEQUENCE)
    )
)


# -- Keras out of the learner's reach, however it is called -----------------------------------
# Each of these once went around the in-kernel detection; the sandbox now has no Keras at all:
# the import fails with the message, and only the checks of the function that needs it fail.

KERAS_CELL_VIA_WRAPPED = """import keras
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    original = keras.layers.SimpleRNNCell.call.__wrapped__
    cell = keras.layers.SimpleRNNCell(np.shape(W_hh)[0], use_bias=b_h is not None)
    cell.build((None, np.shape(x_t)[1]))
    cell.set_weights([W_xh, W_hh] + ([b_h] if b_h is not None else []))
    out, _ = original(cell, np.asarray(x_t, "float32"), [np.asarray(h_prev, "float32")])
    return np.asarray(out, dtype=float)
"""
KERAS_LAYER_VIA_WRAPPED = """import keras
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    call = keras.layers.Layer.__call__.__wrapped__
    layer = keras.layers.SimpleRNN(np.shape(W_hh)[0], return_sequences=True)
    layer.build((None, None, np.shape(x)[2]))
    layer.set_weights([W_xh, W_hh, np.zeros(np.shape(W_hh)[0]) if b_h is None else b_h])
    return np.asarray(call(layer, np.asarray(x, "float32")), dtype=float)
"""

poison("keras_cell_call_via_wrapped", "keras", "graded", 3, errors=(NOT_AVAILABLE,))(
    lambda course, folder: fill(course.release(A), _answers(step=KERAS_CELL_VIA_WRAPPED))
)
poison("keras_layer_call_via_wrapped", "keras", "graded", 4, errors=(NOT_AVAILABLE,))(
    lambda course, folder: fill(course.release(A), _answers(sequence=KERAS_LAYER_VIA_WRAPPED))
)


# The step imports Keras before its own code, and a later cell replaces Keras's methods: both
# imports fail; the step is never defined (0), the sequence is graded with a correct step: 3.
@poison("keras_instrumentation_replaced", "keras", "graded", 3, errors=(NOT_AVAILABLE,))
def _(course, folder):
    nb = fill(course.release(A), _answers(step="import keras\n" + solution_answers(A)[STEP]))
    return _with_cell(
        nb,
        "import keras\n"
        "keras.layers.Layer.__call__ = lambda self, *a, **k: self.call(*a, **k)\n"
        "keras.layers.SimpleRNNCell.call = lambda self, *a, **k: None\n",
        after="rnn_step_no_bias",
    )


# -- The runs ------------------------------------------------------------------------------

# Generous limits: no case of this run hits them, and a correct notebook fits them on a machine
# whose CPUs are all busy.
RUN_LIMITS = (
    "--workers",
    "2",
    "--cell-seconds",
    "60",
    "--notebook-seconds",
    "300",
    "--processes",
    "64",
    "--max-notebook-mb",
    "2",
)
# The cases whose outcome depends on the sandbox's limits, identity or kills: graded in a run of
# their own with short limits, which each hits by design instead of waiting out the generous
# ones (a cell or call cut at 10 s, not 60). The correct notebooks graded after them (NumPy only:
# the sandbox has no TensorFlow) fit these limits beside busy CPUs too.
LIMIT_CASES = frozenset(
    {
        "detached_process",
        "read_hidden_files_and_gradebook",
        "memory_bomb",
        "infinite_loop",
        "loop_ignoring_interrupts",
        "huge_output",
        "fork_bomb",
        "memory_over_five_children",
        "writes_two_gigabytes",
        "sleeps_past_call_limit",
        "function_ignores_interrupts",
        "import_cut_then_matplotlib",
    }
)
LIMIT_CELL_SECONDS = 10
SHORT_LIMITS = (
    "--workers",
    "2",
    "--cell-seconds",
    str(LIMIT_CELL_SECONDS),
    "--notebook-seconds",
    "120",
    "--processes",
    "64",
    "--max-notebook-mb",
    "2",
)


def _student(p: Poison) -> str:
    return p.student or f"p{POISONS.index(p):03d}_{p.name}"


def _follower(p: Poison) -> str:
    return f"p{POISONS.index(p):03d}z_correct"


def _by_name(name: str) -> Poison:
    return next(p for p in POISONS if p.name == name)


def _tree_digest(path: Path) -> str:
    """Names, kinds and contents of everything under ``path``, following no link (a link's
    target may change: one points at the gradebook)."""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(dirs + files):
            p = Path(folder) / name
            digest.update(str(p.relative_to(path)).encode() + b"\0")
            if p.is_symlink():
                digest.update(b"link\0" + os.readlink(p).encode())
            elif p.is_file():
                digest.update(b"file\0" + p.read_bytes())
            else:
                digest.update(f"mode {p.lstat().st_mode:o}".encode())
    return digest.hexdigest()


def _in_run(limits: bool) -> list[Poison]:
    return [p for p in POISONS if (p.name in LIMIT_CASES) == limits]


def _grade(folder: Path, poisons: list[Poison], limits: tuple[str, ...]):
    """A course holding ``poisons``, each followed by a correct submission, graded in one run."""
    assignments = tuple(a for a in ASSIGNMENTS if any(p.assignment == a for p in poisons))
    course = Course.create(folder / "course", assignments, release=True)
    for p in poisons:
        # A correct submission graded right after each poison one (made first: some poisons
        # link to it).
        course.submit(_follower(p), p.assignment, correct(course, p.assignment))
    for p in poisons:
        folder = course.folder(_student(p), p.assignment)
        made = BUILDERS[p.name](course, folder)
        if made is MADE:
            continue
        if made is None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "timestamp.txt").write_text(TIMESTAMP)
        elif isinstance(made, tuple):
            course.submit(_student(p), p.assignment, made[1], name=made[0])
        else:
            course.submit(_student(p), p.assignment, made)
    submitted_before = _tree_digest(course.path / "submitted")
    run, survivors, at_exit = course.classgrade_tree("grade", *limits, "--quiet")
    return course, run, submitted_before, (survivors, at_exit)


@pytest.fixture(scope="module")
def graded(red_team_run):  # noqa: F811 (the session fixture)
    """The run of every case but the limit cases, with generous limits: made once per session
    (``red_team_runs``), since the PostgreSQL queue's test grades a copy of it again."""
    return red_team_run


@pytest.fixture(scope="module")
def graded_limits(tmp_path_factory):
    """The run of the limit cases, with short limits."""
    return _grade(tmp_path_factory.mktemp("redteam-limits"), _in_run(limits=True), SHORT_LIMITS)


def _run_of(request, p: Poison):
    """The graded run that holds ``p``."""
    return request.getfixturevalue("graded_limits" if p.name in LIMIT_CASES else "graded")


def _case(p: Poison):
    marks = [pytest.mark.scheduling, LIMIT_RUN_GROUP] if p.name in LIMIT_CASES else []
    return pytest.param(p, id=p.name, marks=marks)


# Tests that hold for each run.
BOTH_RUNS = [
    pytest.param("graded", id="generous"),
    pytest.param("graded_limits", id="limits", marks=[pytest.mark.scheduling, LIMIT_RUN_GROUP]),
]


def _guarantee_rows() -> dict[str, str]:
    """The guide's table of guarantees: each row's aspect -> its guarantee ("—": none)."""
    section = GUIDE.read_text(encoding="utf-8").split(GUARANTEES_HEADING, 1)[1]
    rows = {}
    for line in section.split("\n## ", 1)[0].splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            aspect, guarantee, *_ = (c.strip() for c in line.strip().strip("|").split("|"))
            rows[aspect] = guarantee
    rows.pop("方面", None)  # the header
    return rows


def test_every_threat_section_is_covered():
    """Every guarantee of the guide's table has cases here (or a named test elsewhere), and
    every case's section names rows of that table."""
    rows = _guarantee_rows()
    guaranteed = {aspect for aspect, guarantee in rows.items() if guarantee != "—"}
    sections = {p.threat for p in POISONS} - {"control"}
    assert sections == set(THREAT_ROWS)
    attacked = {row for s in sections for row in THREAT_ROWS[s]}
    assert attacked <= set(rows), f"not rows of the guide's table: {attacked - set(rows)}"
    assert guaranteed == attacked | set(TESTED_ELSEWHERE), (
        f"guarantees without a test: {guaranteed - attacked - set(TESTED_ELSEWHERE)}; "
        f"not guarantees of the guide: {(attacked | set(TESTED_ELSEWHERE)) - guaranteed}"
    )
    for file, test in TESTED_ELSEWHERE.values():
        assert f"def {test}(" in (Path(__file__).parent / file).read_text(encoding="utf-8")
    assert len([p for p in POISONS if p.threat != "control"]) >= 70
    assert LIMIT_CASES <= {p.name for p in POISONS}
    assert {p.assignment for p in POISONS} == set(ASSIGNMENTS)


@pytest.mark.parametrize("which", BOTH_RUNS)
def test_the_run_finished_with_a_summary(request, which):
    _course, run, _, _ = request.getfixturevalue(which)
    assert "Graded" in run.stdout, run.stderr[-3000:]
    assert "Mean score per assignment" in run.stdout
    assert run.returncode == 1  # some submissions failed
    for p in _in_run(limits=which == "graded_limits"):
        if p.expect == "failed":
            assert _student(p) in run.stdout  # listed by learner


def _entry(course, p: Poison, student: str | None = None) -> dict:
    return course.journal()[f"{p.assignment}/{student or _student(p)}"]


@pytest.mark.parametrize("p", [_case(p) for p in POISONS])
def test_poisoned_submission_outcome(request, p):
    course, _run, _, _ = _run_of(request, p)
    entry = _entry(course, p)
    student = _student(p)
    if p.expect == "failed" or (entry["status"] == "failed" and p.or_failed):
        assert entry["status"] == "failed", (entry, _errors(course, p))
        reasons = p.reason if p.expect == "failed" else p.or_failed
        assert any(r in entry["reason"] for r in reasons), entry["reason"]
        # No score stands for a failed submission; the export says "failed", not 0.
        assert not course.has_submission(student, p.assignment)
    else:
        assert entry["status"] == "graded", entry
        assert entry["score"] == pytest.approx(p.score), (entry, _errors(course, p))
        assert entry["max_score"] == pytest.approx(full(p.assignment))
        errors = " ".join(_errors(course, p).values())
        for needle in p.errors:
            assert needle in errors, (needle, _errors(course, p))


@pytest.mark.parametrize("p", [_case(p) for p in POISONS])
def test_correct_submission_after_each_poison_scores_full(request, p):
    course, _run, _, _ = _run_of(request, p)
    entry = _entry(course, p, _follower(p))
    assert entry["status"] == "graded", entry
    assert entry["score"] == pytest.approx(full(p.assignment)), entry


@pytest.mark.parametrize("p", [_case(p) for p in POISONS if p.expect == "failed"])
def test_nothing_private_reaches_autograded_from_a_failed_submission(request, p):
    course, _run, _, _ = _run_of(request, p)
    folder = course.path / "autograded" / _student(p)
    for path in folder.rglob("*") if folder.exists() else []:
        if path.is_file() and not path.is_symlink():
            text = path.read_bytes().decode("utf-8", "replace")
            for needle in HIDDEN_TEXT:
                assert needle not in text, (path, needle)
        assert not path.is_symlink(), path
    assert not (course.path / "autograded" / _student(p) / p.assignment).exists()


def _errors(course, p: Poison) -> dict:
    path = course.autograded(_student(p), p.assignment)
    if not path.exists():
        return {}
    out = {}
    for k, cell in enumerate(nbformat.read(path, 4).cells):
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                key = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {k}"
                out[key] = f"{o.ename}: {o.evalue}"
    return out


def _autograded_text(course, name) -> str:
    p = _by_name(name)
    return course.autograded(_student(p), p.assignment).read_text()


def _outputs_text(course, name) -> str:
    """Everything the learner's code displayed, and the learner's Markdown (not code sources)."""
    nb = json.loads(_autograded_text(course, name))
    parts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            parts.append("".join(cell["source"]))
        parts.extend(json.dumps(o) for o in cell.get("outputs", []))
    return "\n".join(parts)


def test_a_keras_call_fails_saying_keras_is_not_available(graded):
    course, _, _, _ = graded
    errors = _errors(course, _by_name("calls_keras_cell"))
    for cell in ("rnn_step_bias", "rnn_step_no_bias"):
        assert "ModuleNotFoundError" in errors[cell], errors
        assert NOT_AVAILABLE in errors[cell], errors
        assert "TensorFlow, Keras" in errors[cell], errors


@pytest.mark.scheduling
@LIMIT_RUN_GROUP
def test_hidden_files_and_gradebook_were_unreachable(graded_limits):
    course, _, _, _ = graded_limits
    text = _outputs_text(course, "read_hidden_files_and_gradebook")
    assert "REACHABLE" not in text
    assert "WROTE GRADEBOOK" not in text
    assert text.count("unreachable") == 7


@pytest.mark.parametrize("which", BOTH_RUNS)
def test_no_process_of_the_run_survives_it(request, which):
    """By the process tree: the run ran as a child subreaper's child, so anything it left
    (a detached ``sleep``, a sandbox, a kernel, a job) would have been re-parented there."""
    _course, _run, _, (survivors, at_exit) = request.getfixturevalue(which)
    assert survivors == [], (survivors, at_exit)


def test_no_learner_module_was_imported_outside_the_sandbox(graded):
    course, _, _, _ = graded
    assert not (course.path / "PWNED").exists()
    assert not list(course.path.rglob("*.pwned"))


@pytest.mark.scheduling
@LIMIT_RUN_GROUP
def test_the_notebook_limits_held(graded_limits):
    from classgrade import cgroups

    course, run, _, _ = graded_limits
    p = _by_name("memory_over_five_children")
    if cgroups.detect() is None:
        # Without a cgroup memory is bounded per process only (the guide's stated limit); the
        # run says so, and the correct notebooks beside this one are asserted unaffected.
        assert "no cgroup could be made here" in run.stdout, run.stdout[-2000:]
    elif _entry(course, p)["status"] == "graded":
        # The kernel survived the limit: either the limit ended a child (reported), or the
        # children's allocations stalled at the notebook's limit until the cell's time ran out
        # (the cell errored). Five holding their memory at once: the total was not bounded.
        printed, errored = _learner_cell_outputs(course, p, "REPORTED")
        assert "ALL FIVE HELD" not in printed
        assert "REPORTED" in printed or errored, (printed, _errors(course, p))
    p = _by_name("fork_bomb")
    if _entry(course, p)["status"] == "graded":
        printed, _ = _learner_cell_outputs(course, p, "FORKS REFUSED")
        refused = int(printed.split("FORKS REFUSED:", 1)[1].split()[0])
        assert refused > 0, printed
    written = _outputs_text(course, "writes_two_gigabytes")
    assert "WRITE STOPPED" in written
    assert "WRITE STOPPED None" not in written  # the write was refused (the folder is full)
    mb = int(written.split("AFTER", 1)[1].split("MB", 1)[0])
    assert mb < 400, written


def _learner_cell_outputs(course, p: Poison, marker: str) -> tuple[str, bool]:
    """What the learner's cell whose source has ``marker`` printed, and whether it errored."""
    nb = nbformat.read(course.autograded(_student(p), p.assignment), 4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)
    printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return printed, any(o.output_type == "error" for o in cell.outputs)


INTERNAL_NAMES = ("LearnerFunction", "_Unencodable", "GradingNamespace", "KernelChannel")


@pytest.mark.parametrize("which", BOTH_RUNS)
def test_feedback_names_no_internal_wrapper(request, which):
    """A learner's mistake is told in the learner's terms: never by a name of the grader's own
    classes (a returned function is "a function", not the grader's handle type)."""
    course, _, _, _ = request.getfixturevalue(which)
    found = {}
    for p in _in_run(limits=which == "graded_limits"):
        for cell, error in _errors(course, p).items():
            if any(name in error for name in INTERNAL_NAMES):
                found[f"{p.name}/{cell}"] = error
    assert found == {}


def test_a_learners_timestamp_is_written_anew_and_clean(graded):
    course, _, _, _ = graded
    p = _by_name("timestamp_garbage")
    path = course.autograded(_student(p), A).parent / "timestamp.txt"
    text = path.read_text()
    assert _clean(text.rstrip("\n")), repr(text)
    assert len(text) <= 101


@pytest.mark.scheduling
@LIMIT_RUN_GROUP
def test_a_cut_import_does_not_break_a_later_import(graded_limits):
    course, _, _, _ = graded_limits
    p = _by_name("import_cut_then_matplotlib")
    errors = _errors(course, p)
    assert "KeyError" not in str(errors), errors
    assert set(errors) == {"rnn_step_no_bias"}, errors


@pytest.mark.scheduling
@LIMIT_RUN_GROUP
def test_outputs_are_capped(graded_limits):
    course, _, _, _ = graded_limits
    p = _by_name("huge_output")
    assert course.autograded(_student(p), A).stat().st_size < 1_500_000


def test_html_and_scripts_are_sanitised_for_formgrader_and_feedback(graded):
    from nbconvert import HTMLExporter

    course, _, _, _ = graded
    text = _outputs_text(course, "html_and_script_output")
    for needle in ("onerror", "<script>alert", "alert(3)", "onload", "javascript:x"):
        assert needle not in text
    # What formgrader and feedback render: no active element survives (code is escaped text).
    path = course.autograded(_student(_by_name("html_and_script_output")), A)
    html, _ = HTMLExporter().from_filename(str(path))
    for needle in (
        '<img src="x" onerror',
        "<img src=x onerror",
        "<script>alert",
        'href="javascript',
    ):
        assert needle not in html


def test_grade_cell_errors_show_no_hidden_test_code(graded):
    course, _, _, _ = graded
    text = _autograded_text(course, "wrong_answers_control")
    nb = json.loads(text)
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            if o["output_type"] == "error":
                assert len(o["traceback"]) == 1
                assert "gradecheck" not in "".join(o["traceback"])
                assert "rnn_ref" not in "".join(o["traceback"])


@pytest.mark.parametrize("which", BOTH_RUNS)
def test_submitted_files_are_never_modified(request, which):
    course, _, before, _ = request.getfixturevalue(which)
    assert _tree_digest(course.path / "submitted") == before


def test_gradebook_is_backed_up_before_the_run(graded):
    course, _, _, _ = graded
    assert list((course.path / "gradebook-backups").glob("gradebook-*.db"))


def _export(course) -> list[dict]:
    out = course.path / "grades.csv"
    done = course.classgrade("export", "--to", str(out))
    assert done.returncode == 0, done.stderr
    with open(out, newline="", encoding="utf-8") as f:
        # csv's default field size limit: a reason or name never outgrows it.
        return list(csv.DictReader(f))


def test_export_lists_failures_explicitly(graded):
    course, _, _, _ = graded
    rows = {(r["assignment"], r["student"]): r for r in _export(course)}
    p = _by_name("os_exit")
    row = rows[(A, _student(p))]
    assert row["status"] == "failed"
    assert row["score"] == ""
    assert "kernel died" in row["reason"]
    assert rows[(A, _follower(p))]["status"] == "graded"
    assert float(rows[(A, _follower(p))]["score"]) == full(A)


def test_formula_ids_are_neutralised_in_the_export(graded):
    course, _, _, _ = graded
    rows = {(r["assignment"], r["student"]): r for r in _export(course)}
    for sid in FORMULA_IDS:
        row = rows[(A, "'" + sid)]
        assert row["status"] == "graded"
        assert float(row["score"]) == full(A)
    for row in rows.values():
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row


def _clean(text: str) -> bool:
    return not any(unicodedata.category(ch)[0] == "C" for ch in text)


def test_every_reason_is_one_clean_bounded_line(graded):
    course, _, _, _ = graded
    reasons = [e.get("reason", "") for e in course.journal().values()]
    assert any("renamed" in r for r in reasons)
    for reason in reasons:
        assert _clean(reason), repr(reason)
        assert len(reason) <= 300, reason
    for name in ("renamed_with_escape_codes", "renamed_forty_long_names", "renamed_with_newline"):
        reason = _entry(course, _by_name(name))["reason"]
        for bad in ("\x1b", "\n", "\r", "\u202e"):
            assert bad not in reason


def test_a_reason_cut_to_length_keeps_its_point(graded):
    # 40 notebooks with long names: the cut reason still says how many there are and why
    # the notebook is missing.
    course, _, _, _ = graded
    reason = _entry(course, _by_name("renamed_forty_long_names"))["reason"]
    assert len(reason) <= 300
    shown = re.search(r"and (\d+) more", reason)
    assert shown, reason
    assert reason.count(", ") + 1 + int(shown.group(1)) == 40, reason  # every notebook counted
    assert "renamed" in reason, reason


def test_status_prints_one_line_per_row(graded):
    course, _, _, _ = graded
    rows = _export(course)
    done = course.classgrade("status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.rstrip("\n").split("\n")
    assert len(lines) == len(rows)
    students = {key.split("/", 1)[1] for key in course.journal()}
    assert len(rows) == len(ASSIGNMENTS) * len(students)
    assert not any(line.split()[1:2] == ["p000_forged"] for line in lines)
    for line in lines:
        assert _clean(line), repr(line)
