"""The sandbox each learner's kernel runs in: bubblewrap plus resource limits.

The kernel sees a read-only Python environment and system directories, a size-limited working
directory holding the assignment's files, a size-limited /tmp, the folder of its connection
sockets, and nothing else: no course directory (so no ``solutions/`` and no gradebook), no other
learner's files, no home directory, no network. It runs in its own PID namespace, so the end of
the sandbox's first process (``_shim.py``) ends every process the notebook started, including
detached ones; the shim ends when the grading process that started it ends (its lifeline).

The kernel can import NumPy, SciPy, Matplotlib, the standard library and what the kernel itself
needs, and nothing else: of every site-packages folder, the sandbox sees only what those
distributions installed (an allow-list computed with ``importlib.metadata``), so TensorFlow,
Keras or any other package is absent from its disk for every process in it.

When classgrade runs as root, bubblewrap runs in privileged mode and the shim drops to a uid of
the sandbox's own, leased machine-wide (``lease_uid``): no two sandboxes on the machine share a
uid while anything of either exists, whatever run or course they belong to, so one notebook's
processes never count against another's RLIMIT_NPROC, and root-owned files are not readable
through ownership. As an ordinary user, bubblewrap uses a user namespace of its own per notebook,
which gives the same separation of process counts; the sandboxed code then runs as the
instructor's uid, mapped. In both, the shim refuses the keyring system calls (keyrings are kept
per uid, outside every namespace), and IPC objects and temporary folders are the sandbox's own.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import glob
import importlib.metadata
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from traitlets import Any, List, Type, Unicode

from .channel import PROBE_MODULE

IMPORT_MESSAGES = "_classgrade_imports"
"""The module, put into the sandbox's site-packages, that names what a failed import lacks."""
SUPPORT_FILES = {
    "_shim.py": Path(__file__).with_name("_shim.py"),
    f"{PROBE_MODULE}.py": Path(__file__).with_name("_probe.py"),
    "_classgrade_codec.py": Path(__file__).with_name("codec.py"),
    "_classgrade_channel.py": Path(__file__).with_name("channel.py"),
    f"{IMPORT_MESSAGES}.py": Path(__file__).with_name("_imports.py"),
}
"""Files copied into the sandbox's support folder, by the name the sandbox imports them as."""
SUPPORT_DIR_IN_SANDBOX = "/opt/classgrade"
WORKDIR_IN_SANDBOX = "/grading/work"
GRADING_DISTRIBUTIONS = ("numpy", "scipy", "matplotlib", "ipykernel")
"""What the grading kernel can import besides the standard library: these distributions and
everything they require, but for NOT_SHOWN."""
NOT_SHOWN = frozenset({"debugpy"})
"""Required by a grading distribution, yet not shown to the kernel: ipykernel's debugger (no one
debugs a grading kernel; without it ipykernel starts 0.05 s sooner and opens no debug port)."""
SANDBOX_UID_BASE = 1_900_000_000
"""As root, each sandbox runs as a uid from SANDBOX_UID_BASE on, leased (no such user exists)."""
SANDBOX_UID_SPAN = 100_000_000
UID_LEASES = Path("/run/classgrade/uids")
"""As root: one lock file per sandbox uid, locked while the uid is leased (see ``lease_uid``)."""
NOBODY = 65534
"""The uid and gid of ``nobody`` and ``nogroup`` in the sandbox's /etc/passwd and /etc/group."""
MB = 1024 * 1024
KERNEL_FOLDERS = {"HOME": "/tmp/home", "IPYTHONDIR": "/tmp/ipython", "MPLCONFIGDIR": "/tmp/mpl"}
"""The kernel's home and configuration folders (environment variable -> folder in /tmp), made
by the shim once the sandbox's /tmp exists."""

QUIET_TENSORFLOW = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
"""TensorFlow's start-up noise off (C++ logging, the oneDNN notice): in kernels and in jobs."""

# /etc files a Python kernel needs; /etc as a whole would expose host configuration.
_ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "localtime",
    "nsswitch.conf",
    "hosts",
    "alternatives",
    "fonts",
    "ssl",
    "mime.types",
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create a sandbox on this machine."""


@dataclass(frozen=True)
class Limits:
    """Per-notebook limits.

    ``memory_mb`` and ``processes`` bound the notebook as a whole where the machine lets
    classgrade make a cgroup per sandbox (see ``cgroups``), and each process otherwise
    (RLIMIT_AS; RLIMIT_NPROC, counted per sandbox). ``cpu_seconds`` is per process;
    ``notebook_seconds`` is the wall-clock budget of everything done for the notebook, the
    grader's side included; ``work_size_mb`` and ``tmp_size_mb`` size the two writable folders.
    """

    memory_mb: int = 4096
    cpu_seconds: int = 120
    processes: int = 256
    notebook_seconds: int = 180
    cell_seconds: int = 30
    file_size_mb: int = 64
    tmp_size_mb: int = 256
    work_size_mb: int = 256
    open_files: int = 1024

    @property
    def memory_bytes(self) -> int:
        """``memory_mb`` in bytes: the cgroup's memory limit, or each process's RLIMIT_AS."""
        return self.memory_mb * MB

    def as_shim_json(
        self,
        uid: int | None,
        lifeline_fd: int | None = None,
        channel_fd: int | None = None,
        cwd: str = WORKDIR_IN_SANDBOX,
        own_pid_namespace: bool = True,
    ) -> str:
        """The limits and options as the shim's JSON."""
        return json.dumps(
            {
                "address_space": self.memory_bytes,
                "cpu_seconds": self.cpu_seconds,
                "processes": self.processes,
                "file_size": self.file_size_mb * MB,
                "open_files": self.open_files,
                "uid": uid,
                "gid": uid,
                "cwd": cwd,
                "make_dirs": list(KERNEL_FOLDERS.values()),
                "lifeline_fd": lifeline_fd,
                "channel_fd": channel_fd,
                "own_pid_namespace": own_pid_namespace,
            }
        )

    def to_dict(self) -> dict:
        """The limits as a plain dict."""
        return asdict(self)


def find_bwrap() -> str | None:
    """The path of bubblewrap; CLASSGRADE_BWRAP overrides it (an empty or missing path: none)."""
    override = os.environ.get("CLASSGRADE_BWRAP")
    if override is not None:
        return override if override and os.access(override, os.X_OK) else None
    return shutil.which("bwrap") or (
        "/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None
    )


def kernel_environment(support_dir: str = SUPPORT_DIR_IN_SANDBOX) -> dict[str, str]:
    """The whole environment of a grading kernel: nothing of the instructor's leaks in."""
    venv_bin = str(Path(sys.prefix) / "bin")
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        **KERNEL_FOLDERS,
        "MPLBACKEND": "Agg",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        **QUIET_TENSORFLOW,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NBGRADER_EXECUTION": "autograde",
        "PYTHONPATH": support_dir,
    }


def _python_dirs() -> list[str]:
    """Directories that hold the interpreter and the installed packages."""
    candidates = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.realpath(sys.base_prefix),
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    }
    dirs = sorted(os.path.realpath(d) for d in candidates if d and os.path.isdir(d))
    # Drop directories nested in another one of the list.
    kept: list[str] = []
    for d in dirs:
        if not any(d == k or d.startswith(k + os.sep) for k in kept):
            kept.append(d)
    return kept


COURSE_PACKAGES = ("rnn_ref", "gradecheck", "classgrade")
"""Packages of the course that hold reference code and must stay out of learners' reach."""


def _course_package_dirs() -> list[str]:
    """Installed copies of the course packages inside the directories bound into the sandbox.

    An editable install points outside them (to the checkout, which is not bound); a regular
    install puts the packages into site-packages, where an empty tmpfs is laid over each.
    """
    bound = _python_dirs()
    found = []
    for name in COURSE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            real = os.path.realpath(location)
            if any(real == d or real.startswith(d + os.sep) for d in bound):
                found.append(real)
    return found


def sandbox_uid(index: int) -> int:
    """Where the search for a free uid starts for notebook ``index`` of a run (a hint only)."""
    return SANDBOX_UID_BASE + index % SANDBOX_UID_SPAN


@functools.lru_cache(maxsize=1)
def grading_distributions() -> frozenset[str]:
    """The normalised names of GRADING_DISTRIBUTIONS and of all they require, transitively.

    Requirements whose markers hold for this interpreter, no extras.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: set[str] = set()
    todo = list(GRADING_DISTRIBUTIONS)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found or name in NOT_SHOWN:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional requirement that is not installed
        found.add(name)
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return frozenset(found)


@functools.cache
def visible_entries(site_dir: str) -> tuple[str, ...]:
    """What the sandbox shows of the site-packages folder ``site_dir``.

    The top-level entries the grading distributions installed there (packages, modules, their
    metadata folders, bundled libraries), and single modules' compiled files in
    ``__pycache__/``.
    """
    entries: set[str] = set()
    for name in sorted(grading_distributions()):
        for dist in importlib.metadata.distributions(name=name, path=[site_dir]):
            # RECORD read as text: Distribution.files makes a path object per file (15 000
            # of them, half a second), and the first part of each path is all that is needed.
            record = dist.read_text("RECORD")
            if record is not None:
                paths = [row[0] for row in csv.reader(record.splitlines()) if row]
            else:
                paths = [str(file) for file in dist.files or ()]
            for path in paths:
                parts = path.split("/")
                if not parts[0] or parts[0] == "..":
                    continue  # scripts and data installed outside site-packages
                if parts[0] == "__pycache__":
                    if len(parts) == 2:
                        entries.add(f"__pycache__/{parts[1]}")
                else:
                    entries.add(parts[0])
    return tuple(sorted(e for e in entries if os.path.lexists(os.path.join(site_dir, e))))


def _site_dirs() -> tuple[list[str], list[str]]:
    """A pair: the kernel's site-packages folders, and every other site- or dist-packages folder.

    The other folders are those inside what the sandbox binds. The first show only the grading
    distributions, the others nothing.
    """
    own = {
        os.path.realpath(p)
        for p in (*sys.path, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
        if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p)
    }
    roots = ["/usr", *_python_dirs()]
    patterns = (
        "lib/python3*/site-packages",
        "lib/python3*/dist-packages",
        "lib/python3/dist-packages",
        "lib64/python3*/site-packages",
        "local/lib/python3*/site-packages",
        "local/lib/python3*/dist-packages",
    )
    others = set()
    for root in roots:
        for pattern in patterns:
            for found in glob.glob(os.path.join(root, pattern)):
                real = os.path.realpath(found)
                if os.path.isdir(real) and any(_inside(real, r) for r in roots):
                    others.add(real)
    return sorted(own), sorted(others - own)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass
class UidLease:
    """A sandbox uid held by this process: an exclusive lock on its file in UID_LEASES."""

    uid: int
    fd: int | None

    def release(self) -> None:
        """Give the uid back: close the lease's file."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _uids_in_use() -> set[int]:
    used: set[int] = set()
    for process in psutil.process_iter(["uids"]):
        uids = process.info["uids"]
        if uids:
            used.update(uids)
    return used


def _lease_folder() -> int:
    """The leases' folder, opened (root's own, nobody else may write in it)."""
    for folder, mode in ((UID_LEASES.parent, 0o755), (UID_LEASES, 0o700)):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, mode)
    fd = os.open(UID_LEASES, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    info = os.fstat(fd)
    if info.st_uid != 0 or info.st_mode & 0o022:
        os.close(fd)
        raise SandboxUnavailable(f"{UID_LEASES} must be root's own and writable by root only")
    return fd


def lease_uid(first: int = SANDBOX_UID_BASE) -> UidLease:
    """A uid for a sandbox that no other sandbox on this machine holds and no process runs as.

    The lease is a lock on the uid's file in UID_LEASES (a folder of the machine, not of a run
    or a course), held by the grading process of the notebook until it ends: it has ended the
    sandbox by then. A uid whose lock is free but which still has processes (a sandbox still
    ending; a learner's process that outlived a grading process that was killed) is passed
    over. The search starts at ``first``.
    """
    folder = _lease_folder()
    try:
        for k in range(SANDBOX_UID_SPAN):
            uid = SANDBOX_UID_BASE + (first - SANDBOX_UID_BASE + k) % SANDBOX_UID_SPAN
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(str(uid), flags, 0o600, dir_fd=folder)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if uid in _uids_in_use():  # read with the lock held: no sandbox can take it now
                os.close(fd)
                continue
            return UidLease(uid, fd)
    finally:
        os.close(folder)
    raise SandboxUnavailable("every sandbox uid is in use")


@dataclass
class Sandbox:
    """Builds the command that starts a kernel in a fresh sandbox around ``scratch``.

    ``scratch`` (on the host) holds the support files and, in ``ipc/``, the connection file and
    the kernel's sockets, bound at the same path inside the sandbox so that paths mean the same
    on both sides. The working directory is a tmpfs inside the sandbox: nothing the notebook
    writes there reaches the host's disk. As root, the sandbox's own uid is leased when first
    needed, searching from ``uid``, and held until ``release`` or the end of this process.
    """

    limits: Limits
    enabled: bool = True
    bwrap: str | None = None
    uid: int = SANDBOX_UID_BASE
    lease: UidLease | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.enabled and self.bwrap is None:
            self.bwrap = find_bwrap()
            if self.bwrap is None:
                raise SandboxUnavailable(
                    "bubblewrap (bwrap) is not installed. Install it (Debian/Ubuntu: "
                    "apt-get install bubblewrap) or pass --no-sandbox to grade without "
                    "isolation (learners' code then runs with your rights)."
                )

    @property
    def as_root(self) -> bool:
        """Whether the grader runs as root."""
        return os.geteuid() == 0

    @property
    def drops_to_uid(self) -> int | None:
        """The uid the sandbox drops to (leased on first use), or None if it drops to none."""
        if not (self.enabled and self.as_root):
            return None
        if self.lease is None:
            self.lease = lease_uid(self.uid)
        return self.lease.uid

    def release(self) -> None:
        """Give the uid back (only once nothing of the sandbox runs any more)."""
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    def prepare_scratch(self, scratch: Path) -> None:
        """Create the scratch layout; when root, hand the sockets' folder to the sandbox uid."""
        support = scratch / "support"
        for sub in ("ipc", "support"):
            (scratch / sub).mkdir(parents=True, exist_ok=True)
        for name, source in SUPPORT_FILES.items():
            shutil.copyfile(source, support / name)
        (support / f"{IMPORT_MESSAGES}.pth").write_text(f"import {IMPORT_MESSAGES}\n")
        uid = self.drops_to_uid
        shown = uid if uid is not None else os.getuid()
        (support / "passwd").write_text(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"learner:x:{shown}:{shown}:learner:{KERNEL_FOLDERS['HOME']}:/usr/sbin/nologin\n"
            f"nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (support / "group").write_text(f"root:x:0:\nlearner:x:{shown}:\nnogroup:x:{NOBODY}:\n")
        for path in (scratch, support, *support.iterdir()):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if uid is not None:
            os.chown(scratch / "ipc", uid, uid)
            os.chmod(scratch / "ipc", 0o700)

    def lock_scratch(self, scratch: Path) -> None:
        """Once the kernel has made its sockets: nothing more can be created or grown there.

        Only as root, where the sandbox's uid is not the owner of the folder; in a user
        namespace the sandboxed code is the folder's owner (a limit the class-grading guide
        states), and RLIMIT_FSIZE bounds each file it could write there.
        """
        if self.drops_to_uid is None:
            return
        ipc = scratch / "ipc"
        for entry in os.scandir(ipc):
            if entry.is_file(follow_symlinks=False):
                os.chown(entry.path, 0, 0, follow_symlinks=False)
        os.chown(ipc, 0, 0)
        os.chmod(ipc, 0o755)

    def command(
        self,
        scratch: Path,
        kernel_argv: list[str],
        files: Sequence[tuple[str, str]] = (),
        lifeline_fd: int | None = None,
        channel_fd: int | None = None,
    ) -> list[str]:
        """The sandbox's command line; ``files`` are (host path, name in the working dir)."""
        if not self.enabled:
            # No isolation: a plain working folder on the host with copies of the files.
            work = scratch / "work"
            work.mkdir(exist_ok=True)
            for host_path, name in files:
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(host_path, work / name)
            shim = str(scratch / "support" / "_shim.py")
            shim_json = self.limits.as_shim_json(
                None, lifeline_fd, channel_fd, cwd=str(work), own_pid_namespace=False
            )
            return [sys.executable, "-I", shim, shim_json, "--", *kernel_argv]
        shim_json = self.limits.as_shim_json(self.drops_to_uid, lifeline_fd, channel_fd)
        if self.bwrap is None:  # found when the sandbox was made, or that raised
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
        argv = [
            self.bwrap,
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "grading",
        ]
        if self.as_root:
            argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            argv += ["--unshare-user"]
        for top in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        for name in _ETC_FILES:
            path = f"/etc/{name}"
            if os.path.exists(path):
                argv += ["--ro-bind", path, path]
        for name in ("passwd", "group"):
            argv += ["--ro-bind", str(scratch / "support" / name), f"/etc/{name}"]
        made: set[str] = set()

        def parents(path: str) -> list[str]:
            # bubblewrap makes missing parent directories 0700: the dropped uid could not
            # traverse them. Only the parents are created, with nothing else in them.
            out = []
            for parent in reversed(Path(path).parents):
                p = str(parent)
                if p not in ("/", "/tmp") and p not in made:
                    out += ["--perms", "0755", "--dir", p]
                    made.add(p)
            return out

        # The private /tmp comes before the Python environment, which may itself live under
        # /tmp (a checkout there with its .venv): a later tmpfs would hide it.
        argv += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--size",
            str(self.limits.tmp_size_mb * MB),
            "--tmpfs",
            "/tmp",
            "--perms",
            "0755",
            "--dir",
            str(Path(WORKDIR_IN_SANDBOX).parent),
            "--perms",
            "1777",
            "--size",
            str(self.limits.work_size_mb * MB),
            "--tmpfs",
            WORKDIR_IN_SANDBOX,
        ]
        made_in_work: set[str] = set()
        for host_path, name in files:
            dest = Path(WORKDIR_IN_SANDBOX) / name
            for parent in reversed(dest.parents):
                if (
                    str(parent).startswith(WORKDIR_IN_SANDBOX + "/")
                    and str(parent) not in made_in_work
                ):
                    argv += ["--perms", "0755", "--dir", str(parent)]
                    made_in_work.add(str(parent))
            argv += ["--ro-bind", host_path, str(dest)]
        for d in _python_dirs():
            if not d.startswith("/usr/"):
                argv += [*parents(d), "--ro-bind", d, d]
        # Of each site-packages folder, only what the grading distributions installed: an
        # empty read-only tmpfs over the folder, their entries bound back in one by one. What
        # no process of the sandbox can see, none can import, copy or load by path.
        own, others = _site_dirs()
        for site_dir in others:
            argv += ["--perms", "0755", "--tmpfs", site_dir, "--remount-ro", site_dir]
        support = scratch / "support"
        for site_dir in own:
            argv += ["--perms", "0755", "--tmpfs", site_dir]
            entries = visible_entries(site_dir)
            if any(e.startswith("__pycache__/") for e in entries):
                argv += ["--perms", "0755", "--dir", f"{site_dir}/__pycache__"]
            for entry in entries:
                argv += ["--ro-bind", f"{site_dir}/{entry}", f"{site_dir}/{entry}"]
            for suffix in (".py", ".pth"):
                name = IMPORT_MESSAGES + suffix
                argv += ["--ro-bind", str(support / name), f"{site_dir}/{name}"]
            argv += ["--remount-ro", site_dir]
        # The course's own packages (the reference solutions, the hidden tests' helpers, this
        # grader) must not be importable by learners' code, however they were installed.
        masked = own + others
        for hidden in _course_package_dirs():
            if not any(_inside(hidden, m) for m in masked):
                argv += ["--tmpfs", hidden]
        argv += [
            *parents(str(scratch)),
            "--bind",
            str(scratch),
            str(scratch),
            *parents(SUPPORT_DIR_IN_SANDBOX),
            "--ro-bind",
            str(scratch / "support"),
            SUPPORT_DIR_IN_SANDBOX,
            "--remount-ro",
            str(scratch),
        ]
        # The scratch root is read-only; the sockets' folder stays writable until locked.
        argv += ["--bind", str(scratch / "ipc"), str(scratch / "ipc")]
        argv += ["--chdir", "/", "--"]
        argv += [
            sys.executable,
            "-I",
            f"{SUPPORT_DIR_IN_SANDBOX}/_shim.py",
            shim_json,
            "--",
            *kernel_argv,
        ]
        return argv


def kernel_argv() -> list[str]:
    """The command line that starts the grading kernel."""
    # -P: the working directory is not put first on sys.path (no module shadowing from it).
    return [
        sys.executable,
        "-P",
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        "--HistoryManager.enabled=False",
        "--HistoryManager.hist_file=:memory:",
        "--IPKernelApp.log_level=ERROR",
    ]


class SandboxKernelClient(AsyncKernelClient):
    """The client of a sandboxed kernel: ready once it answered, without a 0.2 s idle wait."""

    IOPUB_PROBE_SECONDS = 0.2
    """How long the IOPub channel may take to show the ``kernel_info`` request's status."""

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        """Wait for the kernel's ``kernel_info_reply`` with IOPub connected, as jupyter_client.

        jupyter_client then reads IOPub until it stays quiet for 0.2 s, on every kernel start.
        Here what IOPub already holds is drained and no more: a message of the start that comes
        later has no cell for a parent, and nbclient skips messages of other parents.
        """
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                msg = await self.shell_channel.get_msg(timeout=1)
            except queue.Empty:
                pass
            else:
                if msg["msg_type"] == "kernel_info_reply":
                    # The request's status on IOPub proves it connected (else ask again).
                    try:
                        await self.iopub_channel.get_msg(timeout=self.IOPUB_PROBE_SECONDS)
                    except queue.Empty:
                        pass
                    else:
                        self._handle_kernel_info_reply(msg)
                        break
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
        while True:
            try:
                await self.iopub_channel.get_msg(timeout=0)
            except queue.Empty:
                return


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel is started inside a fresh sandbox.

    The kernel talks over the ipc transport (Unix sockets in the scratch directory): TCP on
    loopback would not cross the sandbox's network namespace. Interrupts are sent as messages
    because the kernel sits in its own session, out of reach of signals to our process group.
    """

    sandbox = Any()
    scratch = Unicode()
    files: List[list[str]] = List()  # (host path, name in the working dir)
    lifeline_fd = Any(None)
    channel_fd = Any(None)
    argv_prefix: List[str] = List()  # e.g. entering the sandbox's cgroup before bubblewrap starts
    client_factory = Type(SandboxKernelClient, klass=AsyncKernelClient)  # what client() makes

    @property
    def kernel_spec(self) -> KernelSpec:
        """The kernel spec whose command starts the kernel inside the sandbox."""
        if self._kernel_spec is None:
            argv = self.argv_prefix + self.sandbox.command(
                Path(self.scratch),
                kernel_argv(),
                files=self.files,
                lifeline_fd=self.lifeline_fd,
                channel_fd=self.channel_fd,
            )
            self._kernel_spec = KernelSpec(
                argv=argv,
                display_name="Python 3 (classgrade sandbox)",
                language="python",
                interrupt_mode="message",
                env={},
                resource_dir=str(self.scratch),
            )
        return self._kernel_spec

    def write_connection_file(self, **kwargs: object) -> None:
        """Write the connection file, owned by the sandbox's uid if it drops to one."""
        super().write_connection_file(**kwargs)
        # The file holds the session key; only the sandbox's uid needs to read it.
        uid = self.sandbox.drops_to_uid
        if uid is not None:
            os.chown(self.connection_file, uid, uid)

    def kill_sandbox(self) -> None:
        """Kill every process of this kernel's sandbox, whatever state it is in.

        Wait until none is left (the sandbox's uid may then go to another sandbox).
        """
        process = getattr(self.provisioner, "process", None) if self.provisioner else None
        if process is None:
            return
        kill_descendants(process.pid)
        # bubblewrap's first process ends once the sandbox's PID namespace is empty (the
        # kernel ends all of it when its init dies): its end is the end of the sandbox.
        try:
            process.wait(timeout=5)
        except Exception:
            kill_tree(process.pid)
            with contextlib.suppress(Exception):
                process.wait(timeout=5)


def kill_descendants(pid: int) -> None:
    """SIGKILL every descendant of a process (not the process itself).

    Killing bubblewrap's init (PID 1 of the sandbox's namespace) makes the kernel kill every
    process in it, so detached processes (``start_new_session=True``, double forks) end too.
    """
    try:
        tree = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for process in tree:
        with contextlib.suppress(psutil.Error):
            process.kill()


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants."""
    kill_descendants(pid)
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).kill()


def self_test(sandbox: Sandbox, timeout: float = 30.0) -> None:
    """Start a process in the sandbox and check what it can see; raise SandboxUnavailable."""
    if not sandbox.enabled:
        return
    try:
        _self_test(sandbox, timeout)
    finally:
        sandbox.release()  # the test's processes have all ended


def _self_test(sandbox: Sandbox, timeout: float) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="classgrade-selftest-") as tmp:
        scratch = Path(tmp)
        sandbox.prepare_scratch(scratch)
        probe = (
            "import json, os, socket, sys\n"
            "s = socket.socket(); s.settimeout(1)\n"
            "try:\n"
            "    s.connect(('1.1.1.1', 53)); net = 'up'\n"
            "except OSError:\n"
            "    net = 'down'\n"
            "home = sys.argv[1]\n"
            "seen = sorted(os.listdir(home)) if os.path.isdir(home) else []\n"
            "sites = {d: sorted(os.listdir(d)) for d in json.loads(sys.argv[3])}\n"
            "print(json.dumps({'net': net, 'uid': os.getuid(), 'home': seen,\n"
            "                  'course': os.path.exists(sys.argv[2]), 'sites': sites}))\n"
        )
        home = str(Path.home())
        course_file = str(Path.cwd() / "nbgrader_config.py")
        own = _site_dirs()[0]
        argv = [sys.executable, "-c", probe, home, course_file, json.dumps(own)]
        cmd = sandbox.command(scratch, argv)
        try:
            out = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=kernel_environment(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap could not start a sandbox: {exc}") from exc
        if out.returncode != 0:
            raise SandboxUnavailable(
                "bubblewrap could not start a sandbox on this machine "
                f"(exit {out.returncode}): {out.stderr.strip()[-500:]}"
            )
        try:
            seen = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise SandboxUnavailable(f"the sandbox self-test printed {out.stdout!r}") from exc
        # Only the path down to the Python installation may show in the home directory.
        allowed_home = {
            Path(d).relative_to(home).parts[0]
            for d in _python_dirs()
            if d.startswith(home.rstrip("/") + "/")
        }
        problems = []
        if seen["net"] != "down":
            problems.append("the network is reachable")
        if set(seen["home"]) - allowed_home:
            problems.append("the home directory is visible")
        if seen["course"]:
            problems.append("the course directory is visible")
        if sandbox.as_root and seen["uid"] == 0:
            problems.append("the kernel still runs as root")
        messages = {f"{IMPORT_MESSAGES}.py", f"{IMPORT_MESSAGES}.pth"}
        for site_dir in own:
            shown = {e.split("/", 1)[0] for e in visible_entries(site_dir)} | messages
            if set(seen["sites"].get(site_dir, ())) != shown:
                problems.append(f"{site_dir} shows more than the grading packages")
        if problems:
            raise SandboxUnavailable("the sandbox self-test failed: " + "; ".join(problems))


def _warm_up() -> None:
    """Compute the allow-list once per process, at import.

    The grading run's fork server imports this module, so every notebook's job it forks
    finds it ready.
    """
    for site_dir in _site_dirs()[0]:
        visible_entries(site_dir)


_warm_up()
