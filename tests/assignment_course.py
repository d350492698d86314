"""A throwaway nbgrader course for the assignment tests: copy, generate, submit, grade, read back.

The course is a temporary copy of the repository's ``nbgrader_config.py``, ``solutions/`` and
``gradecheck/``; nbgrader runs through its command line exactly as the instructors' guide says.
The grading kernel finds ``gradecheck`` through ``PYTHONPATH`` pointing at a folder that holds
only that package (installed courses have it installed instead).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from conftest import ROOT
from nbgrader.api import Gradebook

ASSIGNMENTS = ("rnn", "lstm", "gru", "brnn", "bptt")


class Course:
    """An nbgrader course directory under ``path``."""

    def __init__(self, path: Path):
        self.path = path
        self.site = path.parent / f"{path.name}-site"

    @classmethod
    def create(cls, path: Path) -> Course:
        course = cls(path)
        path.mkdir(parents=True)
        shutil.copy(ROOT / "nbgrader_config.py", path / "nbgrader_config.py")
        ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
        shutil.copytree(ROOT / "solutions", path / "solutions", ignore=ignore)
        shutil.copytree(ROOT / "gradecheck", path / "gradecheck", ignore=ignore)
        course.site.mkdir()
        shutil.copytree(ROOT / "gradecheck", course.site / "gradecheck", ignore=ignore)
        return course

    def env(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": str(self.site),
        }
        env.pop("NBGRADER_EXECUTION", None)
        return env

    def nbgrader(self, *args: str) -> subprocess.CompletedProcess:
        """Run ``nbgrader <args>`` in the course; fail with its log if it fails."""
        command = [sys.executable, "-m", "nbgrader", *args]
        done = subprocess.run(
            command, cwd=self.path, env=self.env(), capture_output=True, text=True, timeout=900
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def release(self, assignment: str) -> nbformat.NotebookNode:
        """The student version nbgrader generated (run ``generate_assignment`` first)."""
        return nbformat.read(self.path / "exercises" / assignment / f"{assignment}.ipynb", 4)

    def submit(self, student: str, assignment: str, notebook: nbformat.NotebookNode) -> None:
        folder = self.path / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, folder / f"{assignment}.ipynb")

    def scores(self, student: str, assignment: str) -> dict[str, float]:
        """Each grade cell's score, from the gradebook."""
        with Gradebook(f"sqlite:///{self.path / 'gradebook.db'}") as gradebook:
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            return {grade.name: grade.score for grade in notebook.grades}

    def max_scores(self, assignment: str) -> dict[str, float]:
        with Gradebook(f"sqlite:///{self.path / 'gradebook.db'}") as gradebook:
            notebook = gradebook.find_notebook(assignment, assignment)
            return {cell.name: cell.max_score for cell in notebook.grade_cells}

    def errors(self, student: str, assignment: str) -> dict[str, str]:
        """``ename: evalue`` of each grade cell that failed, from the autograded notebook."""
        path = self.path / "autograded" / student / assignment / f"{assignment}.ipynb"
        found = {}
        for cell in nbformat.read(path, 4).cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    found[grade_id] = f"{output.ename}: {output.evalue}"
        return found

    def stderr_outputs(self, student: str, assignment: str) -> dict[str, str]:
        path = self.path / "autograded" / student / assignment / f"{assignment}.ipynb"
        found = {}
        for cell in nbformat.read(path, 4).cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            for output in cell.get("outputs", []):
                if output.output_type == "stream" and output.name == "stderr":
                    found[grade_id] = output.text
        return found

    def feedback(self, student: str, assignment: str) -> Path:
        return self.path / "feedback" / student / assignment / f"{assignment}.html"


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


def fill(student_notebook: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of the student notebook with the given answer cells filled in."""
    notebook = nbformat.from_dict(student_notebook)
    unknown = set(answers) - {
        cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells
    }
    if unknown:
        raise KeyError(f"no answer cells {sorted(unknown)} in the notebook")
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return notebook


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
