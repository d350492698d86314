"""The grading run: one or all assignments, for every learner who submitted.

The main process is the gradebook's only writer. Per submission it:

1. reads the submission folder without following anything (``intake``), rebuilds each notebook
   from the gradebook in the source's cell order (a duplicated grade id keeps its last copy,
   as nbgrader's DeduplicateIds would), then runs nbgrader's sanitizing preprocessors
   (ClearOutput, OverwriteKernelspec, OverwriteCells with ``add_missing_cells``,
   CheckCellMetadata) on a copy in memory;
2. hands each notebook to a job process of its own (``jobs``, ``job``), which executes it in a
   sandboxed kernel and answers with plain JSON;
3. removes the learner's previous grades for the assignment, then either records the new
   ones with nbgrader's SaveAutoGrades and AssignLatePenalties and writes the autograded
   notebooks, or records the failure with its reason in the journal.

A broken or hostile notebook only ever fails its own submission.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import sqlite3
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from nbgrader.utils import parse_utc
from sqlalchemy.exc import SAWarning
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from . import __version__, cgroups, reaper
from .intake import (
    TIMESTAMP_FILE,
    SourceNotebook,
    SubmissionError,
    SubmittedFolder,
    grade_ids_in_order,
    load_submission,
    read_submission,
    source_notebook_from_gradebook,
)
from .job import ExecJob, ExecResult
from .jobs import JobPool
from .journal import Journal
from .outcome import (
    FAILED,
    GRADED,
    PENDING,
    Outcome,
    ProgressCallback,
    RunSummary,
    clean_text,
    grading_error,
    in_notebook,
    not_read,
    not_recorded,
)
from .outputs import validated
from .sandbox import Limits, Sandbox, self_test

JOB_GRACE_SECONDS = 60
"""A job's deadline past the notebook's own budget: kernel start-up and the handing back."""

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
    """Lend the open gradebook ``gb`` to nbgrader's preprocessors for the run."""
    # nbgrader 0.9's preprocessors take no gradebook: each one's ``preprocess`` builds
    # ``Gradebook(resources["nbgrader"]["db_url"])`` itself, and the name is looked up in its own
    # module. Replacing that name for the run is the only way to hand them the open one.
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
    """What a grading run grades and how."""

    course_dir: Path
    assignments: list[str] | None = None
    students: list[str] | None = None
    workers: int = 2
    sandboxed: bool = True
    force: bool = False
    limits: Limits = field(default_factory=Limits)
    max_notebook_mb: float = 20.0
    progress: ProgressCallback | None = None
    keep_backups: int = 5

    @property
    def max_notebook_bytes(self) -> int:
        """The limit on a graded notebook's size, in bytes."""
        return int(self.max_notebook_mb * 1e6)


def load_course_config(course_dir: Path) -> Config:
    """The course's nbgrader configuration, rooted at ``course_dir``."""
    cfg = Config()
    config_file = course_dir / "nbgrader_config.py"
    if config_file.exists():
        cfg.merge(PyFileConfigLoader(config_file.name, str(course_dir)).load_config())
    cfg.CourseDirectory.root = str(course_dir)
    return cfg


def sqlite_path(db_url: str) -> Path | None:
    """The SQLite file of ``db_url``, or None for another database."""
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
    fingerprint: str
    read: SubmittedFolder | None = None
    notebooks: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    executed: dict[str, ExecResult] = field(default_factory=dict)
    failure: str = ""
    started: float = 0.0


class ClassGrader:
    """A course's grader: each notebook graded in its own job."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.course_dir = settings.course_dir.resolve()
        self.config = load_course_config(self.course_dir)
        self.coursedir = CourseDirectory(config=self.config)
        self.db_url = self.coursedir.db_url
        self.journal = Journal(self._state_dir() / "journal.json")
        self.sources: dict[tuple[str, str], SourceNotebook] = {}
        self.notebook_names: dict[str, list[str]] = {}
        self.cgroup_parents: cgroups.CgroupParents | None = None
        self._job_count = 0

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
                order = None
                for folder in (self._source_dir(a), self._release_dir(a)):
                    if order is None and (folder / f"{name}.ipynb").is_file():
                        order = grade_ids_in_order(folder / f"{name}.ipynb")
                self.sources[(a, name)] = source_notebook_from_gradebook(gb, a, name, order)
        return wanted

    def _source_dir(self, assignment: str) -> Path:
        cd = self.coursedir
        return Path(cd.format_path(cd.source_directory, ".", assignment)).resolve()

    def _release_dir(self, assignment: str) -> Path:
        cd = self.coursedir
        return Path(cd.format_path(cd.release_directory, ".", assignment)).resolve()

    def _submitted_root(self) -> Path:
        cd = self.coursedir
        return Path(cd.format_path(cd.submitted_directory, ".", ".")).resolve()

    def _students(self, assignment: str) -> list[str]:
        """Learners with an entry for ``assignment`` (links too: intake reports them)."""
        root = self._submitted_root()
        if not root.is_dir():
            return []
        found = []
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                    if entry.is_symlink():
                        found.append(entry.name)
                    continue
                if os.path.lexists(os.path.join(entry.path, assignment)):
                    found.append(entry.name)
        found.sort()
        if self.settings.students:
            found = [s for s in found if s in self.settings.students]
        return found

    @functools.cache  # noqa: B019 (one grader per run; asked once per notebook otherwise)
    def _assignment_files(self, assignment: str) -> list[tuple[str, str]]:
        """Files learners received with the assignment (regular files of the release folder)."""
        release = self._release_dir(assignment)
        files = []
        if release.is_dir():
            for path in sorted(release.rglob("*")):
                if path.is_file() and not path.is_symlink() and path.suffix != ".ipynb":
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
            "metadata": {"path": str(self._submitted_root()), "name": notebook},
        }

    def _read(self, sub: _Submission, keep: bool) -> SubmittedFolder:
        wanted = {f"{n}.ipynb" for n in self.notebook_names[sub.assignment]} | {TIMESTAMP_FILE}
        return read_submission(
            self._submitted_root(),
            sub.student,
            sub.assignment,
            wanted if keep else {TIMESTAMP_FILE},
            self.settings.max_notebook_bytes,
        )

    def _prepare(self, sub: _Submission) -> None:
        max_bytes = self.settings.max_notebook_bytes
        pps = [
            ClearOutput(config=self.config),
            OverwriteKernelspec(config=self.config),
            OverwriteCells(config=self.config, add_missing_cells=True),
            CheckCellMetadata(config=self.config),
        ]
        sub.read = self._read(sub, keep=True)
        if sub.read.digest() not in sub.fingerprint:
            raise SubmissionError("the submission changed while it was being graded")
        for name in self.notebook_names[sub.assignment]:
            nb = load_submission(
                sub.read, f"{name}.ipynb", self.sources[(sub.assignment, name)], max_bytes
            )
            resources = self._resources(sub, name)
            for pp in pps:
                nb, resources = pp.preprocess(nb, resources)
            sub.notebooks[name] = nb

    def _finalize(self, sub: _Submission) -> Outcome:
        """Replace the learner's grades for the assignment by this run's outcome."""
        elapsed = time.monotonic() - sub.started
        failure = sub.failure or next(
            (in_notebook(n, r.reason) for n, r in sorted(sub.executed.items()) if not r.ok), ""
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
                failure = not_recorded(exc)
                gb.db.rollback()
                self._remove_submission(sub)
        if failure:
            failure = clean_text(failure)
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

    @staticmethod
    def _timestamp(text: str | None):
        try:
            return parse_utc(text) if text else None
        except (ValueError, OverflowError, TypeError):
            return None

    def _record(self, sub: _Submission, out_dir: Path) -> tuple[float, float]:
        stamp = sub.read.timestamp() if sub.read else None
        self.gb.update_or_create_submission(
            sub.assignment, sub.student, timestamp=self._timestamp(stamp)
        )
        # Outputs and learner-written cells were capped and sanitised in the notebook's job
        # (under its deadline): the main process only records.
        pps = [
            SaveAutoGrades(config=self.config),
            AssignLatePenalties(config=self.config),
            CheckCellMetadata(config=self.config),
        ]
        tmp_dir = out_dir.parent / f".{out_dir.name}.classgrade-tmp"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        try:
            for name, result in sorted(sub.executed.items()):
                nb = nbformat.reads(result.notebook_json, as_version=4)
                resources = self._resources(sub, name)
                for pp in pps:
                    nb, resources = pp.preprocess(nb, resources)
                nbformat.write(validated(nb), tmp_dir / f"{name}.ipynb")
            if stamp is not None:
                # The validated text, written anew: never a copy of what the learner's file is.
                (tmp_dir / TIMESTAMP_FILE).write_text(clean_text(stamp, 100) + "\n")
            shutil.rmtree(out_dir, ignore_errors=True)
            os.replace(tmp_dir, out_dir)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        submission = self.gb.find_submission(sub.assignment, sub.student)
        return float(submission.score), float(submission.max_score)

    # -- what decides a grade ----------------------------------------------------------------

    def _import_sources(self) -> dict[str, Path]:
        """The packages the hidden tests import: the course's own copy first, else installed."""
        found = {}
        for name in ("gradecheck", "rnn_ref"):
            local = self.course_dir / name
            if (local / "__init__.py").is_file():
                found[name] = local
                continue
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.submodule_search_locations:
                found[name] = Path(next(iter(spec.submodule_search_locations)))
        return found

    def _grading_inputs(self, assignment: str) -> str:
        """A digest of everything besides the submission that decides its grade."""
        digest = hashlib.sha256()

        def add_tree(label: str, root: Path) -> None:
            digest.update(f"\0{label}\0".encode())
            if not root.exists():
                return
            for path in sorted(
                p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            ):
                digest.update(str(path.relative_to(root)).encode() + b"\0")
                digest.update(path.read_bytes())

        add_tree("classgrade", Path(__file__).parent)
        for name, folder in sorted(self._import_sources().items()):
            add_tree(name, folder)
        add_tree("source", self._source_dir(assignment))
        add_tree("release", self._release_dir(assignment))
        config = self.course_dir / "nbgrader_config.py"
        digest.update(config.read_bytes() if config.is_file() else b"")
        for name in self.notebook_names[assignment]:
            digest.update(self.sources[(assignment, name)].signature().encode())
        digest.update(
            json.dumps(
                [
                    __version__,
                    self.settings.limits.to_dict(),
                    self.settings.sandboxed,
                    self.settings.max_notebook_mb,
                    self.cgroup_parents is not None,
                ]
            ).encode()
        )
        return digest.hexdigest()

    def _trusted_imports(self, run_dir: Path, assignment: str) -> Path:
        """A folder with copies of the hidden tests' packages: the jobs' sys.path."""
        folder = run_dir / f"imports-{assignment}"
        if folder.exists():
            return folder
        folder.mkdir(mode=0o755)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name, source in self._import_sources().items():
            shutil.copytree(source, folder / name, ignore=ignore, symlinks=False)
        source_dir = self._source_dir(assignment)
        if source_dir.is_dir():
            for module in source_dir.glob("*.py"):
                if module.is_file() and not module.is_symlink():
                    shutil.copyfile(module, folder / module.name)
        return folder

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Grade the selected submissions; what the run did."""
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
            self.cgroup_parents = cgroups.detect() if self.settings.sandboxed else None
            summary.limits_note = (
                f"Limits per notebook: a cgroup (v{self.cgroup_parents.version}) bounds its "
                "memory and processes as a whole."
                if self.cgroup_parents is not None
                else "Limits per notebook: no cgroup could be made here; memory is bounded per "
                "process, processes per sandbox."
            )
            reaper.reap_stale(self.cgroup_parents)
            summary.backup = backup_gradebook(self.db_url, self.settings.keep_backups)
            with Gradebook(self.db_url, self.coursedir.course_id) as gb:
                assignments = self._load_assignments(gb)
            todo: list[_Submission] = []
            for assignment in assignments:
                inputs = self._grading_inputs(assignment)
                for student in self._students(assignment):
                    sub = _Submission(assignment, student, fingerprint="")
                    try:
                        sub.fingerprint = f"{self._read(sub, keep=False).digest()}:{inputs}"
                    except SubmissionError as exc:
                        sub.failure = str(exc)
                        sub.fingerprint = f"unreadable:{inputs}"
                    entry = self.journal.get(assignment, student)
                    if (
                        not self.settings.force
                        and not sub.failure
                        and entry
                        and entry.get("status") == GRADED
                        and entry.get("fingerprint") == sub.fingerprint
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
                    todo.append(sub)
            for sub in todo:
                self.journal.set(
                    sub.assignment, sub.student, status=PENDING, fingerprint=sub.fingerprint
                )
            self.journal.save()
            total = len(todo)
            progress = self.settings.progress or (lambda _total, _outcome: None)
            progress(total, None)
            run_dir = reaper.scratch_root(reaper.run_token())
            run_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(run_dir, 0o700)
            try:
                with Gradebook(self.db_url, self.coursedir.course_id) as gb, lend_gradebook(gb):
                    self.gb = gb
                    self._run_jobs(todo, summary, lambda o: progress(total, o), run_dir)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
        summary.seconds = time.monotonic() - started
        return summary

    def _run_jobs(
        self,
        todo: list[_Submission],
        summary: RunSummary,
        on_outcome: Callable[[Outcome], None],
        run_dir: Path,
    ) -> None:
        # Two jobs per worker: while one notebook is graded (the grader and its kernel take
        # turns, neither keeps a core busy), the next one's kernel starts.
        pool = JobPool(2 * self.settings.workers, preload=["rnn_ref"])
        pool.on_ended = lambda job: self._clean_after(job, run_dir)
        pending = list(todo)
        waiting: dict[str, tuple[_Submission, int]] = {}
        seconds = self.settings.limits.notebook_seconds + JOB_GRACE_SECONDS
        queue: list[tuple[_Submission, str, ExecJob]] = []
        try:
            while pending or queue or pool.running:
                while pending and len(queue) < pool.workers:
                    sub = pending.pop(0)
                    sub.started = time.monotonic()
                    if not sub.failure:
                        try:
                            self._prepare(sub)
                        except SubmissionError as exc:
                            sub.failure = str(exc)
                        except Exception as exc:
                            sub.failure = not_read(exc)
                    if sub.failure:
                        self._done(sub, summary, on_outcome)
                        continue
                    waiting[f"{sub.assignment}/{sub.student}"] = (sub, len(sub.notebooks))
                    for name, nb in sub.notebooks.items():
                        queue.append((sub, name, self._exec_job(sub, name, nb, run_dir)))
                while queue and pool.free() > 0:
                    sub, name, job = queue.pop(0)
                    pool.start(job, seconds)
                for job, result in pool.wait(timeout=1.0):
                    sub_key, name = job.key.rsplit("/", 1)
                    sub, left = waiting[sub_key]
                    sub.executed[name] = result
                    waiting[sub_key] = (sub, left - 1)
                    if left == 1:
                        del waiting[sub_key]
                        self._done(sub, summary, on_outcome)
        finally:
            pool.close()

    def _clean_after(self, job: ExecJob, run_dir: Path) -> None:
        """A job ended: remove what it may have left.

        Its cgroup and scratch, if it was killed; its sandbox ended with it.
        """
        if self.cgroup_parents is not None:
            name = reaper.job_cgroup_name(run_dir, job.index)
            folders = [p / name for p in self.cgroup_parents.folders() if (p / name).exists()]
            if folders:
                cgroups.Cgroup(self.cgroup_parents, name, folders).remove()
        for scratch in run_dir.glob(f"job-{job.index}-*"):
            reaper.kill_recorded(scratch)
            shutil.rmtree(scratch, ignore_errors=True)

    def _exec_job(self, sub: _Submission, name: str, nb, run_dir: Path) -> ExecJob:
        self._job_count += 1
        data_dir = self._grade_cell_data(run_dir, sub.assignment)
        parents = self.cgroup_parents
        return ExecJob(
            key=f"{sub.assignment}/{sub.student}/{name}",
            index=self._job_count,
            notebook_json=nbformat.writes(nb),
            assignment_files=self._assignment_files(sub.assignment),
            data_dir=str(data_dir),
            import_dir=str(self._trusted_imports(run_dir, sub.assignment)),
            scratch_root=str(run_dir),
            limits=self.settings.limits,
            sandboxed=self.settings.sandboxed,
            cgroup=None
            if parents is None
            else {
                "version": parents.version,
                "memory": str(parents.memory),
                "pids": str(parents.pids),
            },
            course_dir=str(self.course_dir),
            learner_folders=self._learner_folders(),
        )

    def _grade_cell_data(self, run_dir: Path, assignment: str) -> Path:
        """A copy of the assignment's data files: the working folder of its grade cells.

        The grade cells read their data from it and see nothing else of the source folder
        (no notebook with hidden tests, no solutions).
        """
        folder = run_dir / f"data-{assignment}"
        if folder.exists():
            return folder
        folder.mkdir(mode=0o755)
        source = self._source_dir(assignment)
        source = source if source.is_dir() else self._release_dir(assignment)
        for path in sorted(source.rglob("*")):
            if path.is_symlink() or path.suffix == ".ipynb" or "__pycache__" in path.parts:
                continue
            dest = folder / path.relative_to(source)
            if path.is_dir():
                dest.mkdir(mode=0o755, exist_ok=True)
            elif path.is_file():
                dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
                os.chmod(dest, 0o644)
        return folder

    def _learner_folders(self) -> list[str]:
        """Folders whose contents come from learners (or from their notebooks' runs)."""
        cd = self.coursedir
        folders = [
            cd.format_path(name, ".", ".")
            for name in (cd.submitted_directory, cd.autograded_directory, cd.feedback_directory)
        ]
        exchange = self.config.get("Exchange", {}).get("root")
        if isinstance(exchange, str) and exchange:
            folders.append(exchange)
        return [str(Path(f).resolve()) for f in folders]

    def _done(
        self, sub: _Submission, summary: RunSummary, on_outcome: Callable[[Outcome], None]
    ) -> None:
        try:
            with warnings.catch_warnings():
                # nbgrader's add_submission trips an SQLAlchemy 2 autoflush warning; harmless.
                warnings.simplefilter("ignore", SAWarning)
                outcome = self._finalize(sub)
        except Exception as exc:
            reason = clean_text(grading_error(exc))
            outcome = Outcome(sub.assignment, sub.student, FAILED, reason=reason)
            self.journal.set(sub.assignment, sub.student, status=FAILED, reason=reason)
            self.journal.save()
        summary.outcomes.append(outcome)
        summary.notebooks += max(1, len(sub.notebooks))
        on_outcome(outcome)
