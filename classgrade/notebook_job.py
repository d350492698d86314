"""One notebook, graded in a process of its own: the only part of classgrade that meets a kernel.

The grading run forks a job per notebook from a clean server process (``job_pool``): the job never
holds the gradebook or a course folder the learner can write to, decodes the kernel's messages
to plain data only, and hands its result back as JSON. Whatever happens in it (an exception,
``SystemExit``, ``os._exit``, a crash) fails that notebook alone.

A job dies with the run, and the sandbox dies with its job (lifeline). The job's parent is the
fork server, which outlives the run while any job lives (each job holds a copy of the run's end
of the server's own lifeline): so a job watches the run's process itself (``_end_with_run``), and
also dies with the server (parent-death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import zlib
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import nbformat
from jupyter_client.provisioning.factory import KernelProvisionerFactory
from jupyter_core.utils import run_sync

from . import preprocessors, reaper
from .cgroups import Cgroup, CgroupParents
from .executor import NotebookFailed, ProbeStartFailed, SandboxedExecute, describe_execution_failure
from .grade_outcome import (
    JOB_BAD_ANSWER,
    RESULT_TOO_LARGE,
    clean_text,
    grading_error,
    kernel_not_started,
    memory_limit_hit,
    timings,
)
from .output_sanitising import (
    InvalidNotebook,
    invalid_notebook,
    tidy_notebook,
    validated,
)
from .sandbox import (
    QUIET_TENSORFLOW,
    SUPPORT_DIR_IN_SANDBOX,
    Limits,
    Sandbox,
    SandboxKernelManager,
    kernel_environment,
    sandbox_uid,
)

_PR_SET_PDEATHSIG = 1
KERNEL_START_ATTEMPTS = 3
KERNEL_START_SECONDS = 60
"""How long one attempt waits for the kernel's first answer."""
MAX_RESULT_BYTES = 64 * 1024 * 1024
"""The largest result a job may hand back (outputs are capped well below this)."""
JOB_ADDRESS_SPACE = 8 * 1024**3
"""The job's own memory limit: a kernel that floods its outputs fails its notebook, not the
machine (the job collects outputs before they are capped)."""


@dataclass
class ExecJob:
    """One notebook to grade, with all its grading job needs to run it."""

    key: str
    index: int  # the notebook's number in this run: its sandbox uid and cgroup name
    notebook_json: str
    assignment_files: list[tuple[str, str]]  # (path on the host, name in the working dir)
    data_dir: str  # the grade cells' working directory (the assignment's released files)
    import_dir: str  # holds the hidden tests' packages; the only folder added to sys.path
    scratch_root: str
    limits: Limits
    sandboxed: bool = True
    cgroup: dict | None = None  # CgroupParents as a dict, where the machine allows one
    course_dir: str = ""  # never on sys.path itself (it holds the folders below)
    learner_folders: list[str] = field(default_factory=list)  # nothing under them on sys.path

    # A job reaches its process pickled, through a pipe from the run: past the pipe's 64 KiB
    # the run's write waits until the new process is scheduled and reads, and the whole run
    # waits with it (0.1 s a job on a busy machine). Notebooks are 40-90 KB of JSON; compressed
    # they fit.
    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["notebook_json"] = zlib.compress(self.notebook_json.encode("utf-8"), 1)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        packed = state["notebook_json"]
        if not isinstance(packed, bytes):
            raise TypeError("a pickled ExecJob holds its notebook compressed")
        self.__dict__.update(state, notebook_json=zlib.decompress(packed).decode("utf-8"))


@dataclass
class ExecResult:
    """A grading job's answer: the graded notebook, or why it failed."""

    key: str
    ok: bool
    notebook_json: str = ""
    reason: str = ""
    seconds: float = 0.0

    def to_json(self) -> bytes:
        """The answer as JSON bytes."""
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, key: str, raw: bytes) -> ExecResult:
        """A job's answer, checked field by field: a job that misbehaves fails its notebook."""
        try:
            data = json.loads(raw.decode("utf-8"))
            result = cls(
                key=key,
                ok=data["ok"] is True,
                notebook_json=str(data.get("notebook_json", "")),
                reason=clean_text(data.get("reason", "")),
                seconds=float(data.get("seconds", 0.0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls(key, False, reason=JOB_BAD_ANSWER)
        if data.get("key") != key:
            return cls(key, False, reason=JOB_BAD_ANSWER)
        return result


_IMPORTED_BY = os.getpid()
"""The process that imported this module: for a job, the fork server that forked it (``job_pool``
preloads this module there), known from before the fork."""


def _die_with_parent() -> None:
    # The parent's pid must come from before the fork: read in the job, getppid() would already
    # name a subreaper or init had the server ended in between, and the check would pass.
    parent = _IMPORTED_BY if _IMPORTED_BY != os.getpid() else os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent ended before the signal was armed
        os._exit(1)


def _end_with_run(scratch_root: str) -> None:
    """End this process as soon as the run whose scratch folder is ``scratch_root`` ends.

    The folder's name holds the run's token (``reaper``): its pid and start time. A pidfd of
    that pid, opened and then checked against the token (a pid reused before the opening would
    fail the check), becomes readable when the run ends, however it ends. A folder without a
    token (no run's) adds no watch.
    """
    name = Path(scratch_root).name
    if not name.startswith(reaper.SCRATCH_PREFIX):
        return
    token = name.removeprefix(reaper.SCRATCH_PREFIX)
    pid = token.partition(".")[0]
    if not pid.isdigit():
        return
    try:
        run = os.pidfd_open(int(pid))
    except ProcessLookupError:
        os._exit(1)
    except OSError:
        return  # no pidfds (Linux before 5.3): the parent-death signal alone
    if reaper.is_stale(token) or select.select([run], [], [], 0)[0]:  # ended, or a zombie
        os._exit(1)

    def watch() -> None:
        while True:
            try:
                select.select([run], [], [])
            except InterruptedError:
                continue
            os._exit(1)  # the sandbox's lifeline ends with this process

    threading.Thread(target=watch, daemon=True).start()


def _trusted_sys_path(import_dir: str, course_dir: str, learner_folders: list[str]) -> list[str]:
    """sys.path with the hidden tests' packages first, and no folder a learner can write to.

    Were the course folder (which holds ``submitted/``) or the working directory on sys.path,
    ``import submitted.<learner>...`` would run a learner's file in the grading process.
    Folders inside the course that are no learner's (a virtual environment) stay.
    """
    exact = {os.path.realpath(p) for p in (course_dir, os.getcwd()) if p}
    trees = [os.path.realpath(p).rstrip("/") + "/" for p in learner_folders]

    def allowed(entry: str) -> bool:
        if not entry or entry == ".":
            return False
        real = os.path.realpath(entry)
        return real not in exact and not any((real + "/").startswith(t) for t in trees)

    return [import_dir, *[p for p in sys.path if allowed(p)]]


def main(job: ExecJob, conn: Connection) -> None:
    """Entry point of the job process (forked by ``job_pool``): grade, answer, exit."""
    _die_with_parent()
    timings.begin(job.key)
    timings.mark("job")
    _end_with_run(job.scratch_root)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (JOB_ADDRESS_SPACE, JOB_ADDRESS_SPACE))
    os.environ.update(QUIET_TENSORFLOW, OPENBLAS_NUM_THREADS="1")
    started = time.monotonic()
    try:
        result = grade(job)
    except BaseException as exc:  # any failure fails this notebook only
        detail = clean_text("".join(traceback.format_exception_only(exc)))
        result = ExecResult(job.key, False, reason=grading_error(detail))
    result.seconds = time.monotonic() - started
    try:
        raw = result.to_json()
        if len(raw) > MAX_RESULT_BYTES:
            raw = ExecResult(job.key, False, reason=RESULT_TOO_LARGE).to_json()
        timings.mark("answer")
        conn.send_bytes(raw)
        conn.close()
        timings.flush()
    finally:
        os._exit(0)  # no atexit handlers, no finalizers of the forked server's state


def _start(
    job: ExecJob, sandbox: Sandbox, scratch: Path, lifeline_r: int, theirs: socket.socket
) -> tuple[SandboxKernelManager, Cgroup | None]:
    """Start the sandboxed kernel; return (kernel manager, cgroup or None)."""
    group = None
    prefix: list[str] = []
    limits = job.limits
    if job.cgroup is not None:
        parents = CgroupParents.from_dict(job.cgroup)
        group = Cgroup.create(
            parents,
            reaper.job_cgroup_name(Path(job.scratch_root), job.index),
            limits.memory_bytes,
            limits.processes,
        )
        prefix = group.enter_command()
    timings.mark("cgroup")
    km = SandboxKernelManager(
        sandbox=sandbox,
        scratch=str(scratch),
        files=[list(f) for f in job.assignment_files],
        lifeline_fd=lifeline_r,
        channel_fd=theirs.fileno(),
        argv_prefix=prefix,
        transport="ipc",
        ip=str(scratch / "ipc" / "k"),
        connection_file=str(scratch / "ipc" / "kernel.json"),
        autorestart=False,
    )
    support = SUPPORT_DIR_IN_SANDBOX if sandbox.enabled else str(scratch / "support")
    try:
        run_sync(km.start_kernel)(
            env=kernel_environment(support),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            pass_fds=(lifeline_r, theirs.fileno()),
        )
        process = getattr(km.provisioner, "process", None)
        if process is not None:
            reaper.record_sandbox(scratch, process.pid)
    except BaseException:
        if group is not None:
            group.remove()
        raise
    return km, group


def grade(job: ExecJob) -> ExecResult:
    """The result of grading ``job``'s notebook; a kernel that fails to start is retried."""
    limits = job.limits
    deadline = time.monotonic() + limits.notebook_seconds
    sys.path[:] = _trusted_sys_path(job.import_dir, job.course_dir, job.learner_folders)
    os.chdir(job.data_dir)
    last_error = ""
    for attempt in range(KERNEL_START_ATTEMPTS):
        scratch = Path(job.scratch_root) / f"job-{job.index}-{attempt}"
        try:
            return _grade_once(job, limits, scratch, deadline)
        except ProbeStartFailed as exc:
            last_error = str(exc)  # nothing of the learner's ran: a fresh kernel may start
        except _KernelStartFailed as exc:
            last_error = str(exc)
        if time.monotonic() >= deadline:
            break
    reason = kernel_not_started(KERNEL_START_ATTEMPTS, last_error)
    return ExecResult(job.key, False, reason=reason)


class _KernelStartFailed(Exception):
    pass


class ClosedOnce:
    """A file descriptor that is closed once, whichever thread closes it first.

    The watchdog closes the lifeline when the notebook's time is up, and the job closes it
    again when it ends. A second ``os.close`` of the same number would close whatever reused
    it meanwhile (ZeroMQ's signalling descriptors are opened as the executor stops its
    channels), and ZeroMQ then aborts the whole grading process.
    """

    def __init__(self, fd: int):
        self._fd = fd
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the descriptor if no thread has yet."""
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _grade_once(job: ExecJob, limits: Limits, scratch: Path, deadline: float) -> ExecResult:
    sandbox = Sandbox(limits, enabled=job.sandboxed, uid=sandbox_uid(job.index))
    scratch.mkdir(parents=True)
    sandbox.prepare_scratch(scratch)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    lifeline_r, lifeline_w = os.pipe()
    lifeline = ClosedOnce(lifeline_w)
    km = group = executor = None
    timed_out = threading.Event()

    def end_sandbox() -> None:
        timed_out.set()
        lifeline.close()  # the shim sees end-of-file and ends the whole sandbox

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), end_sandbox)
    watchdog.daemon = True
    try:
        try:
            timings.mark("kernel_start")
            km, group = _start(job, sandbox, scratch, lifeline_r, theirs)
            timings.mark("kernel_spawned")
        except Exception as exc:
            raise _KernelStartFailed(clean_text(exc)) from exc
        finally:
            os.close(lifeline_r)
            theirs.close()
        watchdog.start()
        nb = nbformat.reads(job.notebook_json, as_version=4)
        kernelspec = nb.metadata.get("kernelspec")  # the course's (set by the main process)
        executor = SandboxedExecute(
            timeout=limits.cell_seconds,
            call_timeout=limits.cell_seconds,
            channel_socket=ours,
            notebook_deadline=deadline,
            startup_timeout=KERNEL_START_SECONDS,
            on_kernel_ready=lambda: sandbox.lock_scratch(scratch),
        )
        try:
            executor.preprocess(nb, {"metadata": {"path": job.data_dir}}, km=km)
            if timed_out.is_set():
                raise NotebookFailed("wall-clock")
        except ProbeStartFailed:
            raise
        except BaseException as exc:  # the learner's notebook failed
            if isinstance(exc, Exception) and not executor.probe_ready and not timed_out.is_set():
                # The kernel never answered (e.g. "Kernel died before replying to
                # kernel_info"): nothing of the learner's ran, a fresh kernel may start.
                raise _KernelStartFailed(clean_text(exc)) from exc
            reason = describe_execution_failure(exc, timed_out.is_set(), limits.notebook_seconds)
            if group is not None and group.out_of_memory():
                reason = memory_limit_hit(reason, limits.memory_mb)
            return ExecResult(job.key, False, reason=reason)
        # Everything the learner wrote or the kernel sent is bounded and made safe to render
        # here, under this notebook's deadline, never in the run's main process.
        timings.mark("outputs")
        for pp in preprocessors.after_execution():
            nb, _ = pp.preprocess(nb, {})
        tidy_notebook(nb, kernelspec)
        try:
            validated(nb)
        except InvalidNotebook as exc:
            return ExecResult(job.key, False, reason=invalid_notebook(str(exc)))
        return ExecResult(job.key, True, notebook_json=nbformat.writes(nb))
    finally:
        watchdog.cancel()
        lifeline.close()
        if executor is not None and executor.kc is not None:
            with contextlib.suppress(Exception):
                executor.kc.stop_channels()
        if km is not None:
            km.kill_sandbox()
            with contextlib.suppress(Exception):
                run_sync(km.cleanup_resources)()
        if group is not None:
            group.remove()
        ours.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _warm_up() -> None:
    """Make once, in the fork server that imports this module, what each job would make.

    jupyter_client's provisioner factory, whose first use scans every installed distribution's
    entry points (0.1 s a job), and nbformat's validator of the current notebook format.
    Neither holds anything of a learner's: no job reaches the fork server's state back.
    """
    KernelProvisionerFactory.instance()
    nbformat.validate(nbformat.v4.new_notebook())


_warm_up()
