"""The run's hold on the gradebook: one run at a time, a backup first, one connection lent.

SQLite has one writer, so a course is graded by one run at a time (:class:`RunLock`); the run
copies the gradebook before it writes (:func:`backup_gradebook`); and nbgrader's preprocessors,
which each open a gradebook of their own, are lent the run's open one (:func:`lend_gradebook`).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from nbgrader.api import Gradebook


class GradingSetupError(RuntimeError):
    """The run cannot start (no gradebook, unknown assignment, another run in progress)."""


_GRADEBOOK_USERS = (
    "nbgrader.preprocessors.overwritecells",
    "nbgrader.preprocessors.overwritekernelspec",
    "nbgrader.preprocessors.saveautogrades",
    "nbgrader.preprocessors.latesubmissions",
)


class _FlushOnCommit:
    """The run's database session as nbgrader's preprocessors see it: their commit only flushes.

    SaveAutoGrades commits after each grade cell and each comment (an fsync each on SQLite, in
    the run's one main process): the run commits once per submission instead, when all its
    notebooks' grades are in (``runner.ClassGrader._record``), so a submission's grades are
    written whole or not at all.
    """

    def __init__(self, session: Any):
        self._session = session

    def commit(self) -> None:
        self._session.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class _Borrowed:
    """Stands for nbgrader's Gradebook inside its preprocessors: the run's open connection.

    Opening a Gradebook builds an SQLAlchemy engine and inspects the schema (tens of ms);
    nbgrader's preprocessors open one per notebook each. The main process owns one for the
    whole run and lends it; leaving the ``with`` block does not close it, and the
    preprocessors' commits wait for the run's (:class:`_FlushOnCommit`).
    """

    def __init__(self, gb: Gradebook):
        self._gb = gb
        self.db = _FlushOnCommit(gb.db)

    def __call__(self, *args: object, **kwargs: object) -> _Borrowed:
        return self

    def __enter__(self) -> _Borrowed:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gb, name)


@contextlib.contextmanager
def lend_gradebook(gb: Gradebook) -> Iterator[None]:
    """Lend the open gradebook ``gb`` to nbgrader's preprocessors for the run."""
    # nbgrader 0.9's preprocessors take no gradebook: each one's ``preprocess`` builds
    # ``Gradebook(resources["nbgrader"]["db_url"])`` itself, and the name is looked up in its own
    # module. Replacing that name for the run is the only way to hand them the open one.
    # Any: the name is set on modules whose type tells nothing of it.
    modules: list[Any] = [importlib.import_module(m) for m in _GRADEBOOK_USERS]
    saved = [m.Gradebook for m in modules]
    borrowed = _Borrowed(gb)
    for m in modules:
        m.Gradebook = borrowed
    try:
        yield
    finally:
        for m, original in zip(modules, saved, strict=True):
            m.Gradebook = original


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

    def __enter__(self) -> RunLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise GradingSetupError(
                f"another grading run holds {self.path}; wait for it to finish"
            ) from None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        return False
