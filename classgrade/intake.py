"""What a submission is allowed to be, read without trusting it, and rebuilt from the gradebook.

Everything under ``submitted/`` was made by a learner (or by a copy of what a learner made):
names, links, special files. Intake walks a submission folder by file descriptors, without
following a symbolic link anywhere (the folders included), accepts regular files and folders
only, caps their number and sizes, and reads each file it needs once. A link, a FIFO, a device,
a socket or a file with several hard links fails the submission with a plain reason.

The notebooks are then rebuilt: the cells' nbgrader metadata comes from the gradebook (so a
renamed, duplicated, re-typed or re-versioned cell cannot abort the batch or change a grade),
and the instructor's cells are put back in the source notebook's order, each followed by the
learner's own cells that followed it (so moving a grade cell above the answers it needs changes
nothing). Missing locked cells are restored from the gradebook.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
from nbformat.notebooknode import NotebookNode

from .codec import clean_string
from .grade_outcome import clean_name, clean_text

if TYPE_CHECKING:  # the main process's gradebook; nothing else here needs nbgrader
    from nbgrader.api import Gradebook

NBGRADER_SCHEMA_VERSION = 3
TIMESTAMP_FILE = "timestamp.txt"
MAX_TIMESTAMP_BYTES = 1000
MAX_ENTRIES = 2000
MAX_DEPTH = 12
MAX_TOTAL_BYTES = 500 * 1024 * 1024
MAX_CELLS = 1000
"""Cells a submitted notebook may have (the course's have under 100); more are not read."""

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class SubmissionError(Exception):
    """The notebook cannot be graded; the message is the plain reason shown to the instructor."""


@dataclass
class SourceCell:
    """A cell of the source notebook: its name, type and nbgrader flags."""

    name: str
    cell_type: str
    locked: bool
    grade: bool
    solution: bool
    task: bool
    points: float | None
    source: str = ""


@dataclass
class SourceNotebook:
    """What the gradebook knows about one notebook of an assignment, in the source's order."""

    name: str
    cells: dict[str, SourceCell] = field(default_factory=dict)

    def expected_metadata(self, cell: SourceCell) -> dict:
        """The nbgrader metadata ``cell`` carries in a graded notebook."""
        meta = {
            "grade": cell.grade,
            "grade_id": cell.name,
            "locked": cell.locked,
            "schema_version": NBGRADER_SCHEMA_VERSION,
            "solution": cell.solution,
            "task": cell.task,
        }
        if cell.grade or cell.task:
            meta["points"] = cell.points
        return meta

    def signature(self) -> str:
        """Everything of the source that decides a grade: ids, order, points, locked sources."""
        return json.dumps(
            [
                (c.name, c.cell_type, c.points, c.locked, c.grade, c.source)
                for c in self.cells.values()
            ]
        )


def source_notebook_from_gradebook(
    gb: Gradebook, assignment: str, notebook: str, order: list[str] | None = None
) -> SourceNotebook:
    """The gradebook's cells of ``notebook``, ordered as ``order`` (grade ids) lists them.

    ``order`` comes from the source notebook file; ids it does not list keep the gradebook's
    order, after the listed ones.
    """
    nb = gb.find_notebook(notebook, assignment)
    grade_points = {c.name: float(c.max_score) for c in nb.grade_cells}
    task_points = {c.name: float(c.max_score) for c in nb.task_cells}
    solutions = {c.name for c in nb.solution_cells}
    cells = {}
    for c in nb.source_cells:
        cells[c.name] = SourceCell(
            name=c.name,
            cell_type=c.cell_type,
            locked=bool(c.locked),
            grade=c.name in grade_points,
            solution=c.name in solutions,
            task=c.name in task_points,
            points=grade_points.get(c.name, task_points.get(c.name)),
            source=c.source or "",
        )
    rank = {name: i for i, name in enumerate(order or [])}
    ordered = sorted(cells, key=lambda name: (rank.get(name, len(rank)), 0))
    return SourceNotebook(name=notebook, cells={name: cells[name] for name in ordered})


def grade_ids_in_order(path: Path) -> list[str] | None:
    """The grade ids of an instructor's notebook (source or release) in cell order."""
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return None
    return [
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if isinstance(c.metadata.get("nbgrader", {}).get("grade_id"), str)
    ]


@dataclass
class SubmittedFolder:
    """The regular files of one submission folder: relative path -> (size, sha256)."""

    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)

    def digest(self) -> str:
        """A SHA-256 of every file's name, size and hash: it changes when the submission does."""
        h = hashlib.sha256()
        for name, (size, sha) in sorted(self.files.items()):
            h.update(f"{name}\0{size}\0{sha}\n".encode())
        return h.hexdigest()

    def notebook_names(self) -> list[str]:
        """The submission's notebooks at its top level, sorted."""
        return sorted(n for n in self.files if n.endswith(".ipynb") and "/" not in n)

    def timestamp(self) -> str | None:
        """The text of the submission's timestamp file, or None without one."""
        raw = self.contents.get(TIMESTAMP_FILE)
        return raw.decode("utf-8", "replace").strip() if raw is not None else None


def _describe(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _open_dir(name: str, dir_fd: int | None, shown: str) -> int:
    try:
        return os.open(name, _OPEN_DIR, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SubmissionError(f"{shown} is a symbolic link or not a folder") from None
        if exc.errno == errno.ENOENT:
            raise SubmissionError("no submission folder") from None
        raise SubmissionError(f"{shown} cannot be opened ({exc.strerror})") from None


def read_submission(
    submitted_root: Path, student: str, assignment: str, wanted: set[str], max_bytes: int
) -> SubmittedFolder:
    """Walk ``submitted_root/student/assignment`` without following anything.

    ``wanted`` names the files whose bytes are kept (the notebooks, ``timestamp.txt``); each
    is at most ``max_bytes``. Every file is hashed for the journal's fingerprint.
    """
    root_fd = os.open(submitted_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fds = [root_fd]
    try:
        fds.append(_open_dir(student, root_fd, f"the learner's folder {clean_name(student)}"))
        fds.append(_open_dir(assignment, fds[-1], f"the folder {clean_name(assignment)}"))
        out = SubmittedFolder()
        budget = [MAX_TOTAL_BYTES]
        _walk(fds[-1], "", 0, out, wanted, max_bytes, budget)
        return out
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _walk(
    dir_fd: int,
    prefix: str,
    depth: int,
    out: SubmittedFolder,
    wanted: set[str],
    max_bytes: int,
    budget: list[int],
) -> None:
    if depth > MAX_DEPTH:
        raise SubmissionError(f"the submission's folders are nested more than {MAX_DEPTH} deep")
    with os.scandir(dir_fd) as entries:
        names = sorted(e.name for e in entries)
    for name in names:
        shown = clean_name(prefix + name)
        if len(out.files) >= MAX_ENTRIES:
            raise SubmissionError(f"the submission holds more than {MAX_ENTRIES} files")
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            fd = _open_dir(name, dir_fd, shown)
            try:
                _walk(fd, f"{prefix}{name}/", depth + 1, out, wanted, max_bytes, budget)
            finally:
                os.close(fd)
            continue
        if not stat.S_ISREG(st.st_mode):
            raise SubmissionError(
                f"{shown} is {_describe(st.st_mode)}; only plain files are accepted"
            )
        rel = prefix + name
        limit = max_bytes if rel.endswith(".ipynb") else MAX_TIMESTAMP_BYTES
        if rel == TIMESTAMP_FILE and st.st_size > MAX_TIMESTAMP_BYTES:
            raise SubmissionError(f"{TIMESTAMP_FILE} is {st.st_size} bytes, not a timestamp")
        data, digest = _read_regular(name, dir_fd, shown, budget, limit if rel in wanted else None)
        if rel in wanted:
            out.contents[rel] = data
        out.files[rel] = (st.st_size, digest)


def _read_regular(
    name: str, dir_fd: int, shown: str, budget: list[int], keep_limit: int | None
) -> tuple[bytes, str]:
    try:
        fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SubmissionError(
                f"{shown} is a symbolic link; only plain files are accepted"
            ) from None
        raise SubmissionError(f"{shown} cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SubmissionError(
                f"{shown} is {_describe(st.st_mode)}; only plain files are accepted"
            )
        if st.st_nlink > 1:
            raise SubmissionError(
                f"{shown} has {st.st_nlink} hard links (a link to another file?); only plain "
                "files are accepted"
            )
        if keep_limit is not None and st.st_size > keep_limit:
            raise SubmissionError(
                f"{shown} is {st.st_size / 1e6:.1f} MB, over the {keep_limit / 1e6:.0f} MB limit"
            )
        budget[0] -= st.st_size
        if budget[0] < 0:
            raise SubmissionError(
                f"the submission holds more than {MAX_TOTAL_BYTES / 1e6:.0f} MB of files"
            )
        digest = hashlib.sha256()
        kept = bytearray()
        remaining = st.st_size + 1  # a file that grows while read is cut, and noticed
        while remaining > 0:
            chunk = os.read(fd, min(1 << 20, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            digest.update(chunk)
            if keep_limit is not None:
                kept += chunk
        if remaining <= 0:
            raise SubmissionError(f"{shown} changed while it was read")
        return bytes(kept), digest.hexdigest()
    finally:
        os.close(fd)


def _source_text(source: object) -> str:
    # An unpaired surrogate (JSON allows "\ud800") could never be written out again.
    if isinstance(source, str):
        return clean_string(source)
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return clean_string("".join(source))
    raise SubmissionError("a cell's source is neither text nor a list of lines")


def load_submission(
    folder: SubmittedFolder, name: str, source: SourceNotebook, max_bytes: int
) -> NotebookNode:
    """Parse notebook ``name`` of a read submission and rebuild it; raise SubmissionError."""
    if name not in folder.contents:
        others = folder.notebook_names()
        if others:
            # The point first: a long list of learner-chosen names is what gets cut.
            shown = ", ".join(clean_text(o, 40) for o in others[:3])
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            raise SubmissionError(
                f"{name} is missing (renamed? the notebook must keep its name); the folder has "
                f"{shown}{more}"
            )
        files = [n for n in folder.files if n != TIMESTAMP_FILE]
        raise SubmissionError(f"{name} is missing" + ("" if files else "; the folder is empty"))
    raw = folder.contents[name]
    if len(raw) > max_bytes:
        raise SubmissionError(
            f"{name} is {len(raw) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SubmissionError(f"{name} is not UTF-8 text") from None
    except RecursionError:
        raise SubmissionError(f"{name} is JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise SubmissionError(
            f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SubmissionError(f"{name} is JSON but not a notebook (no list of cells)")
    if len(data["cells"]) > MAX_CELLS:
        raise SubmissionError(
            f"{name} has {len(data['cells'])} cells, over the limit of {MAX_CELLS}"
        )
    return rebuild(data, source)


def _new_cell(cell_type: str, text: str) -> NotebookNode:
    if cell_type == "code":
        return nbformat.v4.new_code_cell(text)
    if cell_type == "markdown":
        return nbformat.v4.new_markdown_cell(text)
    return nbformat.v4.new_raw_cell(text)


def _with_metadata(cell: NotebookNode, known: SourceCell, source: SourceNotebook) -> NotebookNode:
    cell.metadata["nbgrader"] = source.expected_metadata(known)
    if known.locked:
        cell.metadata["editable"] = False
        cell.metadata["deletable"] = False
    return cell


def rebuild(data: dict, source: SourceNotebook) -> NotebookNode:
    """A fresh nbformat-4 notebook built from the source and the submission.

    The source's cells in the source's order, the learner's answers and own cells in place,
    trusted metadata, and nothing else of the submission.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata["language_info"] = {"name": "python"}
    # Keep the last copy of a duplicated id, as nbgrader's DeduplicateIds does.
    last_index: dict[str, int] = {}
    for i, cell in enumerate(data["cells"]):
        gid = _grade_id(cell)
        if gid is not None and gid in source.cells:
            last_index[gid] = i
    known_cells: dict[str, NotebookNode] = {}
    following: dict[str | None, list[NotebookNode]] = {None: []}
    current: str | None = None
    for i, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            continue
        text = _source_text(cell.get("source", ""))
        gid = _grade_id(cell)
        known = source.cells.get(gid) if gid is not None and last_index.get(gid) == i else None
        if known is None:
            # Nothing of the submitted metadata survives: no tags (skip-execution,
            # raises-exception), no per-cell execution settings.
            following[current].append(_new_cell(str(cell.get("cell_type")), text))
            continue
        known_cells[known.name] = _with_metadata(_new_cell(known.cell_type, text), known, source)
        current = known.name
        following[current] = []
    nb.cells.extend(following[None])
    for name, known in source.cells.items():
        if name in known_cells:
            nb.cells.append(known_cells[name])
        elif known.locked:
            # A deleted instructor cell comes back (OverwriteCells sets its source again).
            nb.cells.append(_with_metadata(_new_cell(known.cell_type, known.source), known, source))
        nb.cells.extend(following.get(name, []))
    return nb


def _grade_id(cell: object) -> str | None:
    if not isinstance(cell, dict):
        return None
    meta = cell.get("metadata")
    if not isinstance(meta, dict):
        return None
    nbg = meta.get("nbgrader")
    if not isinstance(nbg, dict):
        return None
    gid = nbg.get("grade_id")
    return gid if isinstance(gid, str) else None
