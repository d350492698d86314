"""Running notebook jobs side by side, each in a process of its own, each with a deadline.

Jobs are forked from multiprocessing's fork server, started once per run with the grading
code already imported (a fork costs milliseconds; a fresh interpreter would cost a second per
notebook). The server is a clean process: it holds no gradebook, and a job inherits nothing of
the main process but its arguments. A job answers with JSON bytes of bounded size on a pipe;
a job that crashes, exits, hangs past its deadline or answers garbage fails its own notebook
and no other.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Protocol

from . import notebook_job
from .grade_outcome import JOB_PAST_DEADLINE, job_ended
from .notebook_job import MAX_RESULT_BYTES, ExecJob, ExecResult

_JOIN_SECONDS = 5.0
SERVER_RESTART_SECONDS = 30.0
"""How long a job's start waits for a fork server that ended to be replaced."""


@dataclass
class _Running:
    job: ExecJob
    process: BaseProcess
    conn: Connection
    deadline: float


def start_fork_server(preload: Iterable[str] = ()) -> None:
    """Start the fork server, importing the grading code and ``preload``, and return at once.

    It takes a second or two to import them: started before the run plans, it is ready when
    the first notebook's job is. Started already, it stays as it is.
    """
    multiprocessing.forkserver.set_forkserver_preload(["classgrade.notebook_job", *preload])
    multiprocessing.forkserver.ensure_running()


class JobPool:
    """Up to ``workers`` jobs at a time; ``target(job, conn)`` runs in each job's process."""

    def __init__(
        self,
        workers: int,
        target: Callable[[ExecJob, Connection], None] = notebook_job.main,
        preload: Iterable[str] = (),
    ):
        self.workers = max(1, workers)
        self.target = target
        self.context = multiprocessing.get_context("forkserver")
        start_fork_server(preload)
        self.running: list[_Running] = []
        self.on_ended: Callable[[ExecJob], None] = lambda job: None

    def free(self) -> int:
        """How many more jobs may start now."""
        return self.workers - len(self.running)

    def start(self, job: ExecJob, seconds: float) -> None:
        """Start ``job``; it fails if it has not answered within ``seconds``."""
        receiver, sender = self.context.Pipe(duplex=False)
        try:
            process = self._forked(job, sender)
        finally:
            sender.close()
        self.running.append(_Running(job, process, receiver, time.monotonic() + seconds))

    def _forked(self, job: ExecJob, sender: Connection) -> BaseProcess:
        """The job's process, forked by the fork server; a new server if the old one ended.

        multiprocessing starts a new server only once the old one is reaped: just after it
        died, connecting to it is refused for a moment. Asked again until SERVER_RESTART_SECONDS.
        """
        deadline = time.monotonic() + SERVER_RESTART_SECONDS
        while True:
            process = self.context.Process(target=self.target, args=(job, sender), name=job.key)
            try:
                process.start()
                return process
            except (ConnectionError, FileNotFoundError, EOFError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def wait(self, timeout: float = 1.0) -> list[tuple[ExecJob, ExecResult]]:
        """Jobs that ended within ``timeout`` (or hit their deadline), with their results."""
        if not self.running:
            return []
        nearest = min(r.deadline for r in self.running) - time.monotonic()
        handles: list[Connection | int] = [r.conn for r in self.running]
        handles += [r.process.sentinel for r in self.running]
        ready = set(wait(handles, timeout=max(0.0, min(timeout, nearest))))
        done = []
        for running in list(self.running):
            result = None
            if running.conn in ready or running.process.sentinel in ready:
                result = self._collect(running)
            elif time.monotonic() >= running.deadline:
                result = ExecResult(running.job.key, False, reason=JOB_PAST_DEADLINE)
                self._end(running, killed=True)
            if result is not None:
                self.running.remove(running)
                done.append((running.job, result))
        return done

    def _collect(self, running: _Running) -> ExecResult:
        raw = None
        with contextlib.suppress(EOFError, OSError):
            if running.conn.poll(0):
                raw = running.conn.recv_bytes(MAX_RESULT_BYTES)
        running.process.join(_JOIN_SECONDS if raw is not None else 0.5)
        code = running.process.exitcode
        self._end(running, killed=raw is None)
        if raw is None:
            return ExecResult(running.job.key, False, reason=job_ended(code))
        return ExecResult.from_json(running.job.key, raw)

    def _end(self, running: _Running, killed: bool) -> None:
        running.process.join(0 if killed else _JOIN_SECONDS)
        if running.process.is_alive():
            running.process.kill()
            running.process.join(_JOIN_SECONDS)
            killed = True
        self.on_ended(running.job)  # what the job could not clean up itself
        with contextlib.suppress(OSError):
            running.conn.close()
        with contextlib.suppress(ValueError):
            running.process.close()

    def close(self) -> None:
        """Kill every running job and end it as killed."""
        for running in self.running:
            with contextlib.suppress(Exception):
                running.process.kill()
            self._end(running, killed=True)
        self.running.clear()


class Pool(Protocol):
    """What :func:`run_jobs` needs of a pool: this module's ``JobPool`` or a queue's."""

    @property
    def running(self) -> Sized:
        """The jobs started and not yet ended."""

    def free(self) -> int:
        """How many more jobs may start now."""

    def start(self, job: ExecJob, seconds: float) -> None:
        """Start ``job``; it fails if it has not answered within ``seconds``."""

    def wait(self, timeout: float = 1.0) -> list[tuple[ExecJob, ExecResult]]:
        """Jobs that ended within ``timeout``, with their results."""

    def close(self) -> None:
        """Stop whatever still runs."""


def run_jobs(
    jobs: Iterable[ExecJob | None], pool: Pool, seconds: float
) -> Iterator[tuple[ExecJob, ExecResult]]:
    """Run each of ``jobs`` in ``pool`` with a deadline of ``seconds``; yield each as it ends.

    A job is taken from ``jobs`` only when the pool has room for it, so a lazy iterable
    prepares each notebook just before it starts. A ``None`` from ``jobs`` means "nothing to
    start yet": ``jobs`` is asked again once the pool has waited for what runs (so a source
    that is still being fed, such as ``classgrade watch``'s, yields ``None`` only while some
    job runs). The run ends when ``jobs`` is exhausted and nothing runs. Closing the iterator
    kills what still runs.
    """
    pending = iter(jobs)
    exhausted = False
    try:
        while True:
            while not exhausted and pool.free() > 0:
                try:
                    job = next(pending)
                except StopIteration:
                    exhausted = True
                    break
                if job is None:
                    break
                pool.start(job, seconds)
            if exhausted and not pool.running:
                return
            yield from pool.wait(timeout=1.0)
    finally:
        pool.close()
