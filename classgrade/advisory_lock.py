"""One grading run per course across machines: a PostgreSQL advisory lock.

With the gradebook in PostgreSQL, coordinators may start on different machines, where a lock
file proves nothing. The run holds a session-level advisory lock on the gradebook's database,
keyed by the course, for as long as it runs; the server releases it when the run's connection
ends, however the run ended (a killed coordinator included).
"""

from __future__ import annotations

import hashlib
from types import TracebackType
from typing import Literal

import psycopg

from . import job_queue as jq
from .gradebook import GradingSetupError


def lock_key(course_id: str) -> int:
    """The advisory lock's 64-bit key for ``course_id``."""
    digest = hashlib.sha256(f"classgrade run {course_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLock:
    """Held while a run of ``course_id`` grades into the PostgreSQL gradebook at ``db_url``."""

    def __init__(self, db_url: str, course_id: str):
        self.db_url = db_url
        self.course_id = course_id
        self.conn: psycopg.Connection | None = None

    def __enter__(self) -> AdvisoryLock:
        conn = jq.connect(self.db_url, autocommit=True)
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(self.course_id),))
            got = row.fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise jq.QueueUnavailable(
                f"cannot take the run lock in the gradebook's database: {jq.redact(exc)}"
            ) from None
        if not (got and got[0]):
            conn.close()
            raise GradingSetupError(
                f"another grading run of course {self.course_id!r} holds its lock in the "
                "gradebook's database; wait for it to finish"
            )
        self.conn = conn
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if self.conn is not None:
            try:
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(self.course_id),))
            except psycopg.Error:
                pass  # the connection is gone, and the lock with it
            finally:
                self.conn.close()
        return False
