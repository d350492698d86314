"""The grading run: one or all assignments, for every learner who submitted.

The main process is the gradebook's only writer. :meth:`ClassGrader.run` reads top to bottom:

1. it takes the course's run lock, backs the gradebook up (``gradebook``) and loads the
   assignments' cells from the gradebook;
2. it plans: each submission's fingerprint, and which ones are unchanged since their last
   grading (``planning``); the others are marked ``pending`` in the journal;
3. per submission, it reads the folder without following anything (``intake``), rebuilds each
   notebook from the gradebook in the source's cell order, and runs nbgrader's sanitizing
   preprocessors on it in memory (``preprocessors.sanitizing``);
4. it fans each notebook out to a job process of its own (:meth:`ClassGrader._fan_out`, the
   local pool of ``job_pool``), which executes it in a sandboxed kernel and answers with plain JSON;
5. when a submission's notebooks are all back, it removes the learner's previous grades for
   the assignment, then either records the new ones (``preprocessors.recording``) and writes
   the autograded notebooks, or keeps the failure with its reason; the journal is written in
   one place (:meth:`ClassGrader._done`).

A broken or hostile notebook only ever fails its own submission.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib.util
import os
import shutil
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.utils import parse_utc
from sqlalchemy.exc import SAWarning
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from . import __version__, cgroups, preprocessors, reaper
from .advisory_lock import AdvisoryLock
from .grade_outcome import (
    FAILED,
    GRADED,
    Outcome,
    ProgressCallback,
    RunSummary,
    clean_text,
    grading_error,
    in_notebook,
    not_read,
    not_recorded,
    timings,
)
from .gradebook import (
    GradingSetupError,
    RunLock,
    backup_gradebook,
    lend_gradebook,
    sqlite_path,
)
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
from .job_pool import JobPool, run_jobs, start_fork_server
from .job_queue import is_postgres
from .journal import Journal
from .notebook_job import ExecJob, ExecResult
from .output_sanitising import validated
from .planning import (
    Candidate,
    Plan,
    fingerprint_has,
    grading_inputs_digest,
    plan_run,
    submission_fingerprint,
    unreadable_fingerprint,
)
from .queue_pool import QueuePool
from .sandbox import Limits, Sandbox, self_test

Feed = Callable[[], Iterable[tuple[str, str]]]
"""A running run's source of further submissions: ``(assignment, student)`` pairs."""

JOB_PRELOAD = ("rnn_ref",)
"""What the jobs' fork server imports besides the grading code: the hidden tests' reference."""
JOB_GRACE_SECONDS = 60
"""A job's deadline past the notebook's own budget: kernel start-up and the handing back."""


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
    queue_db: str | None = None  # a PostgreSQL database: notebooks go to its queue's workers
    lease_seconds: float = 30.0  # a queue worker silent this long loses its notebooks

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


@dataclass
class _Submission:
    """One submission on its way through the run."""

    assignment: str
    student: str
    fingerprint: str
    failure: str = ""
    read: SubmittedFolder | None = None
    notebooks: dict[str, NotebookNode] = field(default_factory=dict)
    executed: dict[str, ExecResult] = field(default_factory=dict)
    started: float = 0.0

    @property
    def key(self) -> str:
        """The prefix of its notebooks' job keys."""
        return f"{self.assignment}/{self.student}"


@dataclass
class _Run:
    """What the run's later stages share: the open gradebook, the scratch folder, the tally."""

    gb: Gradebook
    run_dir: Path
    summary: RunSummary
    on_outcome: Callable[[Outcome], None]


class ClassGrader:
    """A course's grader: each notebook graded in its own job."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.course_dir = settings.course_dir.resolve()
        self.config = load_course_config(self.course_dir)
        self.coursedir = CourseDirectory(config=self.config)
        self.db_url: str = self.coursedir.db_url
        self.journal = Journal(self._state_dir() / "journal.json")
        self.sources: dict[tuple[str, str], SourceNotebook] = {}
        self.notebook_names: dict[str, list[str]] = {}
        self.duedates: dict[str, str] = {}  # a due date decides a late penalty
        self.cgroup_parents: cgroups.CgroupParents | None = None
        self._job_count = 0
        self._unchanged: list[Outcome] = []  # of the last planning

    # -- the run ---------------------------------------------------------------------------

    def run(self, feed: Feed | None = None) -> RunSummary:
        """Grade the selected submissions; what the run did.

        With ``feed``, the run grades what ``feed()`` names instead: it is asked at the start,
        then again whenever a job slot is free while some notebook is still being graded, and
        each ``(assignment, student)`` it returns joins the running run (planned, marked
        ``pending`` and graded as any other; one unchanged since its last grading is reported
        at once). The run ends when nothing is being graded and ``feed()`` names nothing new.
        """
        started = time.monotonic()
        summary = RunSummary()
        if self.settings.queue_db is None:
            start_fork_server(JOB_PRELOAD)  # it imports while the run plans
        self._check_can_start()
        with self._run_lock():
            summary.limits_note = self._take_machine()
            summary.backup = backup_gradebook(self.db_url, self.settings.keep_backups)
            if is_postgres(self.db_url):
                summary.limits_note += (
                    "\nThe gradebook is in PostgreSQL: classgrade made no copy of it; back it "
                    "up with pg_dump."
                )
            with Gradebook(self.db_url, self.coursedir.course_id) as gb:
                assignments = self._load_assignments(gb)
            if feed is None:
                todo = self._planned(self._candidates(assignments), summary)
            else:
                todo = []
            total = [len(todo)]
            progress = self.settings.progress or (lambda _total, _outcome: None)
            progress(total[0], None)
            run_dir = reaper.scratch_root(reaper.run_token())
            run_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(run_dir, 0o700)
            try:
                with Gradebook(self.db_url, self.coursedir.course_id) as gb, lend_gradebook(gb):
                    run = _Run(gb, run_dir, summary, lambda o: progress(total[0], o))
                    more = None
                    if feed is not None:
                        more = functools.partial(self._fed, feed, assignments, run, total)
                    self._grade(todo, run, more)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
        summary.seconds = time.monotonic() - started
        return summary

    def _check_can_start(self) -> None:
        """Refuse a run that cannot grade: no gradebook, or no sandbox where one is needed."""
        db = sqlite_path(self.db_url)
        if db is not None and not db.exists():
            raise GradingSetupError(
                f"no gradebook at {db}; run `nbgrader generate_assignment` for each assignment "
                "first"
            )
        queued = self.settings.queue_db is not None
        if queued and not self.settings.sandboxed:
            raise GradingSetupError(
                "the queue's workers always grade in the sandbox: no --no-sandbox"
            )
        if not queued:  # with a queue, learners' code runs on the workers, which test theirs
            self_test(Sandbox(self.settings.limits, enabled=self.settings.sandboxed))

    def _take_machine(self) -> str:
        """Under the run lock: this machine's cgroups found, what a dead run left reaped.

        Returns the summary's note on how each notebook's limits are enforced.
        """
        queued = self.settings.queue_db is not None
        local_sandbox = self.settings.sandboxed and not queued
        self.cgroup_parents = cgroups.detect() if local_sandbox else None
        reaper.reap_stale(self.cgroup_parents)
        if queued:
            return (
                "Limits per notebook: set on each worker's machine (a cgroup where the "
                "worker can make one, else per process)."
            )
        if self.cgroup_parents is not None:
            return (
                f"Limits per notebook: a cgroup (v{self.cgroup_parents.version}) bounds its "
                "memory and processes as a whole."
            )
        return (
            "Limits per notebook: no cgroup could be made here; memory is bounded per "
            "process, processes per sandbox."
        )

    # -- 1. what the gradebook knows -------------------------------------------------------

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
            self.duedates[a] = str(gb.find_assignment(a).duedate)
            for name in names:
                order = None
                for folder in (self._source_dir(a), self._release_dir(a)):
                    if order is None and (folder / f"{name}.ipynb").is_file():
                        order = grade_ids_in_order(folder / f"{name}.ipynb")
                self.sources[(a, name)] = source_notebook_from_gradebook(gb, a, name, order)
        return wanted

    # -- 2. planning -----------------------------------------------------------------------

    def _candidates(self, assignments: list[str]) -> list[Candidate]:
        """Every submission of ``assignments`` (of the selected learners), fingerprinted."""
        return [
            self._candidate(assignment, student)
            for assignment in assignments
            for student in self._students(assignment)
        ]

    def _candidate(self, assignment: str, student: str) -> Candidate:
        """The submission's fingerprint: its files and the grading inputs."""
        inputs = self._grading_inputs_once(assignment)
        try:
            folder = self._read(assignment, student, keep=False)
        except SubmissionError as exc:
            return Candidate(assignment, student, unreadable_fingerprint(inputs), str(exc))
        return Candidate(assignment, student, submission_fingerprint(folder.digest(), inputs))

    def _planned(self, candidates: list[Candidate], summary: RunSummary) -> list[_Submission]:
        """The submissions to grade, marked ``pending``; the unchanged ones go to ``summary``."""
        plan = self._plan(candidates)
        summary.skipped.extend(plan.unchanged)
        self._unchanged = plan.unchanged
        todo = [
            _Submission(c.assignment, c.student, c.fingerprint, failure=c.unreadable)
            for c in plan.to_grade
        ]
        self.journal.mark_pending((s.assignment, s.student, s.fingerprint) for s in todo)
        return todo

    def _fed(
        self, feed: Feed, assignments: list[str], run: _Run, total: list[int]
    ) -> list[_Submission]:
        """What ``feed`` names now, planned: those to grade (the unchanged are reported)."""
        pairs = sorted({(a, s) for a, s in feed() if a in assignments})
        todo = self._planned([self._candidate(a, s) for a, s in pairs], run.summary)
        total[0] += len(todo)
        for outcome in self._unchanged:  # answered as they were last graded
            run.on_outcome(outcome)
        return todo

    @functools.cache  # noqa: B019 (one grader per run; its inputs are read once)
    def _grading_inputs_once(self, assignment: str) -> str:
        return self._grading_inputs(assignment)

    def _plan(self, candidates: list[Candidate]) -> Plan:
        """Which of ``candidates`` to grade (``planning.plan_run``)."""
        last_gradings = {
            (c.assignment, c.student): entry
            for c in candidates
            if (entry := self.journal.get(c.assignment, c.student)) is not None
        }
        return plan_run(candidates, last_gradings, force=self.settings.force)

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

    def _grading_inputs(self, assignment: str) -> str:
        """A digest of everything besides the submission that decides its grade."""
        trees = [
            ("classgrade", Path(__file__).parent),
            *sorted(self._import_sources().items()),
            ("source", self._source_dir(assignment)),
            ("release", self._release_dir(assignment)),
        ]
        return grading_inputs_digest(
            trees,
            self.course_dir / "nbgrader_config.py",
            (self.sources[(assignment, n)].signature() for n in self.notebook_names[assignment]),
            [
                __version__,
                self.settings.limits.to_dict(),
                self.settings.sandboxed,
                self.settings.max_notebook_mb,
                self.cgroup_parents is not None,
                self.duedates.get(assignment),
            ],
        )

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

    # -- 3. each submission's notebooks, sanitised -----------------------------------------

    def _grade(
        self,
        todo: list[_Submission],
        run: _Run,
        more: Callable[[], list[_Submission]] | None = None,
    ) -> None:
        """Grade every submission of ``todo`` (and what ``more`` adds while some are graded).

        Each is done when its last notebook is back.
        """
        waiting: dict[str, _Submission] = {}
        left: dict[str, int] = {}
        jobs = self._notebook_jobs(todo, waiting, left, run, more)
        with contextlib.closing(self._fan_out(jobs, run.run_dir)) as results:
            for job, result in results:
                timings.mark("answered", job.key)
                sub_key, name = job.key.rsplit("/", 1)
                sub = waiting[sub_key]
                sub.executed[name] = result
                left[sub_key] -= 1
                if left[sub_key] == 0:
                    del waiting[sub_key], left[sub_key]
                    self._done(sub, run)
                    timings.mark("recorded", sub_key)
        self.journal.save()  # the whole journal in its snapshot again, for the next reader
        timings.flush()

    def _notebook_jobs(
        self,
        todo: list[_Submission],
        waiting: dict[str, _Submission],
        left: dict[str, int],
        run: _Run,
        more: Callable[[], list[_Submission]] | None = None,
    ) -> Iterator[ExecJob | None]:
        """Each submission prepared as its turn comes, then a job per notebook.

        A submission that cannot be prepared is done at once, as failed. Once ``todo`` is
        done, ``more()`` is asked for further submissions each time a job could start: with
        none, ``None`` (nothing to start yet) while some submission is still being graded,
        else the end.
        """
        queue = collections.deque(todo)
        while True:
            if not queue:
                if more is None:
                    return
                queue.extend(more())
                if not queue:
                    if not waiting:
                        return
                    yield None
                    continue
            sub = queue.popleft()
            sub.started = time.monotonic()
            timings.mark("prepare", sub.key)
            if not sub.failure:
                try:
                    self._prepare(sub)
                except SubmissionError as exc:
                    sub.failure = str(exc)
                except Exception as exc:
                    sub.failure = not_read(exc)
            if sub.failure:
                self._done(sub, run)
                continue
            waiting[sub.key] = sub
            left[sub.key] = len(sub.notebooks)
            timings.mark("prepared", sub.key)
            for name, nb in sub.notebooks.items():
                yield self._exec_job(sub, name, nb, run.run_dir)

    def _prepare(self, sub: _Submission) -> None:
        max_bytes = self.settings.max_notebook_bytes
        pps = preprocessors.sanitizing(self.config)
        sub.read = self._read(sub.assignment, sub.student, keep=True)
        if not fingerprint_has(sub.fingerprint, sub.read.digest()):
            raise SubmissionError("the submission changed while it was being graded")
        for name in self.notebook_names[sub.assignment]:
            nb = load_submission(
                sub.read, f"{name}.ipynb", self.sources[(sub.assignment, name)], max_bytes
            )
            resources = self._resources(sub, name)
            for pp in pps:
                nb, resources = pp.preprocess(nb, resources)
            sub.notebooks[name] = nb

    def _read(self, assignment: str, student: str, keep: bool) -> SubmittedFolder:
        """The submission's folder; with ``keep``, its notebooks' and timestamp's contents."""
        wanted = {f"{n}.ipynb" for n in self.notebook_names[assignment]} | {TIMESTAMP_FILE}
        return read_submission(
            self._submitted_root(),
            student,
            assignment,
            wanted if keep else {TIMESTAMP_FILE},
            self.settings.max_notebook_bytes,
        )

    def _resources(self, sub: _Submission, notebook: str) -> dict[str, dict[str, str]]:
        return {
            "nbgrader": {
                "notebook": notebook,
                "assignment": sub.assignment,
                "student": sub.student,
                "db_url": self.db_url,
            },
            "metadata": {"path": str(self._submitted_root()), "name": notebook},
        }

    # -- 4. the notebooks' jobs ------------------------------------------------------------

    def _exec_job(self, sub: _Submission, name: str, nb: NotebookNode, run_dir: Path) -> ExecJob:
        self._job_count += 1
        data_dir = self._grade_cell_data(run_dir, sub.assignment)
        parents = self.cgroup_parents
        return ExecJob(
            key=f"{sub.key}/{name}",
            index=self._job_count,
            notebook_json=nbformat.writes(nb),
            assignment_files=self._assignment_files(sub.assignment),
            data_dir=str(data_dir),
            import_dir=str(self._trusted_imports(run_dir, sub.assignment)),
            scratch_root=str(run_dir),
            limits=self.settings.limits,
            sandboxed=self.settings.sandboxed,
            cgroup=None if parents is None else parents.to_dict(),
            course_dir=str(self.course_dir),
            learner_folders=self._learner_folders(),
        )

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

    def _run_lock(self) -> RunLock | AdvisoryLock:
        """One run at a time: a lock file, or in a PostgreSQL gradebook an advisory lock."""
        if is_postgres(self.db_url):
            return AdvisoryLock(self.db_url, self.coursedir.course_id)
        return RunLock(self._state_dir() / "run.lock")

    def _fan_out(
        self, jobs: Iterable[ExecJob | None], run_dir: Path
    ) -> Generator[tuple[ExecJob, ExecResult], None, None]:
        """Where the notebooks' jobs leave the main process: here, to a local process pool.

        Takes each job from ``jobs`` when there is room for it and yields ``(job, result)`` as
        each one ends; closing the generator stops whatever still runs.
        """
        # Two jobs per worker: while one notebook is graded (the grader and its kernel take
        # turns, neither keeps a core busy), the next one's kernel starts.
        pool: JobPool | QueuePool
        if self.settings.queue_db is not None:  # or to any machine's workers, through a queue
            pool = QueuePool(self.settings.queue_db, self.settings.lease_seconds)
        else:
            pool = JobPool(2 * self.settings.workers, preload=JOB_PRELOAD)
        pool.on_ended = lambda job: self._clean_after(job, run_dir)
        seconds = self.settings.limits.notebook_seconds + JOB_GRACE_SECONDS
        yield from run_jobs(jobs, pool, seconds)

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

    # -- 5. recording ----------------------------------------------------------------------

    def _done(self, sub: _Submission, run: _Run) -> None:
        """The submission's outcome recorded: the gradebook, the journal, the tally."""
        try:
            with warnings.catch_warnings():
                # nbgrader's add_submission trips an SQLAlchemy 2 autoflush warning; harmless.
                warnings.simplefilter("ignore", SAWarning)
                outcome = self._finalize(sub, run.gb)
        except Exception as exc:
            reason = clean_text(grading_error(exc))
            outcome = Outcome(sub.assignment, sub.student, FAILED, reason=reason)
        self.journal.record(outcome, sub.fingerprint)
        run.summary.outcomes.append(outcome)
        run.summary.notebooks += max(1, len(sub.notebooks))
        run.on_outcome(outcome)

    def _finalize(self, sub: _Submission, gb: Gradebook) -> Outcome:
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
        gb.update_or_create_student(sub.student)
        _remove_submission(gb, sub)
        if not failure:
            try:
                score, max_score = self._record(sub, gb, out_dir)
            except Exception as exc:
                failure = _refusal(exc) or not_recorded(exc)
                gb.db.rollback()
                _remove_submission(gb, sub)
        if failure:
            shutil.rmtree(out_dir, ignore_errors=True)
            reason = clean_text(failure)
            return Outcome(sub.assignment, sub.student, FAILED, reason=reason, seconds=elapsed)
        return Outcome(sub.assignment, sub.student, GRADED, score, max_score, seconds=elapsed)

    def _record(self, sub: _Submission, gb: Gradebook, out_dir: Path) -> tuple[float, float]:
        stamp = sub.read.timestamp() if sub.read else None
        gb.update_or_create_submission(sub.assignment, sub.student, timestamp=_timestamp(stamp))
        # Outputs and learner-written cells were capped and sanitised in the notebook's job
        # (under its deadline): the main process only records.
        pps = preprocessors.recording(self.config)
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
            gb.db.commit()  # the preprocessors' writes, at once (gradebook._FlushOnCommit)
            shutil.rmtree(out_dir, ignore_errors=True)
            os.replace(tmp_dir, out_dir)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        submission = gb.find_submission(sub.assignment, sub.student)
        return float(submission.score), float(submission.max_score)

    # -- the course's folders --------------------------------------------------------------

    def _state_dir(self) -> Path:
        db = sqlite_path(self.db_url)
        base = db.parent if db is not None else self.course_dir
        folder = base / ".classgrade"  # the course root may hold this package itself
        folder.mkdir(exist_ok=True)
        return folder

    def _source_dir(self, assignment: str) -> Path:
        cd = self.coursedir
        return Path(cd.format_path(cd.source_directory, ".", assignment)).resolve()

    def _release_dir(self, assignment: str) -> Path:
        cd = self.coursedir
        return Path(cd.format_path(cd.release_directory, ".", assignment)).resolve()

    def _submitted_root(self) -> Path:
        cd = self.coursedir
        return Path(cd.format_path(cd.submitted_directory, ".", ".")).resolve()


def _remove_submission(gb: Gradebook, sub: _Submission) -> None:
    try:
        gb.remove_submission(sub.assignment, sub.student)
    except MissingEntry:
        gb.db.rollback()


def _refusal(exc: BaseException) -> str:
    """The reason an exception raised while recording gives for not grading the submission.

    A course's recording code (its late-work plugin, ``gradecheck.late_work.LateWorkError``)
    marks such an exception with ``refuses_submission = True``: its message is the reason,
    shown as it is, as a ``SubmissionError``'s is. Any other exception is a failure to record.
    """
    if getattr(exc, "refuses_submission", False) is True:
        return clean_text(str(exc))
    return ""


def _timestamp(text: str | None) -> datetime | None:
    try:
        return parse_utc(text) if text else None
    except (ValueError, OverflowError, TypeError):
        return None
