"""A grading worker process: executes sanitized notebooks in sandboxed kernels.

Each worker keeps the next kernel booting while it grades the current notebook, so the ~0.5 s
start-up of a kernel overlaps useful work. Workers never touch the gradebook: the main process
is its only writer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import psutil
from jupyter_core.utils import run_sync

from .preprocessors import NotebookFailed, SandboxedExecute, Watchdog, describe_execution_failure
from .sandbox import Limits, Sandbox, SandboxKernelManager, kernel_environment
from .trusted import KernelUnavailable


@dataclass
class ExecJob:
    key: str
    notebook_json: str
    assignment_files: list[tuple[str, str]]  # (path on the host, name in the working dir)
    trusted_dir: str  # the assignment's source directory: helpers of the hidden tests
    trusted_paths: list[str] = field(default_factory=list)


@dataclass
class ExecResult:
    key: str
    ok: bool
    notebook_json: str = ""
    reason: str = ""
    seconds: float = 0.0
    forbidden: list[str] = field(default_factory=list)


SCRATCH_PREFIX = "classgrade-worker-"
"""Scratch folders are named ``classgrade-worker-<pid>-<random>`` in the temporary directory."""


def remove_stale_scratch() -> None:
    """Delete the scratch folders of workers that no longer run (left by a killed run)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


class Worker:
    def __init__(self, limits: Limits, sandboxed: bool):
        self.limits = limits
        self.sandbox = Sandbox(limits, enabled=sandboxed)
        remove_stale_scratch()
        self.base = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        os.chmod(self.base, 0o755)
        self._next: tuple[SandboxKernelManager, Path] | None = None
        self._counter = 0

    def _start_kernel(self) -> tuple[SandboxKernelManager, Path]:
        self._counter += 1
        scratch = self.base / f"k{self._counter}"
        scratch.mkdir()
        self.sandbox.prepare_scratch(scratch)
        km = SandboxKernelManager(
            sandbox=self.sandbox,
            scratch=str(scratch),
            transport="ipc",
            ip=str(scratch / "ipc" / "k"),
            connection_file=str(scratch / "ipc" / "kernel.json"),
            autorestart=False,
        )
        support = "/opt/classgrade" if self.sandbox.enabled else str(scratch / "support")
        run_sync(km.start_kernel)(
            env=kernel_environment(support),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        return km, scratch

    def _take_kernel(self) -> tuple[SandboxKernelManager, Path]:
        kernel = self._next
        self._next = None
        if kernel is None or not run_sync(kernel[0].is_alive)():
            if kernel is not None:
                self._dispose(*kernel)
            kernel = self._start_kernel()
        return kernel

    def _dispose(self, km: SandboxKernelManager, scratch: Path) -> None:
        km.kill_sandbox()
        try:
            run_sync(km.cleanup_resources)()
        except Exception:
            pass
        shutil.rmtree(scratch, ignore_errors=True)

    def grade(self, job: ExecJob) -> ExecResult:
        started = time.monotonic()
        km, scratch = self._take_kernel()
        # The next notebook's kernel boots while this one is graded.
        self._next = self._start_kernel()
        work = scratch / "work"
        for host_path, name in job.assignment_files:
            dest = work / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(host_path, dest)
        if self.sandbox.enabled and self.sandbox.as_root:
            for root, dirs, files in os.walk(work):
                for n in dirs + files:
                    os.chown(os.path.join(root, n), 65534, 65534)
        nb = nbformat.reads(job.notebook_json, as_version=4)
        deadline = time.monotonic() + self.limits.notebook_seconds
        executor = SandboxedExecute(
            timeout=self.limits.cell_seconds,
            call_timeout=self.limits.cell_seconds,
            rpc_dir=str(scratch / "rpc"),
            notebook_deadline=deadline,
            startup_timeout=60,
        )
        resources = {"metadata": {"path": str(work)}}
        saved_cwd = os.getcwd()
        saved_path = list(sys.path)
        watchdog = Watchdog(self.limits.notebook_seconds, km.kill_sandbox)
        try:
            os.chdir(job.trusted_dir)
            sys.path[:0] = [job.trusted_dir, *job.trusted_paths]
            with watchdog:
                executor.preprocess(nb, resources, km=km)
            if watchdog.fired:
                raise NotebookFailed("wall-clock")
        except (Exception, KernelUnavailable) as exc:
            reason = describe_execution_failure(exc, watchdog, self.limits.notebook_seconds)
            return ExecResult(job.key, False, reason=reason, seconds=time.monotonic() - started)
        finally:
            os.chdir(saved_cwd)
            sys.path[:] = saved_path
            if executor.kc is not None:
                try:
                    executor.kc.stop_channels()
                except Exception:
                    pass
            self._dispose(km, scratch)
        forbidden = list(executor.channel.forbidden) if executor.channel else []
        return ExecResult(
            job.key,
            True,
            notebook_json=nbformat.writes(nb),
            seconds=time.monotonic() - started,
            forbidden=forbidden,
        )

    def close(self) -> None:
        if self._next is not None:
            self._dispose(*self._next)
            self._next = None
        shutil.rmtree(self.base, ignore_errors=True)


_worker: Worker | None = None


def init_worker(limits: dict, sandboxed: bool) -> None:
    global _worker
    from multiprocessing.util import Finalize

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    _worker = Worker(Limits(**limits), sandboxed)
    # Pool workers leave through os._exit, which skips atexit; multiprocessing runs these.
    Finalize(_worker, _worker.close, exitpriority=10)


def run_job(job: ExecJob) -> ExecResult:
    assert _worker is not None, "init_worker was not called"
    return _worker.grade(job)
