"""Generate the student notebooks in exercises/ from the nbgrader sources in solutions/.

    python scripts/generate_exercises.py          # rewrite exercises/ (then commit it)
    python scripts/generate_exercises.py --check  # exit 1 if exercises/ is not what nbgrader makes

This is ``nbgrader generate_assignment`` for every assignment, run with the course's
nbgrader_config.py (solutions/ -> exercises/) and without touching the gradebook. nbgrader
removes the solutions and the hidden tests, locks the instruction and test cells, and copies the
data files next to each notebook. The output depends only on solutions/ (no timestamps), so a
second run gives identical files.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python scripts/generate_exercises.py"


def assignments(root: Path = ROOT) -> list[str]:
    """Every assignment: a folder of solutions/ holding a notebook of the same name."""
    folders = (root / "solutions").iterdir()
    return sorted(p.name for p in folders if (p / f"{p.name}.ipynb").is_file())


def generate(release_directory: Path, root: Path = ROOT) -> None:
    """Run nbgrader generate_assignment for all assignments into ``release_directory``."""
    # nbgrader runs alembic from its environment's bin directory, so put that on PATH.
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    command = [
        sys.executable,
        "-m",
        "nbgrader",
        "generate_assignment",
        "*",
        "--force",
        "--no-db",
        f"--CourseDirectory.release_directory={release_directory}",
    ]
    completed = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")
    missing = [a for a in assignments(root) if not (release_directory / a / f"{a}.ipynb").is_file()]
    if missing:
        raise RuntimeError(f"nbgrader did not generate {missing}:\n{completed.stderr}")


def differences(generated: Path, committed: Path) -> list[str]:
    """Files that differ between two release trees, as paths relative to them."""
    problems = []
    generated_files = {p.relative_to(generated) for p in generated.rglob("*") if p.is_file()}
    committed_files = {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()}
    for path in sorted(generated_files - committed_files):
        problems.append(f"missing from exercises/: {path}")
    for path in sorted(committed_files - generated_files):
        problems.append(f"not generated from solutions/: exercises/{path}")
    for path in sorted(generated_files & committed_files):
        if not filecmp.cmp(generated / path, committed / path, shallow=False):
            problems.append(f"out of date: exercises/{path}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Generate exercises/ from solutions/, or with ``--check`` only compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only compare exercises/ with a fresh generation"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        release = Path(tmp) / "exercises"
        generate(release)
        if args.check:
            problems = differences(release, ROOT / "exercises")
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print(f"exercises/ is stale; regenerate it with: {COMMAND}", file=sys.stderr)
            return 1 if problems else 0
        target = ROOT / "exercises"
        for assignment in assignments():
            shutil.rmtree(target / assignment, ignore_errors=True)
            shutil.copytree(release / assignment, target / assignment)
            print(f"wrote exercises/{assignment}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
