"""The assignments as released: source notebooks, generated student notebooks, reference data."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from assignment_submissions import GRADE_CELLS, LSTM_MISTAKES_B, LSTM_NOISY
from course import ASSIGNMENTS, ROOT, fill, solution_answers
from script_modules import load_script

from gradecheck import keras_reference
from gradecheck.keras_reference import FILES
from gradecheck.reference_digests import DIGESTS


def _cells(path: Path):
    return nbformat.read(path, 4).cells


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _without_hidden_tests(source: str) -> str:
    return re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", source, flags=re.S)


@pytest.mark.slow
def test_exercises_are_what_nbgrader_generates_from_solutions(tmp_path):
    generate_exercises = load_script("generate_exercises")
    generate_exercises.generate(tmp_path / "exercises")
    problems = generate_exercises.differences(tmp_path / "exercises", ROOT / "exercises")
    assert not problems, (
        "exercises/ is stale:\n"
        + "\n".join(problems)
        + f"\nRegenerate it with: {generate_exercises.COMMAND}"
    )


@pytest.mark.slow
def test_generation_is_reproducible(tmp_path):
    generate_exercises = load_script("generate_exercises")
    generate_exercises.generate(tmp_path / "first")
    generate_exercises.generate(tmp_path / "second")
    assert generate_exercises.differences(tmp_path / "first", tmp_path / "second") == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_notebook_has_no_solution_and_no_hidden_test(assignment):
    path = ROOT / "exercises" / assignment / f"{assignment}.ipynb"
    text = path.read_text(encoding="utf-8")
    for secret in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "gradecheck", "rnn_ref"):
        assert secret not in text, f"{path} contains {secret!r}"
    answers = [c for c in _cells(path) if _meta(c).get("solution")]
    assert answers
    for cell in answers:
        assert "raise NotImplementedError()" in cell.source, _meta(cell)["grade_id"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_an_exercise_is_one_file(assignment):
    """The notebook carries its Keras reference arrays: nothing else to download or upload."""
    for folder in ("exercises", "solutions"):
        files = {p.name for p in (ROOT / folder / assignment).iterdir()}
        assert files == {f"{assignment}.ipynb"}, folder


def test_no_checking_code_inside_solutions():
    # nbgrader copies every non-notebook file of solutions/<assignment>/ to learners.
    assert not [p for p in (ROOT / "solutions").rglob("*.py")]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_conventions(assignment):
    """Grade cells: points as documented, a first line saying what is checked, visible checks
    without the reference package, hidden tests through gradecheck; answer cells: markers."""
    cells = _cells(ROOT / "solutions" / assignment / f"{assignment}.ipynb")
    grades = {}
    for cell in cells:
        meta = _meta(cell)
        if meta.get("grade"):
            grade_id, points = meta["grade_id"], meta["points"]
            grades[grade_id] = points
            first_line = cell.source.split("\n", 1)[0]
            unit = "point" if points == 1 else "points"
            assert re.match(rf"# .*\({points:g} {unit}\): .+", first_line), first_line
            assert "### BEGIN HIDDEN TESTS" in cell.source
            assert "from gradecheck import" in cell.source
            visible = _without_hidden_tests(cell.source)
            assert "assert " in visible, grade_id
            assert "rnn_ref" not in visible
            assert "gradecheck" not in visible
        elif meta.get("solution"):
            assert meta["grade_id"].endswith("_answer")
            assert "### BEGIN SOLUTION" in cell.source
            assert "### END SOLUTION" in cell.source
        if meta:
            # Grading must not need TensorFlow (importing it costs seconds per notebook).
            assert "import tensorflow" not in cell.source
            assert "import keras" not in cell.source
        if cell.cell_type == "code" and not meta:
            # Cells outside nbgrader's control run during grading unless guarded.
            assert 'os.environ.get("NBGRADER_EXECUTION") is None' in cell.source
    assert grades == GRADE_CELLS[assignment]
    assert (
        json.loads((ROOT / "solutions" / assignment / f"{assignment}.ipynb").read_text())[
            "metadata"
        ]["kernelspec"]["name"]
        == "python3"
    )


def test_nbgrader_marks_its_grading_runs():
    # The optional live-Keras cells rely on this variable to skip themselves while grading.
    from nbgrader import validator
    from nbgrader.converters import autograde

    assert "NBGRADER_EXECUTION='autograde'" in inspect.getsource(autograde)
    assert "NBGRADER_EXECUTION='validate'" in inspect.getsource(validator)


@pytest.mark.parametrize("assignment", sorted(FILES))
def test_keras_reference_digest_matches_the_file_and_the_notebook_carries_the_same(assignment):
    data = keras_reference.path(assignment).read_bytes()
    assert hashlib.sha256(data).hexdigest() == DIGESTS[assignment], (
        "regenerate with: python scripts/make_keras_reference.py"
    )
    for folder in ("solutions", "exercises"):
        notebook = nbformat.read(ROOT / folder / assignment / f"{assignment}.ipynb", 4)
        (cell,) = [c for c in notebook.cells if _meta(c).get("grade_id") == _load_cell(assignment)]
        assert keras_reference.embedded_bytes(cell.source) == data, folder
        assert _meta(cell).get("locked"), "learners cannot edit the stored arrays"


def _load_cell(assignment: str) -> str:
    return keras_reference.LOAD_CELLS[assignment]


@pytest.mark.keras
@pytest.mark.slow
def test_keras_reference_files_are_what_keras_computes():
    assert load_script("make_keras_reference").differences() == []


@pytest.mark.keras
@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebook_runs_and_matches_a_live_keras_layer(assignment, tmp_path):
    """Run the source notebook as a learner would (not grading): the live Keras cell runs too."""
    from nbclient import NotebookClient

    folder = ROOT / "solutions" / assignment
    notebook = nbformat.read(folder / f"{assignment}.ipynb", 4)
    site = tmp_path / "site"
    site.mkdir()
    (site / "gradecheck").symlink_to(ROOT / "gradecheck", target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXECUTION"}
    env["PYTHONPATH"] = str(site)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute(env=env)
    printed = "".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
    )
    differences = [float(v) for v in re.findall(r"largest difference from Keras: (\S+)", printed)]
    assert differences, printed
    assert max(differences) < 1e-5


def test_gradecheck_is_installed_for_the_grading_kernel(tmp_path):
    # While grading, the kernel runs in the submission's folder: the hidden tests import the
    # installed package, not the repository's folder.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", "import gradecheck.lstm"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, (
        "gradecheck is not installed: list it in [tool.setuptools] packages of pyproject.toml "
        f"and run bash scripts/setup.sh\n{done.stderr}"
    )


def _run_as_learner(assignment: str, answers: dict[str, str]) -> dict[str, dict[str, str]]:
    """Run the student notebook with ``answers`` as a learner would (not grading), errors
    allowed; grade cell -> {"error": ename: evalue, "stderr": text}."""
    from nbclient import NotebookClient

    folder = ROOT / "exercises" / assignment
    notebook = fill(nbformat.read(folder / f"{assignment}.ipynb", 4), answers)
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXECUTION"}
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute(env=env)
    found = {}
    for cell in notebook.cells:
        grade_id = _meta(cell).get("grade_id")
        for output in cell.get("outputs", []):
            entry = found.setdefault(grade_id, {"error": "", "stderr": ""})
            if output.output_type == "error":
                entry["error"] += f"{output.ename}: {output.evalue}"
            elif output.output_type == "stream" and output.name == "stderr":
                entry["stderr"] += output.text
    return found


@pytest.mark.slow
def test_learners_see_their_warnings_and_the_gate_order_when_it_is_the_cause():
    answers = {**solution_answers("lstm"), **LSTM_NOISY}
    answers["lstm_keras_forward_answer"] = LSTM_MISTAKES_B["lstm_keras_forward_answer"]
    outputs = _run_as_learner("lstm", answers)
    assert "DeprecationWarning" in outputs["lstm_forget_gate"]["stderr"]
    assert "debug: forget_gate called" in outputs["lstm_forget_gate"]["stderr"]
    assert not outputs.get("lstm_cell_state_update", {}).get("error")  # in place, on copies
    error = outputs["lstm_keras_forward"]["error"]
    assert "i, f, o, c" in error
    assert "gate order wrong" in error


@pytest.mark.slow
def test_the_keras_check_blames_gate_order_only_when_it_explains_the_output():
    answers = solution_answers("lstm")
    answers["lstm_keras_forward_answer"] = (
        "def keras_lstm_forward(x, kernel, recurrent_kernel, bias):\n"
        "    params = split_keras_lstm_weights(kernel, recurrent_kernel, bias)\n"
        "    return np.asarray(lstm_sequence(x, params)) * 1.01\n"
    )
    error = _run_as_learner("lstm", answers)["lstm_keras_forward"]["error"]
    assert "wrong values" in error
    assert "gate order" not in error
    assert "i, f, c, o" not in error


NOT_HERE = "raise ImportError('not installed on this machine')\n"
ABSENT = ("tensorflow", "keras", "rnn_ref", "gradecheck", "classgrade")
CHECK_ABSENT = f"""
for name in {ABSENT!r}:
    try:
        __import__(name)
    except ImportError:
        continue
    raise AssertionError(name + " is importable in the learner's kernel")
"""


@pytest.mark.slow
def test_every_released_notebook_runs_alone_with_every_visible_check_passing(tmp_path, monkeypatch):
    """As a learner who downloaded only the .ipynb: an empty folder, a Python with NumPy and
    Jupyter (no TensorFlow, no course checkout, no rnn_ref or gradecheck), a correct answer in
    every answer cell. Every cell runs without an error, the visible checks included."""
    import site

    from nbclient import NotebookClient

    # The kernel's Python without site's processing (so no editable install of the course's
    # packages) and with the environment's site-packages behind a folder where TensorFlow and
    # Keras fail to import, as on a machine without them.
    absent = tmp_path / "absent"
    for name in ABSENT:
        (absent / name).mkdir(parents=True)
        (absent / name / "__init__.py").write_text(NOT_HERE)
    spec = tmp_path / "kernels" / "learner"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    sys.executable,
                    "-S",
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "a learner's Python",
                "language": "python",
                "env": {"PYTHONPATH": os.pathsep.join([str(absent), *site.getsitepackages()])},
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    env = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_EXECUTION", "PYTHONPATH")}
    for assignment in ASSIGNMENTS:
        folder = tmp_path / assignment
        folder.mkdir()
        release = nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", 4)
        notebook = fill(release, solution_answers(assignment))
        notebook.cells.append(nbformat.v4.new_code_cell(CHECK_ABSENT))
        client = NotebookClient(
            notebook,
            timeout=120,
            kernel_name="learner",
            resources={"metadata": {"path": str(folder)}},
        )
        client.execute(env=env)  # raises on the first cell with an error
        printed = "".join(
            o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
        )
        assert "not installed here; skipping the comparison" in printed, assignment
        assert list(folder.iterdir()) == [], "the notebook needed no file and wrote none"
