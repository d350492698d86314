"""The code that red-team learners run in their grading kernels to carry state to a later learner.

``test_classgrade_redteam_carryover`` puts this file's text in a learner's code cell, followed by
one call: ``carryover_plant_all()`` (a planter leaves everything it can in its sandbox) or
``carryover_find_all()`` (a finder looks for all of it, and for anything else not its own). Each
attempt is printed on a line of its own, ``PLANTED <key> ok`` or ``PLANTED <key> refused
<why>``; each find as ``FOUND <key> <detail>``; the finder ends with ``FIND DONE``. A key names
one planted thing the same way on both sides (``file:/tmp/...``, ``env:...``, ``sysv:shm``...),
so that a notebook that plants and then finds in one kernel must find every key it planted.

The marker is assembled at run time: the cell's source, which IPython's history may keep, never
holds it whole, so a finder's own history is no find.
"""

from __future__ import annotations

import builtins
import ctypes
import fcntl
import hashlib
import json
import os
import platform
import random
import site
import socket
import stat
import subprocess
import sys
import time
import types
import warnings

import numpy as np

MARKER = "-".join(("c4rry0ver", "7e1f"))
"""In every name and every file the planters make: what a finder looks for."""
NAME = MARKER.replace("-", "_")
"""The marker as an identifier (attributes, modules, environment variables)."""
SEED = 7253
"""The seed planters give NumPy's and Python's global generators."""
FILELESS = ("devpts", "proc", "sysfs", "mqueue", "cgroup", "cgroup2")
"""File systems where no file can be made (a folder may still say it is writable)."""
SYSV_KEY = 0x7E1F
SYSV_CALLS = ("shm", "sem", "msg")
PRINT_PRECISION = 13  # NumPy's print precision a planter sets (the default is 8)
UMASK = 0o137  # the umask a planter sets
MPL_DPI = 7253  # the figure.dpi a planter's matplotlibrc sets
PLANT_CALL = "# planted" + "-here"  # ends a planter's cell: found in IPython's history
DAEMON_SECONDS = 300.0  # the longest a planter's detached process lives (the sandbox ends it)
READY_SECONDS = 20.0  # the longest a planter waits for its detached process to be ready

# add_key and keyctl by machine: the shim refuses both (keyrings are kept outside namespaces).
NR_ADD_KEY, NR_KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(
    platform.machine(), (-1, -1)
)
KEYRINGS = {"session": -3, "user": -4}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.getenv.restype = ctypes.c_char_p
_finds: list[str] = []  # the keys this kernel found
# What the kernel keeps open (descriptors, sockets) until it ends: kept when a later cell of the
# same notebook runs this file again.
_held: list = globals().get("_held", [])

DAEMON = """import fcntl, os, socket, sys, time
marker, lock_path, ready_path, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
lock = open(lock_path, "w")
fcntl.flock(lock, fcntl.LOCK_EX)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind("\\0" + marker + "-daemon")
server.listen(1)
held = open(lock_path + ".fd", "w")
with open(ready_path + ".part", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready_path + ".part", ready_path)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    time.sleep(1)
"""


def _say(*words: object) -> None:
    print(*words, flush=True)


def writable_mounts() -> list[str]:
    """The mount points the sandbox may write files to (``rw`` in /proc/self/mountinfo, on a
    file system that holds files: not /proc, /sys or the pseudo-terminals' devpts)."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point, options = fields[4], fields[5].split(",")
            kind = fields[fields.index("-") + 1]
            if "rw" in options and kind not in FILELESS and not point.startswith(("/proc", "/sys")):
                points.append(point.replace("\\040", " "))
    return sorted(set(points))


def _walk(mount: str):
    """``(folder, names)`` of each folder of ``mount``, not crossing into another mount."""
    try:
        device = os.stat(mount).st_dev
    except OSError:
        return
    for folder, dirs, files in os.walk(mount):
        kept = []
        for d in dirs:
            try:
                if os.lstat(os.path.join(folder, d)).st_dev == device:
                    kept.append(d)
            except OSError:
                pass
        dirs[:] = kept
        yield folder, files


def writable_folders() -> list[str]:
    """Every folder of the writable mounts this process may write to."""
    seen = set()
    for mount in writable_mounts():
        for folder, _files in _walk(mount):
            if os.access(folder, os.W_OK):
                seen.add(folder)
    return sorted(seen)


def candidate_folders() -> list[str]:
    """Folders a later kernel would read from, each tried whether or not it is writable."""
    named = [
        "/tmp",
        "/dev/shm",
        "/var/tmp",
        "/run",
        "/dev/mqueue",
        os.getcwd(),
        os.path.expanduser("~"),
        os.environ.get("IPYTHONDIR", "/tmp/ipython"),
        os.environ.get("MPLCONFIGDIR", "/tmp/mpl"),
    ]
    named += [p for p in sys.path if p and os.path.isdir(p)]
    named += [*site.getsitepackages(), site.getusersitepackages()]
    out = []
    for folder in named:
        if folder not in out:
            out.append(folder)
    return out


# -- Planting -----------------------------------------------------------------------------------


def _attempt(key: str, action) -> bool:
    try:
        detail = action()
    except Exception as exc:  # every refusal is an outcome: recorded, never raised
        _say("PLANTED", key, "refused", f"{type(exc).__name__}: {exc}".replace("\n", " "))
        return False
    _say("PLANTED", key, "ok", "" if detail is None else detail)
    return True


def _write(path: str, text: str) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _libc_call(name: str, *args):
    result = getattr(_libc, name)(*args)
    if result == -1 or (isinstance(result, int) and result < 0):
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def _syscall(number: int, *args) -> int:
    if number < 0:
        raise OSError("no such system call on this machine")
    return _libc_call("syscall", number, *args)


def _plant_files() -> None:
    writable = writable_folders()
    _say("WRITABLE", json.dumps(writable))  # each must get its file
    folders = candidate_folders() + writable
    for folder in dict.fromkeys(folders):
        path = os.path.join(folder, f".{MARKER}")
        _attempt(f"file:{path}", lambda p=path: _write(p, MARKER))
    for folder in dict.fromkeys(candidate_folders()):
        # Read by every later Python process that has the folder on its path or in site dirs.
        for name, text in (
            ("sitecustomize.py", f"import builtins\nbuiltins.{NAME}_site = {MARKER!r}\n"),
            ("usercustomize.py", f"import builtins\nbuiltins.{NAME}_user = {MARKER!r}\n"),
            (f"{NAME}.pth", f"import os; os.environ['{NAME.upper()}_PTH'] = {MARKER!r}\n"),
            (f"{NAME}.py", f"VALUE = {MARKER!r}\n"),
        ):
            path = os.path.join(folder, name)
            _attempt(f"file:{path}", lambda p=path, t=text: _write(p, t))
        # A compiled module in the folder's __pycache__ (a later import would load it).
        source = os.path.join(folder, f"{NAME}.py")
        if os.path.exists(source):
            import importlib.util
            import py_compile

            _attempt(
                "file:" + importlib.util.cache_from_source(source),
                lambda s=source: py_compile.compile(s, doraise=True) and None,
            )
    ipython = os.environ.get("IPYTHONDIR", "/tmp/ipython")
    profile = os.path.join(ipython, "profile_default")
    line = f"import builtins; builtins.{NAME}_ipython = {MARKER!r}\n"
    for path, text in (
        (os.path.join(profile, "startup", f"00-{MARKER}.py"), line),
        (os.path.join(profile, "ipython_config.py"), f"# {MARKER}\n" + line),
        (os.path.join(profile, "ipython_kernel_config.py"), f"# {MARKER}\n" + line),
    ):
        _attempt(f"file:{path}", lambda p=path, t=text: _write(p, t))
    mpl = os.environ.get("MPLCONFIGDIR", "/tmp/mpl")
    rc = os.path.join(mpl, "matplotlibrc")
    if _attempt(f"file:{rc}", lambda: _write(rc, f"figure.dpi: {MPL_DPI}\n# {MARKER}\n")):
        _say("PLANTED mplrc ok")


def _plant_module_state() -> None:
    _attempt(
        f"env:{NAME.upper()}_ENVIRON",
        lambda: os.environ.__setitem__(f"{NAME.upper()}_ENVIRON", MARKER),
    )

    def putenv() -> None:
        os.putenv(f"{NAME.upper()}_PUTENV", MARKER)
        if _libc.getenv(f"{NAME.upper()}_PUTENV".encode()) is None:
            raise OSError("putenv left no trace in the C environment")

    _attempt(f"env:{NAME.upper()}_PUTENV", putenv)
    import json as json_module

    import __main__

    for module in (np, np.random, np.linalg, builtins, json_module, os, __main__):
        _attempt(f"attr:{module.__name__}.{NAME}", lambda m=module: setattr(m, NAME, MARKER))
    _attempt(
        f"sysmodules:{NAME}",
        lambda: sys.modules.__setitem__(NAME, types.ModuleType(NAME)),
    )
    _attempt("syspath", lambda: sys.path.append(f"/tmp/{MARKER}"))
    finder_type = type(NAME, (), {"find_spec": staticmethod(lambda *args, **kwargs: None)})
    _attempt("metapath", lambda: sys.meta_path.append(finder_type()))
    _attempt("warnings", lambda: warnings.filterwarnings("ignore", message=MARKER))
    _attempt("numpy-printoptions", lambda: np.set_printoptions(precision=PRINT_PRECISION))
    _attempt("numpy-seterr", lambda: np.seterr(divide="ignore") and None)
    _attempt("umask", lambda: os.umask(UMASK) and None)
    _attempt("random:python", lambda: random.seed(SEED))
    # The legacy global generator is what a later learner's np.random calls would draw from.
    _attempt("random:numpy", lambda: np.random.seed(SEED))  # noqa: NPY002


def _plant_history() -> None:
    def flush() -> str:
        shell = get_ipython()  # type: ignore[name-defined]  # noqa: F821 (IPython's builtin)
        history = shell.history_manager
        if not history.enabled or str(history.hist_file) == ":memory:":
            raise OSError("IPython keeps no history on disk")
        history.writeout_cache()
        return str(history.hist_file)

    _attempt("history", flush)


def _plant_kernel_handles() -> None:
    def open_fd() -> None:
        path = f"/tmp/{MARKER}.fd"
        _held.append(open(path, "w"))

    _attempt(f"fd:/tmp/{MARKER}.fd", open_fd)
    _attempt(f"fd:/memfd:{MARKER}", lambda: _held.append(os.memfd_create(MARKER)) or None)

    def abstract() -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind("\0" + MARKER + "-kernel")
        server.listen(1)
        _held.append(server)

    _attempt(f"abstract:@{MARKER}-kernel", abstract)

    def sysv(kind: str) -> int:
        create = 0o1666  # IPC_CREAT | 0666
        if kind == "shm":
            return _libc_call("shmget", SYSV_KEY, 4096, create)
        if kind == "sem":
            return _libc_call("semget", SYSV_KEY, 1, create)
        return _libc_call("msgget", SYSV_KEY, create)

    for kind in SYSV_CALLS:
        _attempt(f"sysv:{kind}", lambda k=kind: sysv(k))

    def mqueue() -> int:
        _libc.mq_open.restype = ctypes.c_int
        return _libc_call("mq_open", f"/{MARKER}".encode(), os.O_CREAT | os.O_RDWR, 0o600, None)

    _attempt(f"mqueue:/{MARKER}", mqueue)
    for name, spec in KEYRINGS.items():
        _attempt(
            f"keyring:{name}",
            lambda s=spec: _syscall(NR_ADD_KEY, b"user", MARKER.encode(), b"A", 1, s),
        )
    _attempt("hostname", lambda: _libc_call("sethostname", MARKER.encode(), len(MARKER)) and None)


def _plant_daemon() -> None:
    lock = f"/tmp/{MARKER}.lock"
    ready = f"/tmp/{MARKER}.ready"

    def start() -> str:
        subprocess.run(
            [sys.executable, "-c", DAEMON, MARKER, lock, ready, str(DAEMON_SECONDS)],
            check=True,
            timeout=READY_SECONDS,
        )
        deadline = time.monotonic() + READY_SECONDS
        while not os.path.exists(ready):
            if time.monotonic() > deadline:
                raise TimeoutError("the detached process never said it was ready")
            time.sleep(0.05)
        with open(ready) as f:  # renamed into place once written
            return f.read().strip()

    if _attempt("process:daemon", start):
        _say(f"PLANTED flock:{lock} ok")
        _say(f"PLANTED abstract:@{MARKER}-daemon ok")
        _say(f"PLANTED fd:{lock}.fd ok")


def identity() -> None:
    """Who and where this kernel is, and a digest of its generators before anything drew."""
    names = {n: os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "mnt", "ipc", "net", "user")}
    about = {"uid": os.getuid(), "pid": os.getpid(), "at": time.time(), **names}
    _say("IDENTITY", json.dumps(about))
    state = np.random.get_state()  # noqa: NPY002 (the global generator learners draw from)
    digest = hashlib.sha256(np.asarray(state[1]).tobytes() + str(state[2]).encode())
    digest.update(repr(random.getstate()).encode())
    _say("GENERATORS", digest.hexdigest())


def carryover_plant_all() -> None:
    """Leave everything a later kernel could meet (only in a grading sandbox: outside one, the
    files would land in the host's folders)."""
    identity()
    if socket.gethostname() != "grading" or os.getcwd() != "/grading/work":
        _say("PLANT REFUSED: not in a grading sandbox")
        return
    _plant_files()
    _plant_history()
    _plant_kernel_handles()
    _plant_daemon()
    _plant_module_state()
    _say("PLANT DONE", time.time())


# -- Finding ------------------------------------------------------------------------------------


def _found(key: str, detail: object = "") -> None:
    _finds.append(key)
    _say("FOUND", key, str(detail).replace("\n", " ")[:300])


def _find_files() -> None:
    marker = MARKER.encode()
    seen = set()
    paths = []
    for mount in writable_mounts():
        for folder, files in _walk(mount):
            paths += [os.path.join(folder, name) for name in files]
    for folder in candidate_folders():
        try:
            paths += [os.path.join(folder, name) for name in os.listdir(folder)]
        except OSError:
            pass
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        hit = MARKER in path or NAME in path
        if not hit and stat.S_ISREG(info.st_mode):
            try:
                with open(path, "rb") as f:
                    hit = marker in f.read(1 << 20)
            except OSError:
                pass
        if hit:
            _found(f"file:{path}")
        if path.endswith(f"{NAME}.py"):
            import importlib.util

            cached = importlib.util.cache_from_source(path)
            if os.path.exists(cached):
                _found(f"file:{cached}")


def _find_module_state() -> None:
    for variable, value in os.environ.items():
        if NAME.upper() in variable or MARKER in value:
            _found(f"env:{variable}", value)
    for suffix in ("ENVIRON", "PUTENV", "PTH"):
        variable = f"{NAME.upper()}_{suffix}"
        if _libc.getenv(variable.encode()) is not None and variable not in os.environ:
            _found(f"env:{variable}", "in the C environment")
    for module_name, module in list(sys.modules.items()):
        if NAME in module_name:
            _found(f"sysmodules:{module_name}")
        try:
            names = list(vars(module))
        except TypeError:
            continue
        for name in names:
            if NAME in name:
                _found(f"attr:{module_name}.{name}")
    if any(MARKER in str(entry) for entry in sys.path):
        _found("syspath", sys.path)
    if any(NAME in type(entry).__name__ for entry in sys.meta_path):
        _found("metapath", sys.meta_path)
    if any(MARKER in str(getattr(f[1], "pattern", f[1])) for f in warnings.filters):
        _found("warnings")
    if np.get_printoptions()["precision"] == PRINT_PRECISION:
        _found("numpy-printoptions")
    if np.geterr()["divide"] == "ignore":
        _found("numpy-seterr")
    mask = os.umask(0o022)
    os.umask(mask)
    if mask == UMASK:
        _found("umask", oct(mask))
    if random.getstate() == random.Random(SEED).getstate():
        _found("random:python")
    state = np.random.get_state()  # noqa: NPY002 (the global generator learners draw from)
    seeded = np.random.RandomState(SEED).get_state()
    if np.array_equal(state[1], seeded[1]) and state[2] == seeded[2]:
        _found("random:numpy")
    try:
        import matplotlib

        if matplotlib.rc_params(fail_on_error=False)["figure.dpi"] == MPL_DPI:
            _found("mplrc", matplotlib.matplotlib_fname())
    except Exception as exc:
        _say("CHECK mplrc failed", type(exc).__name__, exc)


def _find_history() -> None:
    try:
        history = get_ipython().history_manager  # type: ignore[name-defined]  # noqa: F821
        if not history.enabled:
            _say("CHECK history off: IPython keeps none")
            return
        history.writeout_cache()
        rows = history.db.execute("SELECT session, source_raw FROM history").fetchall()
    except Exception as exc:
        _say("CHECK history failed", type(exc).__name__, exc)
        return
    for session, source in rows:
        if PLANT_CALL in source:
            _found("history", f"session {session}")


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/status") as f:
                pid = next(int(line.split()[1]) for line in f if line.startswith("PPid:"))
        except (OSError, StopIteration):
            break
    return pids


def _find_processes() -> None:
    mine = _ancestors()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if MARKER in command:
            _found("process:daemon", f"{pid} {command[:120]}")
        elif pid not in mine and pid != os.getpid():
            _found(f"process-other:{pid}", command[:200])
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if MARKER.encode() in f.read():
                    _found(f"process-env:{pid}")
        except OSError:
            pass
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if MARKER in target:
                _found(f"fd:{target.removesuffix(' (deleted)')}", pid)


def _find_kernel_handles() -> None:
    for suffix in ("kernel", "daemon"):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.bind("\0" + MARKER + "-" + suffix)
        except OSError as exc:
            _found(f"abstract:@{MARKER}-{suffix}", exc)
        finally:
            probe.close()
    try:
        with open("/proc/net/unix") as f:
            for line in f:
                if MARKER in line:
                    _found("unix-socket", line.split()[-1])
    except OSError:
        pass
    for kind in SYSV_CALLS:
        get = getattr(_libc, f"{kind}get")
        found = get(SYSV_KEY, 0, 0) if kind != "msg" else get(SYSV_KEY, 0)
        if found >= 0:
            _found(f"sysv:{kind}", found)
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            rows = []
        for row in rows:
            _found(f"sysv-other:{kind}", row)
    _libc.mq_open.restype = ctypes.c_int
    queue = _libc.mq_open(f"/{MARKER}".encode(), os.O_RDONLY)
    if queue >= 0:
        _found(f"mqueue:/{MARKER}")
        _libc.mq_close(queue)
    lock = f"/tmp/{MARKER}.lock"
    if os.path.exists(lock):
        with open(lock) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                _found(f"flock:{lock}", exc)
    for name, spec in KEYRINGS.items():
        try:
            _syscall(NR_KEYCTL, 10, spec, b"user", MARKER.encode(), 0)  # KEYCTL_SEARCH
        except OSError:
            continue
        _found(f"keyring:{name}")
    if MARKER in socket.gethostname():
        _found("hostname", socket.gethostname())


def carryover_find_all() -> bool:
    """Look for everything a planter leaves, and anything else not this kernel's own; print
    each find. Whether anything was found."""
    identity()
    _find_files()
    _find_module_state()
    _find_history()
    _find_processes()
    _find_kernel_handles()
    listing()
    state()
    _say("FIND DONE")
    return bool(_finds)


def listing() -> None:
    """Every file and folder of the writable mounts, printed (the test compares learners')."""
    paths = []
    for mount in writable_mounts():
        for folder, files in _walk(mount):
            paths += [folder] + [os.path.join(folder, name) for name in files]
    _say("LISTING", json.dumps(sorted(paths)))


def state() -> None:
    """The kernel's state that no learner's code set, printed (the test compares finders'):
    every finder runs the same cells, so a fresh kernel's state is the same in each."""
    import __main__

    _say(
        "STATE",
        json.dumps(
            {
                "environ": dict(os.environ),
                "modules": sorted(sys.modules),
                "path": sys.path,
                "meta_path": [type(entry).__qualname__ for entry in sys.meta_path],
                "builtins": sorted(vars(builtins)),
                "main": sorted(vars(__main__)),
                "numpy_print": repr(np.get_printoptions()),
                "numpy_errors": np.geterr(),
                "cwd": os.getcwd(),
                "hostname": socket.gethostname(),
                "warnings": len(warnings.filters),
            }
        ),
    )
