"""The coordinator's side of the queue: a pool that hands each notebook to any worker.

``QueuePool`` has the local ``JobPool``'s interface (``free``, ``start``, ``wait``, ``running``,
``close``), so the run fans notebooks out through the same ``jobs.run_jobs`` loop. ``start``
stores the job's files by hash and defers a procrastinate job (unless a job of the same
identity is already queued, running, or answered: a rerun after the coordinator was killed
re-enqueues nothing); ``wait`` collects result rows, each checked as hostile data exactly as a
local job's answer is. A worker that stops sending heartbeats for the lease loses its jobs to
other workers; after ``MAX_ATTEMPTS`` such losses the notebook fails with a plain reason and its
learner is not charged.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import procrastinate
import psycopg
from procrastinate import sql as procrastinate_sql
from procrastinate import utils as procrastinate_utils

from . import __version__
from . import job_queue as jq
from .grade_outcome import RESULT_TOO_LARGE
from .notebook_job import MAX_RESULT_BYTES, ExecJob, ExecResult

WORKERS_LOST = (
    "the workers grading this notebook stopped {n} times (machine gone or worker killed); "
    "the notebook was not graded"
)
WORKER_FAILED = "a worker could not run the grading of this notebook (see the worker's log)"
IN_FLIGHT = 64
"""Notebooks prepared and queued ahead of the workers (bounds the coordinator's memory)."""
NO_WORKER_HINT_SECONDS = 30.0


@dataclass
class _Queued:
    job: ExecJob
    key: str
    procrastinate_id: int | None


class QueuePool:
    """Jobs for the queue's workers, answered in result rows."""

    def __init__(
        self,
        url: str,
        lease_seconds: float = jq.DEFAULT_LEASE_SECONDS,
        in_flight: int = IN_FLIGHT,
        max_attempts: int = jq.MAX_ATTEMPTS,
    ):
        jq.prepare(url)
        self.url = url
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.workers = in_flight
        self.on_ended: Callable[[ExecJob], None] = lambda job: None
        self.conn = jq.connect(url, autocommit=True)
        self.conn.execute("LISTEN classgrade_results")
        self.app = jq.app(url)
        try:
            self.app.open()
        except procrastinate.exceptions.ConnectorException as exc:
            raise jq.QueueUnavailable(
                f"cannot reach the database: {jq.redact(jq.one_line(exc.__cause__ or exc))}"
            ) from None
        self.uploader = jq.Uploader(self.conn)
        self.queued: dict[str, _Queued] = {}
        self._recorded: list[str] = []  # results handed back, recorded once wait() is called
        self._next_check = 0.0
        self._last_progress = time.monotonic()
        self._hinted = False

    @property
    def running(self) -> list[_Queued]:
        """The jobs handed to the queue and not answered yet."""
        return list(self.queued.values())

    def free(self) -> int:
        """How many more jobs may be queued now."""
        return self.workers - len(self.queued)

    def start(self, job: ExecJob, seconds: float) -> None:
        """Queue ``job`` (the worker enforces ``seconds``, its deadline, itself)."""
        del seconds
        with self._database("queue a notebook"):
            payload = self.uploader.payload(job)
            payload["version"] = __version__
            key = jq.job_key(payload, job.notebook_json)
            answered = self.conn.execute(
                "SELECT 1 FROM results WHERE job_key = %s", (key,)
            ).fetchone()
            existing = None
            if answered is None:
                existing = self._live_job(key)
                if existing is None:
                    try:
                        existing = self.app.configure_task(
                            jq.TASK, queue=jq.QUEUE, queueing_lock=key
                        ).defer(job_key=key, payload=payload)
                    except procrastinate.exceptions.AlreadyEnqueued:
                        existing = self._live_job(key)
        self.queued[key] = _Queued(job, key, existing)

    def _live_job(self, key: str) -> int | None:
        row = self.conn.execute(
            "SELECT id FROM procrastinate_jobs WHERE queueing_lock = %s "
            "AND status IN ('todo', 'doing') ORDER BY id LIMIT 1",
            (key,),
        ).fetchone()
        return None if row is None else int(row[0])

    def wait(self, timeout: float = 1.0) -> list[tuple[ExecJob, ExecResult]]:
        """Jobs answered within ``timeout``, with their checked results."""
        if not self.queued:
            return []
        deadline = time.monotonic() + timeout
        with self._database("read the workers' results"):
            self._forget_recorded()
            while True:
                done = self._collect()
                if time.monotonic() >= self._next_check:
                    done += self._check_jobs()
                    self._next_check = time.monotonic() + max(1.0, self.lease_seconds / 3)
                if done:
                    self._last_progress = time.monotonic()
                    return done
                self._hint_if_idle()
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                # A worker NOTIFYs after each result row: wake at once rather than poll.
                for _ in self.conn.notifies(timeout=left, stop_after=1):
                    pass

    def _collect(self) -> list[tuple[ExecJob, ExecResult]]:
        rows = self.conn.execute(
            "SELECT job_key, CASE WHEN octet_length(answer) <= %s THEN answer END "
            "FROM results WHERE job_key = ANY(%s)",
            (MAX_RESULT_BYTES, list(self.queued)),
        ).fetchall()
        done = []
        for key, answer in rows:
            queued = self.queued.pop(key, None)
            if queued is None:
                continue
            if answer is None:
                result = ExecResult(queued.job.key, False, reason=RESULT_TOO_LARGE)
            else:
                # Hostile data: parsed field by field, its key must be the job's own.
                result = ExecResult.from_json(queued.job.key, bytes(answer))
            done.append((queued.job, result))
            self._recorded.append(key)
            self.on_ended(queued.job)
        return done

    def _forget_recorded(self) -> None:
        """Delete the result rows the run has recorded since (a killed run's stay for a rerun)."""
        if self._recorded:
            self.conn.execute("DELETE FROM results WHERE job_key = ANY(%s)", (self._recorded,))
            self._recorded = []

    def _check_jobs(self) -> list[tuple[ExecJob, ExecResult]]:
        """Jobs whose worker went silent go to another worker, or fail after too many tries."""
        by_id = {q.procrastinate_id: q for q in self.queued.values() if q.procrastinate_id}
        if not by_id:
            return []
        done = []
        stalled = self.app.connector.get_sync_connector().execute_query_all(
            query=procrastinate_sql.queries["select_stalled_jobs_by_heartbeat"],
            queue=jq.QUEUE,
            task_name=jq.TASK,
            seconds_since_heartbeat=self.lease_seconds,
        )
        for row in stalled:
            queued = by_id.get(row["id"])
            if queued is None:
                continue
            if row["attempts"] + 1 >= self.max_attempts:
                self.app.connector.get_sync_connector().execute_query(
                    query=procrastinate_sql.queries["finish_job"],
                    job_id=row["id"],
                    status="failed",
                    delete_job=False,
                )
                reason = WORKERS_LOST.format(n=row["attempts"] + 1)
                done.append(self._give_up(queued, reason))
            else:
                self.app.job_manager.retry_job_by_id(
                    job_id=row["id"], retry_at=procrastinate_utils.utcnow()
                )
        failed = self.conn.execute(
            "SELECT id FROM procrastinate_jobs WHERE id = ANY(%s) AND status = 'failed'",
            (list(by_id),),
        ).fetchall()
        for (job_id,) in failed:
            queued = by_id[job_id]
            if queued.key in self.queued:
                done.append(self._give_up(queued, WORKER_FAILED))
        return done

    def _give_up(self, queued: _Queued, reason: str) -> tuple[ExecJob, ExecResult]:
        del self.queued[queued.key]
        self.on_ended(queued.job)
        return queued.job, ExecResult(queued.job.key, False, reason=reason)

    def _hint_if_idle(self) -> None:
        if self._hinted or time.monotonic() - self._last_progress < NO_WORKER_HINT_SECONDS:
            return
        alive = self.conn.execute(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - make_interval(secs => %s)",
            (self.lease_seconds,),
        ).fetchone()
        if alive is not None and alive[0] == 0:
            print(
                "classgrade: no worker is taking notebooks from the queue; start one with "
                "`python -m classgrade worker --db <the same database>`",
                file=sys.stderr,
            )
            self._hinted = True

    @contextlib.contextmanager
    def _database(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (psycopg.Error, procrastinate.exceptions.ConnectorException) as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise jq.QueueUnavailable(
                f"the database stopped answering while trying to {doing}: "
                f"{jq.redact(jq.one_line(cause))}; no grade was recorded for the notebooks "
                "still in the queue: rerun `grade` once it is back"
            ) from None

    def close(self) -> None:
        """Stop waiting: queued jobs stay in the queue, and a rerun collects their results."""
        with contextlib.suppress(Exception):
            self._forget_recorded()
        self.queued.clear()
        with contextlib.suppress(Exception):
            self.app.close()
        with contextlib.suppress(Exception):
            self.conn.close()
