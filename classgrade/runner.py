"""The grading run: one or all assignments, for every learner who submitted.

The main process is the gradebook's only writer. Per submission it:

1. checks each notebook and rebuilds it from the gradebook (``load_submission``), then runs
   nbgrader's sanitizing preprocessors (ClearOutput, DeduplicateIds, OverwriteKernelspec,
   OverwriteCells with ``add_missing_cells``, CheckCellMetadata) on a copy in memory;
2. hands the notebooks to worker processes, which execute them in sandboxed kernels;
3. removes the learner's previous grades for the assignment, then either records the new
   ones with nbgrader's SaveAutoGrades and AssignLatePenalties and writes the autograded
   notebooks, or records the failure with its reason in the journal.

A broken or hostile notebook only ever fails its own submission.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from nbgrader.utils import parse_utc
from sqlalchemy.exc import SAWarning
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from . import __version__
from .journal import FAILED, GRADED, PENDING, Journal, fingerprint
from .preprocessors import (
    CapOutputs,
    SanitizeOutputs,
    SourceNotebook,
    SubmissionError,
    load_submission,
    source_notebook_from_gradebook,
)
from .report import Progress
from .sandbox import Limits, Sandbox, self_test
from .worker import ExecJob, ExecResult, init_worker, run_job

_GRADEBOOK_USERS = (
    "nbgrader.preprocessors.overwritecells",
    "nbgrader.preprocessors.overwritekernelspec",
    "nbgrader.preprocessors.saveautogrades",
    "nbgrader.preprocessors.latesubmissions",
)


class _Borrowed:
    """Stands for nbgrader's Gradebook inside its preprocessors: the run's open connection.

    Opening a Gradebook builds an SQLAlchemy engine and inspects the schema (tens of ms);
    nbgrader's preprocessors open one per notebook each. The main process owns one for the
    whole run and lends it; leaving the ``with`` block does not close it.
    """

    def __init__(self, gb: Gradebook):
        self._gb = gb

    def __call__(self, *args, **kwargs) -> _Borrowed:
        return self

    def __enter__(self) -> Gradebook:
        return self._gb

    def __exit__(self, *exc) -> bool:
        return False

    def __getattr__(self, name: str):
        return getattr(self._gb, name)


@contextlib.contextmanager
def lend_gradebook(gb: Gradebook):
    import importlib

    modules = [importlib.import_module(m) for m in _GRADEBOOK_USERS]
    saved = [m.Gradebook for m in modules]
    borrowed = _Borrowed(gb)
    for m in modules:
        m.Gradebook = borrowed
    try:
        yield
    finally:
        for m, original in zip(modules, saved, strict=True):
            m.Gradebook = original


class GradingSetupError(RuntimeError):
    """The run cannot start (no gradebook, unknown assignment, another run in progress)."""


@dataclass
class Settings:
    course_dir: Path
    assignments: list[str] | None = None
    students: list[str] | None = None
    workers: int = 2
    sandboxed: bool = True
    force: bool = False
    limits: Limits = field(default_factory=Limits)
    max_notebook_mb: float = 20.0
    progress: bool = True
    keep_backups: int = 5


@dataclass
class Outcome:
    assignment: str
    student: str
    status: str
    score: float | None = None
    max_score: float | None = None
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RunSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    notebooks: int = 0
    backup: Path | None = None

    @property
    def graded(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == GRADED]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    def get(self, assignment: str, student: str) -> Outcome | None:
        for o in self.outcomes + self.skipped:
            if o.assignment == assignment and o.student == student:
                return o
        return None


def load_course_config(course_dir: Path) -> Config:
    cfg = Config()
    config_file = course_dir / "nbgrader_config.py"
    if config_file.exists():
        cfg.merge(PyFileConfigLoader(config_file.name, str(course_dir)).load_config())
    cfg.CourseDirectory.root = str(course_dir)
    return cfg


def sqlite_path(db_url: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(db_url[len(prefix) :]) if db_url.startswith(prefix) else None


def backup_gradebook(db_url: str, keep: int) -> Path | None:
    """Copy the gradebook with SQLite's online backup (consistent even if it is in use)."""
    path = sqlite_path(db_url)
    if path is None or not path.exists():
        return None
    folder = path.parent / "gradebook-backups"
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    dest = folder / f"{path.stem}-{stamp}-{os.getpid()}.db"
    src = sqlite3.connect(path)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    backups = sorted(folder.glob(f"{path.stem}-*.db"))
    for old in backups[:-keep]:
        old.unlink()
    return dest


class RunLock:
    """Only one grading run per course at a time: SQLite has one writer."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise GradingSetupError(
                f"another grading run holds {self.path}; wait for it to finish"
            ) from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        return False


@dataclass
class _Submission:
    assignment: str
    student: str
    folder: Path
    fingerprint: str
    notebooks: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    executed: dict[str, ExecResult] = field(default_factory=dict)
    failure: str = ""
    started: float = 0.0


class ClassGrader:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.course_dir = settings.course_dir.resolve()
        self.config = load_course_config(self.course_dir)
        self.coursedir = CourseDirectory(config=self.config)
        self.db_url = self.coursedir.db_url
        self.journal = Journal(self._state_dir() / "journal.json")
        self.sources: dict[tuple[str, str], SourceNotebook] = {}
        self.notebook_names: dict[str, list[str]] = {}

    def _state_dir(self) -> Path:
        db = sqlite_path(self.db_url)
        base = db.parent if db is not None else self.course_dir
        folder = base / ".classgrade"  # the course root may hold this package itself
        folder.mkdir(exist_ok=True)
        return folder

    # -- discovery -------------------------------------------------------------------------

    def _load_assignments(self, gb: Gradebook) -> list[str]:
        known = sorted(a.name for a in gb.assignments)
        wanted = self.settings.assignments or known
        unknown = [a for a in wanted if a not in known]
        if unknown:
            raise GradingSetupError(
                f"unknown assignment(s) {', '.join(unknown)}; the gradebook has "
                f"{', '.join(known) or 'none'} (run `nbgrader generate_assignment` first)"
            )
        for a in wanted:
            names = sorted(nb.name for nb in gb.find_assignment(a).notebooks)
            if not names:
                raise GradingSetupError(f"assignment {a} has no notebooks in the gradebook")
            self.notebook_names[a] = names
            for name in names:
                self.sources[(a, name)] = source_notebook_from_gradebook(gb, a, name)
        return wanted

    def _submitted_folder(self, student: str, assignment: str) -> Path:
        return Path(
            self.coursedir.format_path(self.coursedir.submitted_directory, student, assignment)
        )

    def _students(self, assignment: str) -> list[str]:
        root = Path(self.coursedir.format_path(self.coursedir.submitted_directory, ".", "."))
        root = root.resolve()
        if not root.is_dir():
            return []
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / assignment).is_dir())
        if self.settings.students:
            found = [s for s in found if s in self.settings.students]
        return found

    def _assignment_files(self, assignment: str) -> list[tuple[str, str]]:
        """Files learners received with the assignment (from the release folder)."""
        release = Path(
            self.coursedir.format_path(self.coursedir.release_directory, ".", assignment)
        )
        files = []
        if release.is_dir():
            for path in sorted(release.rglob("*")):
                if path.is_file() and path.suffix != ".ipynb":
                    files.append((str(path), str(path.relative_to(release))))
        return files

    # -- stages ----------------------------------------------------------------------------

    def _resources(self, sub: _Submission, notebook: str) -> dict:
        return {
            "nbgrader": {
                "notebook": notebook,
                "assignment": sub.assignment,
                "student": sub.student,
                "db_url": self.db_url,
            },
            "metadata": {"path": str(sub.folder), "name": notebook},
        }

    def _prepare(self, sub: _Submission) -> None:
        max_bytes = int(self.settings.max_notebook_mb * 1e6)
        pps = [
            ClearOutput(config=self.config),
            DeduplicateIds(config=self.config),
            OverwriteKernelspec(config=self.config),
            OverwriteCells(config=self.config, add_missing_cells=True),
            CheckCellMetadata(config=self.config),
        ]
        for name in self.notebook_names[sub.assignment]:
            nb = load_submission(
                sub.folder / f"{name}.ipynb", self.sources[(sub.assignment, name)], max_bytes
            )
            resources = self._resources(sub, name)
            for pp in pps:
                nb, resources = pp.preprocess(nb, resources)
            sub.notebooks[name] = nb

    def _finalize(self, sub: _Submission) -> Outcome:
        """Replace the learner's grades for the assignment by this run's outcome."""
        elapsed = time.monotonic() - sub.started
        failure = sub.failure or next(
            (f"{n}.ipynb: {r.reason}" for n, r in sorted(sub.executed.items()) if not r.ok), ""
        )
        out_dir = Path(
            self.coursedir.format_path(
                self.coursedir.autograded_directory, sub.student, sub.assignment
            )
        )
        gb = self.gb
        gb.update_or_create_student(sub.student)
        self._remove_submission(sub)
        if not failure:
            try:
                score, max_score = self._record(sub, out_dir)
            except Exception as exc:
                failure = f"the grades could not be recorded ({type(exc).__name__}: {exc})"
                gb.db.rollback()
                self._remove_submission(sub)
        if failure:
            shutil.rmtree(out_dir, ignore_errors=True)
            self.journal.set(
                sub.assignment,
                sub.student,
                status=FAILED,
                reason=failure,
                fingerprint=sub.fingerprint,
            )
            self.journal.save()
            return Outcome(sub.assignment, sub.student, FAILED, reason=failure, seconds=elapsed)
        self.journal.set(
            sub.assignment,
            sub.student,
            status=GRADED,
            score=score,
            max_score=max_score,
            fingerprint=sub.fingerprint,
        )
        self.journal.save()
        return Outcome(sub.assignment, sub.student, GRADED, score, max_score, seconds=elapsed)

    def _remove_submission(self, sub: _Submission) -> None:
        try:
            self.gb.remove_submission(sub.assignment, sub.student)
        except MissingEntry:
            self.gb.db.rollback()

    def _timestamp(self, folder: Path):
        path = folder / "timestamp.txt"
        try:
            text = path.read_text().strip()
            return parse_utc(text) if text else None
        except (OSError, ValueError):
            return None

    def _record(self, sub: _Submission, out_dir: Path) -> tuple[float, float]:
        self.gb.update_or_create_submission(
            sub.assignment, sub.student, timestamp=self._timestamp(sub.folder)
        )
        pps = [
            LimitOutput(config=self.config),
            CapOutputs(config=self.config),
            SaveAutoGrades(config=self.config),
            AssignLatePenalties(config=self.config),
            SanitizeOutputs(config=self.config),
            CheckCellMetadata(config=self.config),
        ]
        tmp_dir = out_dir.parent / f".{out_dir.name}.classgrade-tmp"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        for name, result in sorted(sub.executed.items()):
            nb = nbformat.reads(result.notebook_json, as_version=4)
            resources = self._resources(sub, name)
            for pp in pps:
                nb, resources = pp.preprocess(nb, resources)
            nbformat.write(nb, tmp_dir / f"{name}.ipynb")
        stamp = sub.folder / "timestamp.txt"
        if stamp.is_file():
            shutil.copyfile(stamp, tmp_dir / "timestamp.txt")
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp_dir, out_dir)
        submission = self.gb.find_submission(sub.assignment, sub.student)
        return float(submission.score), float(submission.max_score)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> RunSummary:
        started = time.monotonic()
        summary = RunSummary()
        db = sqlite_path(self.db_url)
        if db is not None and not db.exists():
            raise GradingSetupError(
                f"no gradebook at {db}; run `nbgrader generate_assignment` for each assignment "
                "first"
            )
        sandbox = Sandbox(self.settings.limits, enabled=self.settings.sandboxed)
        self_test(sandbox)
        with RunLock(self._state_dir() / "run.lock"):
            summary.backup = backup_gradebook(self.db_url, self.settings.keep_backups)
            with Gradebook(self.db_url, self.coursedir.course_id) as gb:
                assignments = self._load_assignments(gb)
            todo: list[_Submission] = []
            for assignment in assignments:
                release_hash = fingerprint(
                    [Path(p) for p, _ in self._assignment_files(assignment)],
                    json.dumps(
                        [
                            __version__,
                            _code_signature(),
                            self.settings.limits.to_dict(),
                            self.settings.sandboxed,
                        ]
                    ),
                )
                for student in self._students(assignment):
                    folder = self._submitted_folder(student, assignment)
                    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
                    fp = fingerprint(files, release_hash + self._source_signature(assignment))
                    entry = self.journal.get(assignment, student)
                    if (
                        not self.settings.force
                        and entry
                        and entry.get("status") == GRADED
                        and entry.get("fingerprint") == fp
                    ):
                        summary.skipped.append(
                            Outcome(
                                assignment,
                                student,
                                GRADED,
                                entry.get("score"),
                                entry.get("max_score"),
                            )
                        )
                        continue
                    todo.append(_Submission(assignment, student, folder, fp))
            for sub in todo:
                self.journal.set(
                    sub.assignment, sub.student, status=PENDING, fingerprint=sub.fingerprint
                )
            self.journal.save()
            progress = Progress(len(todo), enabled=self.settings.progress)
            with Gradebook(self.db_url, self.coursedir.course_id) as gb, lend_gradebook(gb):
                self.gb = gb
                self._run_jobs(todo, summary, progress)
            progress.close()
        summary.seconds = time.monotonic() - started
        return summary

    def _source_signature(self, assignment: str) -> str:
        parts = []
        for name in self.notebook_names[assignment]:
            src = self.sources[(assignment, name)]
            parts.append(
                json.dumps(sorted((c.name, c.points, c.locked) for c in src.cells.values()))
            )
        return "|".join(parts)

    def _run_jobs(self, todo: list[_Submission], summary: RunSummary, progress: Progress) -> None:
        workers = max(1, self.settings.workers)
        pending = list(todo)
        inflight: dict[Future, tuple[_Submission, str, ExecJob, int]] = {}
        waiting: dict[str, int] = {}  # submissions with notebooks still running

        def new_pool() -> ProcessPoolExecutor:
            return ProcessPoolExecutor(
                max_workers=workers,
                mp_context=get_context("spawn"),
                initializer=init_worker,
                initargs=(self.settings.limits.to_dict(), self.settings.sandboxed),
            )

        pool = new_pool()
        try:
            while pending or inflight:
                while pending and len(inflight) < 2 * workers:
                    sub = pending.pop(0)
                    sub.started = time.monotonic()
                    try:
                        self._prepare(sub)
                    except SubmissionError as exc:
                        sub.failure = str(exc)
                    except Exception as exc:
                        sub.failure = (
                            f"the notebook could not be read ({type(exc).__name__}: {exc})"
                        )
                    if sub.failure:
                        self._done(sub, summary, progress)
                        continue
                    key = f"{sub.assignment}/{sub.student}"
                    waiting[key] = len(sub.notebooks)
                    for name, nb in sub.notebooks.items():
                        job = self._exec_job(sub, name, nb)
                        inflight[pool.submit(run_job, job)] = (sub, name, job, 0)
                if not inflight:
                    continue
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                crashed = []
                for future in done:
                    sub, name, job, attempts = inflight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        crashed.append((sub, name, job, attempts))
                        continue
                    except Exception as exc:
                        result = ExecResult(job.key, False, reason=f"grading error: {exc}")
                    self._notebook_done(sub, name, result, waiting, summary, progress)
                if crashed:
                    # A worker died (not a kernel: the worker itself). Every job in flight is
                    # lost with it; each gets one more try in a fresh pool.
                    crashed += list(inflight.values())
                    inflight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = new_pool()
                    for sub, name, job, attempts in crashed:
                        if attempts >= 1:
                            result = ExecResult(job.key, False, reason="the grading worker crashed")
                            self._notebook_done(sub, name, result, waiting, summary, progress)
                        else:
                            inflight[pool.submit(run_job, job)] = (sub, name, job, attempts + 1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _notebook_done(self, sub, name, result, waiting, summary, progress) -> None:
        sub.executed[name] = result
        key = f"{sub.assignment}/{sub.student}"
        waiting[key] -= 1
        if waiting[key] == 0:
            self._done(sub, summary, progress)

    def _exec_job(self, sub: _Submission, name: str, nb) -> ExecJob:
        source_dir = Path(
            self.coursedir.format_path(self.coursedir.source_directory, ".", sub.assignment)
        ).resolve()
        return ExecJob(
            key=f"{sub.assignment}/{sub.student}/{name}",
            notebook_json=nbformat.writes(nb),
            assignment_files=self._assignment_files(sub.assignment),
            trusted_dir=str(source_dir),
            trusted_paths=[str(self.course_dir)],
        )

    def _done(self, sub: _Submission, summary: RunSummary, progress: Progress) -> None:
        try:
            with warnings.catch_warnings():
                # nbgrader's add_submission trips an SQLAlchemy 2 autoflush warning; harmless.
                warnings.simplefilter("ignore", SAWarning)
                outcome = self._finalize(sub)
        except Exception as exc:
            outcome = Outcome(sub.assignment, sub.student, FAILED, reason=f"grading error: {exc}")
            self.journal.set(sub.assignment, sub.student, status=FAILED, reason=outcome.reason)
            self.journal.save()
        summary.outcomes.append(outcome)
        summary.notebooks += max(1, len(sub.notebooks))
        progress.advance(outcome)


def _code_signature() -> str:
    """Grades depend on this package's code too: a new version regrades everything."""
    return fingerprint(sorted(Path(__file__).parent.glob("*.py")), "")


def grade(settings: Settings) -> RunSummary:
    return ClassGrader(settings).run()


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)
