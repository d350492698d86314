"""What a grading run says about each submission.

Its outcome, its status, why it failed, and text fit to show an instructor.

Every reason, student id and file name that reaches a terminal, ``status`` or a CSV file passes
through here: reasons are built from learner-controlled data (file names, exception messages),
so they are cut to a bounded length and stripped of control characters (no escape codes, no
forged lines), and CSV cells are neutralised against spreadsheet formulas.

The reasons a notebook fails while it is graded are written here too. (Intake's reasons, which
name the file at fault, stay with the checks that find them: ``intake``.)
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

GRADED = "graded"
FAILED = "failed"
PENDING = "pending"
NOT_SUBMITTED = "not submitted"
GRADED_ELSEWHERE = "graded outside classgrade"


@dataclass
class Outcome:
    """One submission's result in a run: ``GRADED`` with its score, or ``FAILED`` with why."""

    assignment: str
    student: str
    status: str
    score: float | None = None
    max_score: float | None = None
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RunSummary:
    """What a grading run did: its outcomes, the submissions it skipped, its time and notes."""

    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    notebooks: int = 0
    backup: Path | None = None
    limits_note: str = ""

    @property
    def graded(self) -> list[Outcome]:
        """The outcomes of the graded submissions."""
        return [o for o in self.outcomes if o.status == GRADED]

    @property
    def failed(self) -> list[Outcome]:
        """The outcomes of the submissions that failed."""
        return [o for o in self.outcomes if o.status == FAILED]


ProgressCallback = Callable[[int, "Outcome | None"], None]
"""What a run tells of its progress: ``(total, None)`` once it knows how many submissions it
grades, then ``(total, outcome)`` after each of them."""


# -- Why a notebook failed while it was graded -----------------------------------------------

KERNEL_DIED = "the kernel died"
OUT_OF_TIME = "the notebook ran out of time"
KERNEL_DIED_RUNNING = (
    "the kernel died while running the notebook (os._exit, a crash, or the memory limit)"
)
CELL_IGNORED_INTERRUPT = (
    "a cell kept running past the time limit and ignored the interrupt; the kernel was stopped"
)
JOB_PAST_DEADLINE = "the grading of this notebook went past its deadline and was stopped"
JOB_BAD_ANSWER = "the grading process of this notebook sent a bad answer"
RESULT_TOO_LARGE = "the graded notebook is too large to record"
RUN_INTERRUPTED = "grading did not finish (the run was interrupted)"


def _exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def in_notebook(notebook: str, reason: str) -> str:
    """A notebook's failure as the submission's reason."""
    return f"{notebook}.ipynb: {reason}"


def over_wall_clock(seconds: float) -> str:
    """The reason for a notebook stopped at the wall-clock limit of ``seconds``."""
    return f"the notebook ran longer than {seconds:.0f} s (wall-clock limit) and was stopped"


def memory_limit_hit(reason: str, memory_mb: int) -> str:
    """``reason``, with the note that the notebook hit its memory limit of ``memory_mb`` MB."""
    return f"{reason} (the notebook's memory limit of {memory_mb} MB was hit)"


def not_run(exc: BaseException) -> str:
    """The reason for a notebook that could not be run (``exc``: why)."""
    return f"the notebook could not be run ({type(exc).__name__}: {clean_text(exc)})"


def not_read(exc: BaseException) -> str:
    """The reason for a notebook that could not be read (``exc``: why)."""
    return f"the notebook could not be read ({_exception(exc)})"


def not_recorded(exc: BaseException) -> str:
    """The reason for grades that could not be recorded (``exc``: why)."""
    return f"the grades could not be recorded ({_exception(exc)})"


def grading_error(detail: str | BaseException) -> str:
    """A bug or a crash in the grading code (``detail``: its exception, or text about it)."""
    text = _exception(detail) if isinstance(detail, BaseException) else detail
    return f"grading error: {text}"


def job_ended(exit_code: int | None) -> str:
    """The reason for a grading process that ended unexpectedly (``exit_code``: how)."""
    how = (
        f"signal {-exit_code}"
        if exit_code is not None and exit_code < 0
        else f"exit code {exit_code}"
    )
    return f"the grading process of this notebook ended unexpectedly ({how})"


def kernel_not_started(tries: int, last_error: str) -> str:
    """The reason for a kernel that did not start in ``tries`` tries (``last_error``: the last)."""
    return f"the kernel could not be started ({tries} tries): {last_error}"


MAX_REASON_CHARS = 300
"""Longest failure reason kept in the journal and shown to the instructor."""

MAX_NAME_CHARS = 80
"""Longest student id, assignment or file name shown in a reason or a table."""

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def clean_text(text: object, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` on one line, without control or format characters, at most ``limit`` chars."""
    out = []
    for ch in str(text):
        category = unicodedata.category(ch)
        if ch in "\n\r\t":
            out.append(" ")
        elif category[0] == "C" or category in ("Zl", "Zp"):
            # Cc (escape codes), Cf (bidirectional overrides), Cs, Co, Cn: never shown.
            out.append("?")
        else:
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    if len(cleaned) > limit:
        cleaned = cleaned[: max(0, limit - 1)] + "…"
    return cleaned


def clean_name(name: object) -> str:
    """A learner-chosen name (file, folder, student id), cleaned and shortened for display."""
    return clean_text(name, MAX_NAME_CHARS)


def csv_cell(value: object) -> str:
    """A CSV cell that no spreadsheet evaluates as a formula (OWASP's CSV-injection advice)."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


# -- where a notebook's time goes (the grading benchmark only) ----------------------------------

TIMINGS_ENV = "CLASSGRADE_TIMINGS"


class NotebookTimings:
    """Marks on the monotonic clock along a notebook's path, kept only when the benchmark asks.

    Off unless the environment variable ``CLASSGRADE_TIMINGS`` names a folder (the grading
    benchmark's ``--timings`` sets it): then each grading process (a notebook's job, the run's
    main process) keeps a few ``(name, seconds)`` marks and sums and appends them, one JSON line
    per key and flush, to a file of its own in that folder. When off, a mark costs one
    attribute test. ``time.monotonic`` is the machine's one monotonic clock, so the marks of
    different processes compare. Every mark is taken by a grading process, never by the
    learner's kernel (the folder is not in the sandbox); the benchmark still reads the files as
    untrusted data, and nothing in a grade depends on them. A forked process (a notebook's job)
    starts with no marks and notes when it was forked.
    """

    def __init__(self) -> None:
        self.folder: str | None = os.environ.get(TIMINGS_ENV) or None
        self.key = ""
        self.forked: float | None = None
        self.marks: dict[str, list[tuple[str, float]]] = {}
        self.sums: dict[str, float] = {}

    def after_fork(self) -> None:
        """In a forked child: fresh marks, and the fork's time."""
        self.folder = os.environ.get(TIMINGS_ENV) or None
        self.key = ""
        self.marks = {}
        self.sums = {}
        self.forked = time.monotonic() if self.folder else None

    def enabled(self) -> bool:
        """Whether this process keeps timings."""
        return self.folder is not None

    def begin(self, key: str) -> None:
        """Name what this process's next marks belong to (a notebook's job key)."""
        if self.folder is not None:
            self.key = key

    def mark(self, name: str, key: str | None = None) -> None:
        """Note that ``name`` happened now (for ``key``, else for this process's current key)."""
        if self.folder is not None:
            now = time.monotonic()
            self.marks.setdefault(self.key if key is None else key, []).append((name, now))

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to the sum ``name`` (time spread over many steps, e.g. cells)."""
        if self.folder is not None:
            self.sums[name] = self.sums.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def adding(self, name: str) -> Iterator[None]:
        """Add the time the ``with`` block takes to the sum ``name``."""
        if self.folder is None:
            yield
            return
        start = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - start)

    def flush(self) -> None:
        """Append what this process noted since its last flush to its file; never raises."""
        if self.folder is None or not (self.marks or self.sums):
            return
        lines = []
        for key in set(self.marks) | ({self.key} if self.sums else set()):
            entry: dict[str, object] = {"pid": os.getpid(), "forked": self.forked, "key": key}
            entry["marks"] = self.marks.get(key, [])
            if key == self.key:
                entry["sums"] = self.sums
            lines.append(json.dumps(entry) + "\n")
        self.marks = {}
        self.sums = {}
        with contextlib.suppress(OSError):
            path = Path(self.folder) / f"{os.getpid()}.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "a") as out:
                out.write("".join(lines))


timings = NotebookTimings()
os.register_at_fork(after_in_child=timings.after_fork)
