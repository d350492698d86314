"""Red team: hostile and broken submissions of the real assignments, graded by classgrade.

Every line of the course's list of grading threats has a submission here, built from the
generated student notebooks. All of them, each followed by a correct submission, are graded in
one real run with the sandbox on; then each outcome is asserted: the score it must get, or the
failure and its reason. The correct submissions must all score full marks.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from classgrade_course import ROOT, GradingCourse, correct, fill, grade_points, solution_answers

pytestmark = pytest.mark.slow

A = "rnn"  # the assignment most poisons are built from
STEP, SEQUENCE = "rnn_step_answer", "rnn_sequence_answer"

WRONG_STEP = """def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    return np.tanh(x_t @ W_xh)  # ignores the state: wrong
"""
WRONG_SEQUENCE = """def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    return np.zeros((np.shape(x)[0], np.shape(x)[1], np.shape(W_hh)[0]))
"""
SLEEP_MARKER = "3171"


@dataclass
class Poison:
    name: str
    threat: str  # the section of GRADING-THREATS.md
    expect: str  # "graded" or "failed"
    score: float | None = None  # expected total for "graded"
    reason: tuple[str, ...] = ()  # one of these in the failure reason


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


def poison(name, threat, expect, score=None, reason=()):
    def register(builder):
        POISONS.append(Poison(name, threat, expect, score, tuple(reason)))
        BUILDERS[name] = builder
        return builder

    return register


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


# The step uses Keras's own cell: detected, its 4 points lost. The sequence is the learner's own
# code, and the hidden tests grade it with a correct step in place of the learner's: 3 points.
@poison("calls_keras_cell", "kernel", "graded", 3)
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


@poison("imports_tensorflow_correct", "kernel", "graded", 7)
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


# -- The run -------------------------------------------------------------------------------


def _tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            digest.update(str(p.relative_to(path)).encode())
            digest.update(p.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = GradingCourse.create(tmp_path_factory.mktemp("redteam") / "course", assignments=(A,))
    for i, p in enumerate(POISONS):
        student = f"p{i:02d}_{p.name}"
        folder = course.folder(student, A)
        made = BUILDERS[p.name](course, folder)
        if made is None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "timestamp.txt").write_text("2026-01-10 12:00:00.000000 UTC")
        elif isinstance(made, tuple):
            course.submit(student, A, made[1], name=made[0])
        else:
            course.submit(student, A, made)
        # A correct submission graded right after each poison one.
        course.submit(f"p{i:02d}z_correct", A, correct(course, A))
    submitted_before = _tree_digest(course.path / "submitted")
    run = course.classgrade(
        "grade",
        "--workers",
        "2",
        "--cell-seconds",
        "6",
        "--notebook-seconds",
        "40",
        "--max-notebook-mb",
        "2",
        "--quiet",
    )
    return course, run, submitted_before


def test_every_threat_section_is_covered():
    sections = {p.threat for p in POISONS}
    assert {"file", "kernel"} <= sections
    assert len([p for p in POISONS if p.threat != "control"]) >= 25


def test_the_run_finished_with_a_summary(graded):
    _course, run, _ = graded
    assert "Graded" in run.stdout, run.stderr[-3000:]
    assert "Mean score per assignment" in run.stdout
    failed = [p for p in POISONS if p.expect == "failed"]
    assert run.returncode == (1 if failed else 0)
    for p in failed:
        assert p.name in run.stdout  # listed by learner


@pytest.mark.parametrize("p", POISONS, ids=[p.name for p in POISONS])
def test_poisoned_submission_outcome(graded, p):
    course, _run, _ = graded
    i = POISONS.index(p)
    entry = course.journal()[f"{A}/p{i:02d}_{p.name}"]
    if p.expect == "failed":
        assert entry["status"] == "failed", entry
        assert any(r in entry["reason"] for r in p.reason), entry["reason"]
        # No score stands for a failed submission; the export says "failed", not 0.
        assert not course.has_submission(f"p{i:02d}_{p.name}", A)
    else:
        assert entry["status"] == "graded", entry
        assert entry["score"] == pytest.approx(p.score), (entry, _errors(course, i, p))
        assert entry["max_score"] == pytest.approx(sum(grade_points(A).values()))


@pytest.mark.parametrize("p", POISONS, ids=[p.name for p in POISONS])
def test_correct_submission_after_each_poison_scores_full(graded, p):
    course, _run, _ = graded
    i = POISONS.index(p)
    entry = course.journal()[f"{A}/p{i:02d}z_correct"]
    assert entry["status"] == "graded", entry
    assert entry["score"] == pytest.approx(sum(grade_points(A).values())), entry


def _errors(course, i, p) -> dict:
    path = course.autograded(f"p{i:02d}_{p.name}", A)
    if not path.exists():
        return {}
    out = {}
    for cell in nbformat.read(path, 4).cells:
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                out[cell.metadata.get("nbgrader", {}).get("grade_id")] = f"{o.ename}: {o.evalue}"
    return out


def _autograded_text(course, name) -> str:
    i = [p.name for p in POISONS].index(name)
    return course.autograded(f"p{i:02d}_{name}", A).read_text()


def _outputs_text(course, name) -> str:
    """Everything the learner's code displayed, and the learner's Markdown (not code sources)."""
    nb = json.loads(_autograded_text(course, name))
    parts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            parts.append("".join(cell["source"]))
        parts.extend(json.dumps(o) for o in cell.get("outputs", []))
    return "\n".join(parts)


def test_keras_cell_is_named_in_the_feedback(graded):
    course, _, _ = graded
    i = [p.name for p in POISONS].index("calls_keras_cell")
    errors = _errors(course, i, POISONS[i])
    assert "ForbiddenCall" in errors["rnn_step_bias"] or "ForbiddenCall" in str(errors), errors
    assert "simple_rnn" in str(errors)


def test_hidden_files_and_gradebook_were_unreachable(graded):
    course, _, _ = graded
    text = _outputs_text(course, "read_hidden_files_and_gradebook")
    assert "REACHABLE" not in text
    assert "WROTE GRADEBOOK" not in text
    assert text.count("unreachable") == 7


def test_no_process_of_any_notebook_survives(graded):
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert f"sleep {SLEEP_MARKER}" not in ps.stdout
    assert "_classgrade_probe" not in ps.stdout
    assert "classgrade-worker" not in ps.stdout


def test_outputs_are_capped(graded):
    course, _, _ = graded
    i = [p.name for p in POISONS].index("huge_output")
    assert course.autograded(f"p{i:02d}_huge_output", A).stat().st_size < 1_500_000


def test_html_and_scripts_are_sanitised_for_formgrader_and_feedback(graded):
    from nbconvert import HTMLExporter

    course, _, _ = graded
    text = _outputs_text(course, "html_and_script_output")
    for needle in ("onerror", "<script>alert", "alert(3)", "onload", "javascript:x"):
        assert needle not in text
    # What formgrader and feedback render: no active element survives (code is escaped text).
    i = [p.name for p in POISONS].index("html_and_script_output")
    path = course.autograded(f"p{i:02d}_html_and_script_output", A)
    html, _ = HTMLExporter().from_filename(str(path))
    for needle in (
        '<img src="x" onerror',
        "<img src=x onerror",
        "<script>alert",
        'href="javascript',
    ):
        assert needle not in html


def test_grade_cell_errors_show_no_hidden_test_code(graded):
    course, _, _ = graded
    text = _autograded_text(course, "wrong_answers_control")
    nb = json.loads(text)
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            if o["output_type"] == "error":
                assert len(o["traceback"]) == 1
                assert "gradecheck" not in "".join(o["traceback"])
                assert "rnn_ref" not in "".join(o["traceback"])


def test_submitted_files_are_never_modified(graded):
    course, _, before = graded
    assert _tree_digest(course.path / "submitted") == before


def test_gradebook_is_backed_up_before_the_run(graded):
    course, _, _ = graded
    assert list((course.path / "gradebook-backups").glob("gradebook-*.db"))


def test_export_lists_failures_explicitly(graded):
    course, _, _ = graded
    out = course.path / "grades.csv"
    done = course.classgrade("export", "--to", str(out))
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    i = [p.name for p in POISONS].index("os_exit")
    row = rows[f"p{i:02d}_os_exit"]
    assert row["status"] == "failed"
    assert row["score"] == ""
    assert "kernel died" in row["reason"]
    assert rows[f"p{i:02d}z_correct"]["status"] == "graded"
    assert float(rows[f"p{i:02d}z_correct"]["score"]) == sum(grade_points(A).values())
