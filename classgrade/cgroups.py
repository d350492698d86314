"""A control group per sandbox, where the machine lets classgrade make one.

Resource limits (RLIMIT_AS, RLIMIT_NPROC) bind each process: five children of 2 GB each pass a
4 GB per-process limit. A cgroup bounds the sandbox as a whole (``memory`` and ``pids``), and
ends every process in it at once. classgrade uses one when it can create groups below its own:

* cgroup v2, where the parent of its own group is writable and has ``memory`` and ``pids`` in
  its ``cgroup.subtree_control`` (root under systemd; a user's scope under the user's own,
  delegated systemd manager, e.g. ``systemd-run --user --scope``; not tested on the course's
  cgroup-v1 machines);
* cgroup v1, with writable ``memory`` and ``pids`` hierarchies (root on most such machines).

Elsewhere ``detect()`` returns None, and the per-process limits and the per-sandbox uid or user
namespace are what bound a notebook (the class-grading guide says so).

Groups are named ``classgrade-<run token>-<n>`` (see ``reaper``): a later run removes the groups
of runs that no longer exist, after killing whatever they still hold.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "classgrade-"
_REMOVE_SECONDS = 5.0


def _own_paths() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's group path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


@dataclass
class CgroupParents:
    """Where the sandboxes' groups are made: one folder (v2) or one per controller (v1)."""

    version: int
    memory: Path
    pids: Path

    def to_dict(self) -> dict[str, int | str]:
        """As plain data, for a job that crosses to a pool process or a queue worker."""
        return {"version": self.version, "memory": str(self.memory), "pids": str(self.pids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CgroupParents:
        """The inverse of :meth:`to_dict`."""
        return cls(int(data["version"]), Path(data["memory"]), Path(data["pids"]))

    def folders(self) -> list[Path]:
        """The hierarchy folders a cgroup is made in: memory on cgroup v2, memory and pids on v1."""
        return [self.memory] if self.version == 2 else [self.memory, self.pids]


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def detect() -> CgroupParents | None:
    """The parents under which this process may make limited groups, or None."""
    own = _own_paths()
    if (CGROUP_ROOT / "cgroup.controllers").exists() and "" in own:
        base = CGROUP_ROOT / own[""].lstrip("/")
        try:
            enabled = (base.parent / "cgroup.subtree_control").read_text().split()
            available = (base / "cgroup.controllers").read_text().split()
        except OSError:
            return None
        # Our own group holds processes, so groups for sandboxes go beside it, in the
        # delegated parent (the "no internal processes" rule of cgroup v2).
        if {"memory", "pids"} <= set(enabled) and {"memory", "pids"} <= set(available):
            parent = base.parent
            if _writable(parent):
                return CgroupParents(2, parent, parent)
        return None
    memory = CGROUP_ROOT / "memory" / own.get("memory", "/").lstrip("/")
    pids = CGROUP_ROOT / "pids" / own.get("pids", "/").lstrip("/")
    if _writable(memory) and _writable(pids):
        return CgroupParents(1, memory, pids)
    return None


@dataclass
class Cgroup:
    """One sandbox's group: made with its limits, entered by the sandbox, killed, removed."""

    parents: CgroupParents
    name: str
    folders: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, parents: CgroupParents, name: str, memory_bytes: int, pids: int) -> Cgroup:
        """A new cgroup ``name`` under ``parents``, with ``memory_bytes`` and ``pids`` as limits."""
        group = cls(parents, name)
        for parent in parents.folders():
            folder = parent / name
            folder.mkdir()
            group.folders.append(folder)
        try:
            if parents.version == 2:
                folder = group.folders[0]
                (folder / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (folder / "memory.swap.max").write_text("0")
                (folder / "pids.max").write_text(str(pids))
            else:
                memory, pid_folder = group.folders
                (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):  # only where swap accounting is on
                    (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
                (pid_folder / "pids.max").write_text(str(pids))
        except OSError:
            group.remove()
            raise
        return group

    def enter_command(self) -> list[str]:
        """A prefix for a command line: the command runs inside this group from its start."""
        procs = " ".join(f"'{f / 'cgroup.procs'}'" for f in self.folders)
        script = f'for f in {procs}; do echo $$ > "$f" || exit 126; done; exec "$@"'
        return ["/bin/sh", "-c", script, "classgrade-cgroup"]

    def pids(self) -> set[int]:
        """The ids of the processes in this cgroup now."""
        found: set[int] = set()
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
        return found

    def out_of_memory(self) -> bool:
        """Whether the kernel's OOM killer acted in this group."""
        folder = self.folders[0]
        for name in ("memory.events", "memory.oom_control"):
            with contextlib.suppress(OSError):
                for line in (folder / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip() not in ("", "0"):
                        return True
        with contextlib.suppress(OSError, ValueError):
            return int((folder / "memory.failcnt").read_text()) > 0
        return False

    def kill(self) -> None:
        """SIGKILL every process in the group (until none is left, or a few seconds pass)."""
        if self.parents.version == 2:
            with contextlib.suppress(OSError):
                (self.folders[0] / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + _REMOVE_SECONDS
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        """Kill every process of this cgroup, then remove its folders."""
        self.kill()
        deadline = time.monotonic() + _REMOVE_SECONDS
        for folder in self.folders:
            while folder.exists():
                try:
                    folder.rmdir()
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)


def remove_stale(parents: CgroupParents | None, is_stale: Callable[[str], bool]) -> int:
    """Kill and remove the groups whose run token ``is_stale``; return how many."""
    if parents is None:
        return 0
    names = set()
    for parent in parents.folders():
        with contextlib.suppress(OSError):
            names |= {p.name for p in parent.iterdir() if p.name.startswith(PREFIX) and p.is_dir()}
    removed = 0
    for name in sorted(names):
        if is_stale(name[len(PREFIX) :].rsplit("-", 1)[0]):
            folders = [p / name for p in parents.folders() if (p / name).exists()]
            Cgroup(parents, name, folders).remove()
            removed += 1
    return removed
