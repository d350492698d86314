"""A temporary copy of the course for classgrade's tests and benchmark, and fabricated learners.

The course holds the repository's ``nbgrader_config.py``, ``solutions/`` and ``gradecheck/``;
``nbgrader generate_assignment`` fills its gradebook and ``exercises/``. Submissions are the
generated student notebooks with answer cells filled in: the solutions' code (correct), or
code written to be wrong, hostile or broken.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from assignment_course import ASSIGNMENTS, solution_answers

from classgrade.sandbox import QUIET_TENSORFLOW

ROOT = Path(__file__).resolve().parent.parent

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
        **QUIET_TENSORFLOW,
    }
    env.pop("NBGRADER_EXECUTION", None)
    return env


class GradingCourse:
    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, path: Path, assignments=ASSIGNMENTS) -> GradingCourse:
        course = cls(path)
        path.mkdir(parents=True, exist_ok=True)
        ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
        shutil.copy(ROOT / "nbgrader_config.py", path / "nbgrader_config.py")
        shutil.copytree(ROOT / "gradecheck", path / "gradecheck", ignore=ignore)
        for a in assignments:
            shutil.copytree(ROOT / "solutions" / a, path / "solutions" / a, ignore=ignore)
        for a in assignments:
            course.nbgrader("generate_assignment", a, "--force")
        return course

    def nbgrader(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args],
            cwd=self.path,
            env=tool_env(self.path),
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
        return done, report["alive"], report["at_exit"]

    def release(self, assignment: str) -> nbformat.NotebookNode:
        return nbformat.read(self.path / "exercises" / assignment / f"{assignment}.ipynb", 4)

    def folder(self, student: str, assignment: str) -> Path:
        return self.path / "submitted" / student / assignment

    def submit(self, student: str, assignment: str, notebook, name: str | None = None) -> Path:
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
        (folder / "timestamp.txt").write_text("2026-01-10 12:00:00.000000 UTC")
        return path

    def journal(self) -> dict:
        return json.loads((self.path / ".classgrade" / "journal.json").read_text())

    def autograded(self, student: str, assignment: str) -> Path:
        return self.path / "autograded" / student / assignment / f"{assignment}.ipynb"

    def cell_scores(self, student: str, assignment: str) -> dict[str, float]:
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.path / 'gradebook.db'}") as gb:
            nb = gb.find_submission_notebook(assignment, assignment, student)
            return {g.name: g.score for g in nb.grades}

    def has_submission(self, student: str, assignment: str) -> bool:
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(f"sqlite:///{self.path / 'gradebook.db'}") as gb:
            try:
                gb.find_submission(assignment, student)
            except MissingEntry:
                return False
            return True


def grade_points(assignment: str) -> dict[str, float]:
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    return {
        c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
        for c in nbformat.read(path, 4).cells
        if c.metadata.get("nbgrader", {}).get("grade")
        and not c.metadata["nbgrader"].get("solution")
    }


def answer_of_grade_cells(assignment: str) -> dict[str, str]:
    """Grade cell id -> the answer cell it grades (the last answer cell above it)."""
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    owner, out = None, {}
    for c in nbformat.read(path, 4).cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution"):
            owner = meta["grade_id"]
        elif meta.get("grade"):
            out[meta["grade_id"]] = owner
    return out


def fill(notebook, answers: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(notebook)))
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


def correct(course: GradingCourse, assignment: str) -> nbformat.NotebookNode:
    return fill(course.release(assignment), solution_answers(assignment))


def partial(course: GradingCourse, assignment: str, keep: int) -> nbformat.NotebookNode:
    """The first ``keep`` answers solved, the others left as released (NotImplementedError)."""
    answers = solution_answers(assignment)
    return fill(course.release(assignment), dict(list(answers.items())[:keep]))
