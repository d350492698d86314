"""The first process the grading sandbox runs (under bubblewrap's own init).

It applies the resource limits, drops root privileges when the sandbox was entered as root,
and then stays alive as the parent of the kernel: ipykernel shuts itself down when its parent
is PID 1, which is what a process started directly under bubblewrap's PID namespace would see.

Before the kernel starts, it refuses the keyring system calls to the whole sandbox (a seccomp
filter, inherited by every process and kept across exec): the kernel keeps keyrings per uid,
outside every namespace bubblewrap makes, so a key one notebook left would be read by a later
one of the same uid (or, in a user namespace, by any sandbox of the same instructor).

It also holds the sandbox's lifeline: the read end of a pipe whose write end only the grading
process holds. When that process ends, however it ends (SIGKILL included), the pipe reports
end-of-file and the shim kills every other process it can signal in the sandbox's PID namespace
(all of the notebook's, detached ones included), then exits; the kernel itself also has a
parent-death signal tied to the shim. bubblewrap's own init (PID 1 of the namespace) ends when
the shim has ended.

The lifeline may end before the shim has started its kernel (the grading process is killed
while bubblewrap starts): the shim then races its own start. Two rules close that race. The
watcher and the fork take one lock, so no kernel is forked after the watcher's kill(-1), which
would miss it. And the kernel, once it has asked for its parent-death signal, checks that its
parent is still the shim: a signal asked for after the parent ended never comes (the kernel
would have been re-parented to the namespace's init, which would then wait for it forever).

Usage (inside the sandbox): python -I _shim.py LIMITS_JSON -- KERNEL_COMMAND...
This file is copied into the sandbox on its own; it must not import anything from classgrade.
"""

import ctypes
import json
import os
import resource
import signal
import struct
import sys
import threading
from types import FrameType

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
# Machine -> (its audit architecture, add_key, request_key, keyctl).
_KEYRING_CALLS = {
    "x86_64": (0xC000003E, 248, 249, 250),
    "aarch64": (0xC00000B7, 217, 218, 219),
}


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("classgrade sandbox: could not drop root privileges")


def _apply_limits(limits: dict) -> None:
    names = {
        "address_space": resource.RLIMIT_AS,
        "cpu_seconds": resource.RLIMIT_CPU,
        "processes": resource.RLIMIT_NPROC,
        "file_size": resource.RLIMIT_FSIZE,
        "open_files": resource.RLIMIT_NOFILE,
    }
    for key, which in names.items():
        value = limits.get(key)
        if value:
            resource.setrlimit(which, (int(value), int(value)))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _keyring_filter(machine: str) -> bytes:
    """A classic BPF program for seccomp.

    The keyring calls and any other architecture's system calls (x32, i386 on x86_64) fail
    with EPERM; everything else is allowed. Eight instructions, written out here: the
    sandbox's Python has no seccomp library.
    """
    arch, *calls = _KEYRING_CALLS[machine]
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, ...|JGE|K, BPF_RET
    deny = _SECCOMP_RET_ERRNO | 1  # EPERM
    program = [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, 6, arch),  # another architecture: deny
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jge, 4, 0, 0x40000000),  # the x32 ABI's numbers: deny
        (jeq, 3, 0, calls[0]),
        (jeq, 2, 0, calls[1]),
        (jeq, 1, 0, calls[2]),
        (ret, 0, 0, _SECCOMP_RET_ALLOW),
        (ret, 0, 0, deny),
    ]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def _refuse_keyrings(libc: ctypes.CDLL) -> None:
    machine = os.uname().machine
    if machine not in _KEYRING_CALLS:
        raise SystemExit(f"classgrade sandbox: no keyring filter for {machine} machines")
    code = _keyring_filter(machine)
    buffer = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    program = SockFprog(len(code) // 8, ctypes.addressof(buffer))
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        error = ctypes.get_errno()
        raise SystemExit(f"classgrade sandbox: no seccomp filter: {os.strerror(error)}")


_ending = threading.Lock()
"""Taken by the main thread around its fork, and for good by the lifeline's watcher before it
ends the sandbox: a kernel is either forked before the watcher's kill(-1), which reaches it,
or never forked."""


def die_with(parent: int, libc: ctypes.CDLL) -> None:
    """Ask for SIGKILL when ``parent`` (this process's parent before the fork) ends.

    A parent that ended between the fork and the prctl sends no signal (the child has been
    re-parented already): getppid() afterwards tells, and the child ends itself.
    """
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(137)


def _watch_lifeline(fd: int, own_pid_namespace: bool) -> None:
    def watch() -> None:
        while True:
            try:
                if os.read(fd, 1) == b"":
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        _ending.acquire()  # never released: the main thread forks no kernel after this
        # The grading process is gone: end the whole sandbox. kill(-1) reaches every process
        # of the namespace but its init and this one (never used outside a PID namespace of
        # its own, where it would reach all of the user's processes).
        if own_pid_namespace:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        os._exit(137)

    threading.Thread(target=watch, daemon=True).start()


def main() -> int:
    limits = json.loads(sys.argv[1])
    if sys.argv[2] != "--":
        raise SystemExit("usage: _shim.py LIMITS_JSON -- COMMAND...")
    command = sys.argv[3:]
    lifeline = limits.get("lifeline_fd")
    if lifeline is not None:
        os.set_inheritable(int(lifeline), False)
        _watch_lifeline(int(lifeline), bool(limits.get("own_pid_namespace")))
    channel = limits.get("channel_fd")
    if channel is not None:
        os.set_inheritable(int(channel), True)
    if os.getuid() == 0 and limits.get("uid") is not None:
        _drop_privileges(int(limits["uid"]), int(limits["gid"]))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _refuse_keyrings(libc)
    for directory in limits.get("make_dirs", []):
        os.makedirs(directory, exist_ok=True)
    _apply_limits(limits)
    env = dict(os.environ)
    env.pop("JPY_PARENT_PID", None)
    if channel is not None:
        env["CLASSGRADE_CHANNEL_FD"] = str(int(channel))

    shim = os.getpid()
    with _ending:  # not while the lifeline's watcher ends the sandbox (see _ending)
        child = os.fork()
        if child == 0:
            try:
                die_with(shim, libc)
                os.chdir(limits.get("cwd", "/"))
                os.execvpe(command[0], command, env)
            except OSError as exc:
                print(f"classgrade sandbox: cannot start {command[0]}: {exc}", file=sys.stderr)
            finally:
                os._exit(127)
    if channel is not None:
        os.close(int(channel))  # the kernel's copy is the only one left inside

    def forward(signum: int, _frame: FrameType | None) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            _, status = os.waitpid(child, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 1
        return os.waitstatus_to_exitcode(status) & 0xFF


if __name__ == "__main__":
    sys.exit(main())
