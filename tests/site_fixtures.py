"""A clean build of the course website, shared by the site tests (test_site_*.py) and the
chapter tests (test_book_chapters.py, test_chapter_notebooks_alone.py: the build's run of each
chapter is the session's only one).

The build runs once per pytest process, from scratch (a fresh output folder and a fresh
jupyter-cache, so every notebook is executed), with warnings as errors, into
_build/test-site/_build/html. It never reuses the developer's _build/html. As scripts/build.sh
does, scripts/execute_chapters.py first runs the chapters a few at a time into the build's
jupyter-cache, each as its notebook runs alone (test_chapter_notebooks_alone.py reads its
report); the build then takes them from there, and the script's --after-build gives the
executed notebooks the build wrote for them (the pages' downloads) their outputs.
"""

import dataclasses
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import yaml
from paths import ROOT

TEST_OUTPUT = ROOT / "_build" / "test-site"
BUILD_TIMEOUT_S = 900
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class SiteBuild:
    """What a build produced: its HTML, executed notebooks, exit status and log."""

    output: Path
    returncode: int
    log: str
    seconds: float
    execution: "ChapterExecution | None" = None
    after_build: "ChapterExecution | None" = None

    @property
    def html(self) -> Path:
        return self.output / "_build" / "html"

    @property
    def executed(self) -> Path:
        """Executed notebooks, as myst-nb wrote them (book/<chapter>.ipynb)."""
        return self.output / "_build" / "jupyter_execute"

    @property
    def screenshots(self) -> Path:
        return self.output / "_build" / "screenshots"

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.splitlines()[-lines:])

    def problems(self) -> list[str]:
        """The log's warnings and errors (the kernel's start-up notice is not a build warning)."""
        return [
            line
            for line in self.log.splitlines()
            if any(word in line for word in ("WARNING", "ERROR", "Exception", "Traceback"))
            and "Kernel is running over TCP" not in line
        ]

    def failure_report(self) -> str:
        return "\n".join(self.problems()) or self.log_tail()


@dataclass(frozen=True)
class ChapterExecution:
    """What scripts/execute_chapters.py did before the build: exit status, log and time, and
    its report: each page it ran alone (book/lstm.md) -> {"seconds", "error"}."""

    returncode: int
    log: str
    seconds: float
    runs: dict = dataclasses.field(default_factory=dict)


def build_environment() -> dict[str, str]:
    """The environment scripts/build.sh gives the build (and so the notebook kernels)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    return env


def _run_timed(command: list[str]) -> tuple[int, str, float]:
    """Run a build step as scripts/build.sh does: (return code, log without colours, seconds)."""
    start = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=build_environment(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    log = ANSI_COLOUR.sub("", result.stdout + result.stderr)
    return result.returncode, log, time.perf_counter() - start


def build_site(output: Path, *extra_args: str, source: Path = ROOT) -> SiteBuild:
    """Run `jupyter-book build` on ``source`` into ``output`` and record the result."""
    returncode, log, seconds = _run_timed(
        [
            str(Path(sys.executable).parent / "jupyter-book"),
            "build",
            str(source),
            "--path-output",
            str(output),
            "--warningiserror",
            "--nitpick",
            "--keep-going",
            *extra_args,
        ]
    )
    return SiteBuild(output=output, returncode=returncode, log=log, seconds=seconds)


def execute_chapters(output: Path, *extra_args: str, source: Path = ROOT) -> ChapterExecution:
    """Run scripts/execute_chapters.py for a build of ``source`` into ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    report = output / "chapter-runs.json"
    report.unlink(missing_ok=True)
    returncode, log, seconds = _run_timed(
        [
            sys.executable,
            str(ROOT / "scripts" / "execute_chapters.py"),
            str(source),
            "--path-output",
            str(output),
            "--report",
            str(report),
            *extra_args,
        ]
    )
    runs = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
    return ChapterExecution(returncode=returncode, log=log, seconds=seconds, runs=runs)


@functools.cache
def clean_site_build() -> SiteBuild:
    """The one clean build of this test session (cached: both test modules share it)."""
    shutil.rmtree(TEST_OUTPUT, ignore_errors=True)
    execution = execute_chapters(TEST_OUTPUT)
    build = build_site(TEST_OUTPUT, "--all")
    after = execute_chapters(TEST_OUTPUT, "--after-build")
    return dataclasses.replace(build, execution=execution, after_build=after)


def toc_entries() -> list[str]:
    """Every page of _toc.yml as its docname (book/lstm), root first."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    entries = [toc["root"]]
    for part in toc["parts"]:
        entries += [chapter["file"] for chapter in part["chapters"]]
    return entries


def notebook_entries() -> list[str]:
    """The toc pages that are notebooks (MyST Markdown with a kernelspec): they run code."""
    pages = []
    for entry in toc_entries():
        source = ROOT / f"{entry}.md"
        if source.is_file() and jupytext.read(source).metadata.get("kernelspec"):
            pages.append(entry)
    return pages


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)
