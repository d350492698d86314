"""``python -m classgrade worker --db URL``: grade notebooks from the queue, on any machine.

A worker first checks that the sandbox works here (``selftest``) and refuses to start where it
does not. It then takes jobs from the procrastinate queue in the database, ``--processes`` at a
time, writes the files each job names (by hash) into its own scratch folder, grades the
notebook exactly as a local run does (a job process forked from a clean server, the kernel in
the sandbox, the same limits) and writes one result row. It never opens nbgrader's gradebook.

While it runs it sends a heartbeat; a worker that stops (killed, machine gone) loses its jobs
to the others once the coordinator's lease runs out.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import sys
import threading

import procrastinate
import psycopg
import psycopg_pool

from . import __version__, cgroups, reaper
from . import job_queue as jq
from .grade_outcome import clean_text, grading_error
from .job_pool import JobPool
from .notebook_job import MAX_RESULT_BYTES, ExecJob, ExecResult
from .runner import JOB_GRACE_SECONDS
from .sandbox import Limits, Sandbox, self_test


class Worker:
    """One worker process: its scratch folder, cgroups, database pool and job counter."""

    def __init__(self, url: str, processes: int, lease_seconds: float):
        self.url = url
        self.processes = max(1, processes)
        self.lease_seconds = lease_seconds
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.parents = cgroups.detect()
        reaper.reap_stale(self.parents)
        self.run_dir = reaper.scratch_root(reaper.run_token())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        self.files = self.run_dir / "files"
        self.files.mkdir(mode=0o755, exist_ok=True)
        self.pool = psycopg_pool.ConnectionPool(
            jq.conninfo(url),
            kwargs={
                "options": f"-c search_path={jq.SCHEMA}",
                "connect_timeout": jq.CONNECT_SECONDS,
                "autocommit": True,
            },
            min_size=1,
            max_size=self.processes + 1,
            timeout=jq.CONNECT_SECONDS,
            open=False,
        )
        self._index = itertools.count(1)
        self._index_lock = threading.Lock()

    def grade(self, job_key: str, payload: object) -> None:
        """The task: grade the job's notebook and write its result row."""
        with self.pool.connection() as conn:
            result = self._grade(conn, job_key, payload)
            raw = result.to_json()
            if len(raw) > MAX_RESULT_BYTES:
                raw = ExecResult(
                    result.key, False, reason="the graded notebook is too large"
                ).to_json()
            conn.execute(
                "INSERT INTO results (job_key, answer, worker) VALUES (%s, %s, %s) "
                "ON CONFLICT (job_key) DO NOTHING",
                (job_key, raw, self.name),
            )
            conn.execute("NOTIFY classgrade_results")

    def _grade(self, conn: psycopg.Connection, job_key: str, payload: object) -> ExecResult:
        key = payload.get("key") if isinstance(payload, dict) else None
        if not isinstance(key, str) or not isinstance(payload, dict):
            return ExecResult(str(key), False, reason="the queue's job is malformed")
        if payload.get("version") != __version__:
            reason = (
                f"the worker runs classgrade {__version__}, the run "
                f"{clean_text(payload.get('version'), 40)}: update the worker"
            )
            return ExecResult(key, False, reason=reason)
        try:
            job = self._exec_job(conn, key, payload)
        except (ValueError, TypeError, OSError, jq.QueueUnavailable) as exc:
            return ExecResult(key, False, reason=grading_error(clean_text(exc)))
        seconds = job.limits.notebook_seconds + JOB_GRACE_SECONDS
        pool = JobPool(1, preload=["rnn_ref"])
        pool.on_ended = self._clean_after
        pool.start(job, seconds)
        try:
            while True:
                for _job, result in pool.wait(timeout=1.0):
                    return result
        finally:
            pool.close()

    def _exec_job(self, conn: psycopg.Connection, key: str, payload: dict) -> ExecJob:
        if payload.get("sandboxed") is not True:
            raise ValueError("a worker grades only in the sandbox (the run asked for none)")
        files = jq.Materialiser(conn, self.files)
        notebook = files.blob_path(jq._hash_name(payload.get("notebook"))).read_text("utf-8")
        assignment_files = [
            (str(files.blob_path(name)), rel)
            for name, rel in jq.files_of(payload.get("assignment_files"))
        ]
        with self._index_lock:
            index = next(self._index)
        parents = self.parents
        return ExecJob(
            key=key,
            index=index,
            notebook_json=notebook,
            assignment_files=assignment_files,
            data_dir=str(files.tree(jq.files_of(payload.get("data_files")))),
            import_dir=str(files.tree(jq.files_of(payload.get("import_files")))),
            scratch_root=str(self.run_dir),
            limits=jq.limits_of(payload.get("limits")),
            sandboxed=True,
            cgroup=None if parents is None else parents.to_dict(),
        )

    def _clean_after(self, job: ExecJob) -> None:
        """A job ended: its cgroup and scratch, if it was killed (as a local run does)."""
        if self.parents is not None:
            name = reaper.job_cgroup_name(self.run_dir, job.index)
            folders = [p / name for p in self.parents.folders() if (p / name).exists()]
            if folders:
                cgroups.Cgroup(self.parents, name, folders).remove()
        for scratch in self.run_dir.glob(f"job-{job.index}-*"):
            reaper.kill_recorded(scratch)
            shutil.rmtree(scratch, ignore_errors=True)

    def run(self) -> None:
        """Take jobs until stopped (SIGINT or SIGTERM: the running ones finish first)."""
        app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=jq.conninfo(self.url),
                kwargs={
                    "options": f"-c search_path={jq.SCHEMA}",
                    "connect_timeout": jq.CONNECT_SECONDS,
                },
                min_size=1,
                max_size=3,
                timeout=jq.CONNECT_SECONDS,
            )
        )
        app.task(name=jq.TASK, queue=jq.QUEUE)(self.grade)
        self.pool.open(wait=True, timeout=jq.CONNECT_SECONDS)
        try:
            print(
                f"classgrade worker {self.name}: the sandbox works; grading up to "
                f"{self.processes} notebooks at a time from {jq.redact(self.url)}",
                file=sys.stderr,
                flush=True,
            )
            app.run_worker(
                queues=[jq.QUEUE],
                name=self.name,
                concurrency=self.processes,
                update_heartbeat_interval=max(0.5, self.lease_seconds / 3),
                stalled_worker_timeout=self.lease_seconds,
                # Finished jobs stay (their attempts tell of lost workers); see the guide.
            )
        finally:
            self.pool.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)


def run_worker(url: str, processes: int, lease_seconds: float = jq.DEFAULT_LEASE_SECONDS) -> None:
    """Check the sandbox, prepare the queue, and grade until stopped."""
    jq.conninfo(url)  # a database that is not PostgreSQL: refused before anything starts
    self_test(Sandbox(Limits()))  # SandboxUnavailable: the command refuses to start
    jq.prepare(url)
    Worker(url, processes, lease_seconds).run()
