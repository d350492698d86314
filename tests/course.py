"""A throwaway copy of the course for the tests: create, release, submit, grade, read back.

The course holds the repository's ``nbgrader_config.py``, ``solutions/`` and ``gradecheck/``;
``nbgrader generate_assignment`` fills its gradebook and ``exercises/`` (once per pytest run
for each set of assignments: a released course is copied from that first one). nbgrader runs through
its command line exactly as the instructors' guide says, and finds ``gradecheck`` through
``PYTHONPATH`` pointing at a folder that holds only that package (installed courses have it
installed instead); ``classgrade`` runs as ``python -m classgrade`` from this checkout.
Submissions are the generated student notebooks with answer cells filled in: the solutions'
code (correct), or code written to be wrong, hostile or broken.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from paths import ROOT, RUN_FOLDER_VARIABLE

ASSIGNMENTS = ("rnn", "lstm", "gru", "brnn", "bptt")
SUBMITTED_AT = "2026-01-10 12:00:00.000000 UTC"

# Runs a command as a child subreaper (prctl PR_SET_CHILD_SUBREAPER): whatever the command
# leaves behind is re-parented here instead of to PID 1, so its process tree can be inspected
# after it exits. Prints JSON: the command's exit code, the descendants alive as it exited, and
# those still alive after a grace period (``--grace``, 60 s by default; it then kills them:
# they are the run's own processes).
SUBREAPER_RUN = Path(__file__).with_name("subreaper_run.py")


def tool_env(extra_path: Path | None = None) -> dict[str, str]:
    """Environment for nbgrader and classgrade subprocesses (this checkout importable)."""
    bin_dir = str(Path(sys.executable).parent)
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(paths),
    }
    env.pop("NBGRADER_EXECUTION", None)
    return env


class Course:
    """An nbgrader course directory under ``path``."""

    def __init__(self, path: Path):
        self.path = path
        self.site = path.parent / f"{path.name}-site"

    @classmethod
    def create(cls, path: Path, assignments=ASSIGNMENTS, release: bool = False) -> Course:
        """Copy the course; with ``release``, as nbgrader generated each assignment."""
        course = cls(path)
        ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
        if release:
            shutil.copytree(_released(tuple(assignments)), path, symlinks=True)
        else:
            path.mkdir(parents=True)
            shutil.copy(ROOT / "nbgrader_config.py", path / "nbgrader_config.py")
            shutil.copytree(ROOT / "gradecheck", path / "gradecheck", ignore=ignore)
            for assignment in assignments:
                shutil.copytree(
                    ROOT / "solutions" / assignment, path / "solutions" / assignment, ignore=ignore
                )
        course.site.mkdir()
        shutil.copytree(ROOT / "gradecheck", course.site / "gradecheck", ignore=ignore)
        return course

    def env(self) -> dict[str, str]:
        """nbgrader's environment: the kernel imports ``gradecheck`` from the site folder."""
        env = tool_env()
        env["PYTHONPATH"] = str(self.site)
        return env

    def nbgrader(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``nbgrader <args>`` in the course; fail with its log if it fails and ``check``."""
        done = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args],
            cwd=self.path,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def classgrade(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "classgrade", *args, "--course-dir", str(self.path)],
            cwd=self.path,
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def classgrade_tree(
        self, *args: str, timeout: float = 1800, kill_once_kernel_runs: bool = False
    ) -> tuple[subprocess.CompletedProcess, list[dict], list[dict]]:
        """``classgrade`` under a child subreaper (``subreaper_run.py``): its outcome, the
        descendants it left alive, and those that were still ending as it exited."""
        out, err = self.path.parent / "classgrade.stdout", self.path.parent / "classgrade.stderr"
        command = [sys.executable, "-m", "classgrade", *args, "--course-dir", str(self.path)]
        kill = ["--kill-once-kernel-runs"] if kill_once_kernel_runs else []
        launched = subprocess.run(
            [sys.executable, str(SUBREAPER_RUN), *kill, str(out), str(err), "--", *command],
            cwd=self.path,
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if launched.returncode != 0:
            raise AssertionError(f"the launcher failed:\n{launched.stdout}\n{launched.stderr}")
        report = json.loads(launched.stdout.strip().splitlines()[-1])
        done = subprocess.CompletedProcess(
            command, report["returncode"], out.read_text(), err.read_text()
        )
        done.pid = report["pid"]  # the run's token, so its scratch folder's name, begins with it
        return done, report["alive"], report["at_exit"]

    def release(self, assignment: str) -> nbformat.NotebookNode:
        """The student version nbgrader generated (``generate_assignment`` ran first)."""
        return nbformat.read(self.path / "exercises" / assignment / f"{assignment}.ipynb", 4)

    def folder(self, student: str, assignment: str) -> Path:
        return self.path / "submitted" / student / assignment

    def submit(self, student: str, assignment: str, notebook, name: str | None = None) -> Path:
        """Hand in ``notebook`` (a notebook, or its text or bytes as they are) with a timestamp."""
        folder = self.folder(student, assignment)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name or assignment}.ipynb"
        if isinstance(notebook, bytes):
            path.write_bytes(notebook)
        elif isinstance(notebook, str):
            path.write_text(notebook)
        else:
            # Written as plain JSON: broken notebooks must reach the grader unvalidated.
            path.write_text(json.dumps(notebook, indent=1))
        (folder / "timestamp.txt").write_text(SUBMITTED_AT)
        return path

    def _gradebook(self) -> Gradebook:
        return Gradebook(f"sqlite:///{self.path / 'gradebook.db'}")

    def scores(self, student: str, assignment: str) -> dict[str, float]:
        """Each grade cell's score, from the gradebook."""
        with self._gradebook() as gradebook:
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            return {grade.name: grade.score for grade in notebook.grades}

    def max_scores(self, assignment: str) -> dict[str, float]:
        with self._gradebook() as gradebook:
            notebook = gradebook.find_notebook(assignment, assignment)
            return {cell.name: cell.max_score for cell in notebook.grade_cells}

    def has_submission(self, student: str, assignment: str) -> bool:
        with self._gradebook() as gradebook:
            try:
                gradebook.find_submission(assignment, student)
            except MissingEntry:
                return False
            return True

    def journal(self) -> dict:
        """The run journal's entries, read as classgrade reads them (snapshot and lines)."""
        from classgrade.journal import Journal

        return Journal(self.path / ".classgrade" / "journal.json").entries

    def autograded(self, student: str, assignment: str) -> Path:
        return self.path / "autograded" / student / assignment / f"{assignment}.ipynb"

    def _outputs(self, student: str, assignment: str):
        for cell in nbformat.read(self.autograded(student, assignment), 4).cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            for output in cell.get("outputs", []):
                yield grade_id, output

    def errors(self, student: str, assignment: str) -> dict[str, str]:
        """``ename: evalue`` of each grade cell that failed, from the autograded notebook."""
        return {
            grade_id: f"{output.ename}: {output.evalue}"
            for grade_id, output in self._outputs(student, assignment)
            if output.output_type == "error"
        }

    def stderr_outputs(self, student: str, assignment: str) -> dict[str, str]:
        return {
            grade_id: output.text
            for grade_id, output in self._outputs(student, assignment)
            if output.output_type == "stream" and output.name == "stderr"
        }

    def feedback(self, student: str, assignment: str) -> Path:
        return self.path / "feedback" / student / assignment / f"{assignment}.html"


_RELEASED: dict[tuple[str, ...], Path] = {}


def _released(assignments: tuple[str, ...]) -> Path:
    """A course in which ``nbgrader generate_assignment`` released ``assignments``, to copy.

    Made once per pytest run, by the first of its processes (pytest-xdist's workers) to ask, in
    the run's shared folder, which pytest removes in time; without one, once per process in a
    temporary folder removed at exit. The others wait for it (a lock) and read it.
    """
    if assignments not in _RELEASED:
        shared = os.environ.get(RUN_FOLDER_VARIABLE)
        if shared:
            folder = Path(shared) / f"released-{'-'.join(assignments)}"
        else:
            folder = Path(tempfile.mkdtemp(prefix="released-course-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not (folder / "made").exists():
                shutil.rmtree(folder / "course", ignore_errors=True)  # half made: again
                course = Course.create(folder / "course", assignments)
                for assignment in assignments:
                    course.nbgrader("generate_assignment", assignment, "--force")
                (folder / "made").touch()
        _RELEASED[assignments] = folder / "course"
    return _RELEASED[assignments]


def solution_answers(assignment: str) -> dict[str, str]:
    """Answer cell id -> the solution's code, as a learner would have typed it."""
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    answers = {}
    for cell in nbformat.read(path, 4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            lines = [line for line in cell.source.split("\n") if not _is_marker(line)]
            answers[meta["grade_id"]] = "\n".join(lines)
    return answers


def _is_marker(line: str) -> bool:
    return re.search(r"#+\s*(BEGIN|END) SOLUTION", line) is not None


def _solution_cells(assignment: str):
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    return [c for c in nbformat.read(path, 4).cells if c.metadata.get("nbgrader")]


def grade_points(assignment: str) -> dict[str, float]:
    """Grade cell id -> its points."""
    return {
        c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
        for c in _solution_cells(assignment)
        if c.metadata["nbgrader"].get("grade") and not c.metadata["nbgrader"].get("solution")
    }


def answer_of_grade_cells(assignment: str) -> dict[str, str]:
    """Grade cell id -> the answer cell it grades (the last answer cell above it)."""
    owner, out = None, {}
    for c in _solution_cells(assignment):
        meta = c.metadata["nbgrader"]
        if meta.get("solution"):
            owner = meta["grade_id"]
        elif meta.get("grade"):
            out[meta["grade_id"]] = owner
    return out


def fill(notebook, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with the given answer cells filled in; unknown ids are an error."""
    notebook = nbformat.from_dict(json.loads(json.dumps(notebook)))
    ids = {cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells}
    unknown = set(answers) - ids
    if unknown:
        raise KeyError(f"no answer cells {sorted(unknown)} in the notebook")
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return notebook


def correct(course: Course, assignment: str) -> nbformat.NotebookNode:
    return fill(course.release(assignment), solution_answers(assignment))


def partial(course: Course, assignment: str, keep: int) -> nbformat.NotebookNode:
    """The first ``keep`` answers solved, the others left as released (NotImplementedError)."""
    answers = solution_answers(assignment)
    return fill(course.release(assignment), dict(list(answers.items())[:keep]))


def move_up(notebook: nbformat.NotebookNode, grade_ids: list[str]) -> nbformat.NotebookNode:
    """A copy with every non-grade cell first, then the grade cells ``grade_ids``, then the rest.

    Every function, the data cells and the setup are defined before any grade cell runs, and the
    named grade cells (the last ones, say) run before the grade cells of the functions they call.
    """
    notebook = nbformat.from_dict(notebook)

    def grade_id(cell):
        meta = cell.metadata.get("nbgrader", {})
        return meta.get("grade_id") if meta.get("grade") else None

    unknown = set(grade_ids) - {grade_id(cell) for cell in notebook.cells}
    if unknown:
        raise KeyError(f"no grade cells {sorted(unknown)} in the notebook")
    others = [cell for cell in notebook.cells if grade_id(cell) is None]
    moved = [cell for g in grade_ids for cell in notebook.cells if grade_id(cell) == g]
    rest = [cell for cell in notebook.cells if grade_id(cell) not in (None, *grade_ids)]
    notebook.cells = others + moved + rest
    return notebook
