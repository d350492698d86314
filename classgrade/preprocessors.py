"""Steps added around nbgrader's own preprocessors.

* ``load_submission``: per-notebook checks before nbgrader sees the file (size, JSON, notebook
  structure), and a rebuild of every cell's nbgrader metadata from the gradebook, so that a
  renamed, duplicated, re-typed or re-versioned cell cannot abort the batch or change a grade.
* ``SandboxedExecute``: nbgrader's Execute, with the kernel in the sandbox and the locked
  grade cells run by the grader (see ``trusted``).
* ``CapOutputs`` and ``SanitizeOutputs``: byte caps on outputs, and HTML/JavaScript removed
  from what formgrader and feedback will display.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import bleach
import nbformat
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Any, Float, Integer

from . import trusted

NBGRADER_SCHEMA_VERSION = 3


class SubmissionError(Exception):
    """The notebook cannot be graded; the message is the plain reason shown to the instructor."""


@dataclass
class SourceCell:
    name: str
    cell_type: str
    locked: bool
    grade: bool
    solution: bool
    task: bool
    points: float | None


@dataclass
class SourceNotebook:
    """What the gradebook knows about one notebook of an assignment."""

    name: str
    cells: dict[str, SourceCell] = field(default_factory=dict)

    def expected_metadata(self, cell: SourceCell) -> dict:
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


def source_notebook_from_gradebook(gb, assignment: str, notebook: str) -> SourceNotebook:
    nb = gb.find_notebook(notebook, assignment)
    grade_points = {c.name: float(c.max_score) for c in nb.grade_cells}
    task_points = {c.name: float(c.max_score) for c in nb.task_cells}
    solutions = {c.name for c in nb.solution_cells}
    out = SourceNotebook(name=notebook)
    for c in nb.source_cells:
        out.cells[c.name] = SourceCell(
            name=c.name,
            cell_type=c.cell_type,
            locked=bool(c.locked),
            grade=c.name in grade_points,
            solution=c.name in solutions,
            task=c.name in task_points,
            points=grade_points.get(c.name, task_points.get(c.name)),
        )
    return out


def _source_text(source) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    raise SubmissionError("a cell's source is neither text nor a list of lines")


def load_submission(path: Path, source: SourceNotebook, max_bytes: int) -> NotebookNode:
    """Read a submitted notebook and return a clean copy; raise SubmissionError if hopeless.

    The file itself is never modified. Every problem that nbgrader would turn into an abort
    of the whole run (duplicate ids, an unknown schema version, cells whose type or flags were
    edited) is repaired here, because the gradebook says what each cell must be.
    """
    folder = path.parent
    if not folder.is_dir():
        raise SubmissionError("no submission folder")
    if not path.is_file():
        others = sorted(p.name for p in folder.glob("*.ipynb"))
        if others:
            raise SubmissionError(
                f"{path.name} is missing; the folder has {', '.join(others)} "
                "(renamed? the notebook must keep its name)"
            )
        files = [p.name for p in folder.iterdir() if p.name != "timestamp.txt"]
        raise SubmissionError(
            f"{path.name} is missing" + ("" if files else "; the folder is empty")
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise SubmissionError(
            f"{path.name} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit"
        )
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SubmissionError(f"{path.name} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SubmissionError(
            f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SubmissionError(f"{path.name} is JSON but not a notebook (no list of cells)")
    return _rebuild(data, source)


def _rebuild(data: dict, source: SourceNotebook) -> NotebookNode:
    """A fresh nbformat-4 notebook with the submitted cells' sources and trusted metadata."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["language_info"] = {"name": "python"}
    # Keep the last copy of a duplicated id, as nbgrader's DeduplicateIds does.
    last_index: dict[str, int] = {}
    for i, cell in enumerate(data["cells"]):
        gid = _grade_id(cell)
        if gid is not None and gid in source.cells:
            last_index[gid] = i
    for i, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            continue
        cell_type = cell.get("cell_type")
        text = _source_text(cell.get("source", ""))
        gid = _grade_id(cell)
        known = source.cells.get(gid) if gid is not None and last_index.get(gid) == i else None
        if known is not None:
            cell_type = known.cell_type
        if cell_type == "code":
            new = nbformat.v4.new_code_cell(text)
        elif cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(text)
        else:
            new = nbformat.v4.new_raw_cell(text)
        if known is not None:
            new.metadata["nbgrader"] = source.expected_metadata(known)
            if known.locked:
                new.metadata["editable"] = False
                new.metadata["deletable"] = False
        # Nothing else of the submitted metadata survives: no tags (skip-execution,
        # raises-exception), no per-cell execution settings.
        nb.cells.append(new)
    return nb


def _grade_id(cell) -> str | None:
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


def is_trusted_test(cell: NotebookNode) -> bool:
    """A locked grade cell that is not an answer: its code is the instructor's."""
    nbg = cell.metadata.get("nbgrader", {})
    return (
        cell.cell_type == "code"
        and bool(nbg.get("grade"))
        and not nbg.get("solution")
        and bool(nbg.get("locked"))
    )


def is_read_only_setup(cell: NotebookNode) -> bool:
    nbg = cell.metadata.get("nbgrader", {})
    return (
        cell.cell_type == "code"
        and bool(nbg.get("locked"))
        and not nbg.get("grade")
        and not nbg.get("solution")
    )


class NotebookFailed(Exception):
    """The notebook's execution had to be abandoned (the kernel died, hung or ran too long)."""


class SandboxedExecute(Execute):
    """nbgrader's Execute with the sandboxed kernel and trusted grade cells.

    The kernel (and its manager) is passed in already started, so that the next notebook's
    kernel boots while this one is graded. Learner cells run in that kernel as nbgrader runs
    them; locked grade cells run in the grader's process through ``trusted``.
    """

    rpc_dir = Any()
    notebook_deadline = Float(0.0)
    call_timeout = Integer(30)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # A tag a learner cannot guess: no submitted tag can make nbclient skip a cell.
        self.skip_cells_with_tag = "classgrade-skip-" + secrets.token_hex(16)
        self.channel: trusted.KernelChannel | None = None
        self.namespace: trusted.GradingNamespace | None = None

    def preprocess(self, nb, resources=None, km=None):
        self.channel = trusted.KernelChannel(
            Path(self.rpc_dir), self._send_request, float(self.call_timeout)
        )
        self.channel.deadline = self.notebook_deadline or float("inf")
        self.namespace = trusted.GradingNamespace(self.channel)
        return super().preprocess(nb, resources, km=km)

    def preprocess_cell(self, cell, resources, index):
        if is_trusted_test(cell):
            self._run_trusted(cell)
            return cell, resources
        with self._serving_callbacks():
            cell, resources = super().preprocess_cell(cell, resources, index)
        if cell.cell_type == "code":
            self.namespace.forget_fetched()
        if is_read_only_setup(cell):
            trusted.run_setup_code(cell.source, self.namespace)
        return cell, resources

    @contextlib.contextmanager
    def _serving_callbacks(self):
        """While a learner cell runs, answer its calls to substituted functions."""
        if not (self.channel and self.channel.callbacks):
            yield
            return
        stop = threading.Event()

        def serve():
            wait = 0.0002
            while not stop.wait(wait):
                wait = 0.0002 if self.channel.serve_callbacks() else min(wait * 2, 0.02)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _run_trusted(self, cell) -> None:
        self._bootstrap_probe()
        name = cell.metadata.get("nbgrader", {}).get("grade_id", "?")
        outputs = trusted.run_trusted_code(cell.source, self.namespace, name)
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        cell.execution_count = None

    _probe_ready = False

    def _bootstrap_probe(self) -> None:
        if not self._probe_ready:
            status = self._send_request(None, 30.0)
            if status != "ok":
                raise NotebookFailed(f"the grading probe could not start in the kernel: {status}")
            self._probe_ready = True

    def _send_request(self, base: str | None, timeout: float) -> str:
        return run_sync(self._async_send)(base, timeout)

    async def _async_send(self, base: str | None, timeout: float) -> str:
        kc = self.kc
        if base is None:
            # Importing the probe registers its handler of ``classgrade_request`` messages.
            msg_id = kc.execute(
                "",
                silent=True,
                store_history=False,
                user_expressions={"r": "__import__('_classgrade_probe') and 'ok'"},
                allow_stdin=False,
            )
        else:
            # Requests bypass the cell machinery: no input transformers, no execution hooks.
            msg = kc.session.msg("classgrade_request", content={"path": base})
            kc.shell_channel.send(msg)
            msg_id = msg["header"]["msg_id"]
        reply = await self._await_reply(msg_id, timeout)
        if reply is None:
            # The learner's function is still running: interrupt it, and if the kernel does
            # not answer even then, the notebook cannot go on.
            await self.km.interrupt_kernel()
            reply = await self._await_reply(msg_id, 5.0)
            if reply is None:
                raise trusted.KernelUnavailable(
                    f"the kernel did not answer within {timeout:.0f} s and ignored an interrupt"
                )
            raise trusted.LearnerError(f"the function did not return within {timeout:.0f} s")
        content = reply["content"]
        if reply["header"]["msg_type"] == "classgrade_reply":
            return str(content.get("status", "no status"))
        if content.get("status") != "ok":
            return f"the kernel refused the grader's request ({content.get('ename', '?')})"
        result = content.get("user_expressions", {}).get("r", {})
        if result.get("status") != "ok":
            return f"{result.get('ename', 'error')}: {result.get('evalue', '')}"[:500]
        text = result.get("data", {}).get("text/plain", "")
        return "ok" if text.strip("'\"") == "ok" else f"unexpected probe answer {text[:80]}"

    async def _await_reply(self, msg_id: str, timeout: float):
        deadline = time.monotonic() + timeout
        # Short waits at first, longer ones while the learner's code keeps computing: the
        # kernel's calls back to substituted functions are answered quickly, and an idle wait
        # does not take a CPU away from the kernel.
        wait = 0.0002
        next_alive_check = 0.0
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return None
            if now >= next_alive_check:
                if not await self.km.is_alive():
                    raise trusted.KernelUnavailable("the kernel died")
                next_alive_check = now + 0.2
            try:
                msg = await self.kc.get_shell_msg(timeout=min(remaining, wait))
            except Empty:
                served = self.channel.serve_callbacks() if self.channel is not None else 0
                wait = 0.0002 if served else min(wait * 2, 0.02)
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg


def _output_bytes(output: dict) -> int:
    return len(json.dumps(output, default=str))


class CapOutputs(NbGraderPreprocessor):
    """Caps the size of every output and of each cell's outputs, in bytes.

    nbgrader's LimitOutput counts stream lines only; one 20 MB line, an image or an HTML blob
    passes it. Over-long outputs are replaced by a short note that says what was removed.
    """

    max_output_bytes = Integer(100_000).tag(config=True)
    max_cell_bytes = Integer(500_000).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        total = 0
        kept = []
        for output in cell.outputs:
            size = _output_bytes(output)
            if size > self.max_output_bytes or total + size > self.max_cell_bytes:
                output = _cap(output, self.max_output_bytes, size)
                size = _output_bytes(output)
            total += size
            kept.append(output)
            if total > self.max_cell_bytes:
                break
        cell.outputs = kept
        return cell, resources


def _cap(output: NotebookNode, limit: int, size: int) -> NotebookNode:
    note = f"\n[classgrade: output of {size} bytes cut to fit the {limit}-byte limit]\n"
    if output.output_type == "stream":
        text = output.text if isinstance(output.text, str) else "".join(output.text)
        return nbformat.v4.new_output("stream", name=output.name, text=text[: limit // 2] + note)
    if output.output_type == "error":
        return nbformat.v4.new_output(
            "error",
            ename=str(output.ename)[:200],
            evalue=str(output.evalue)[: limit // 2],
            traceback=[str(line)[:2000] for line in output.traceback[:50]],
        )
    text = output.get("data", {}).get("text/plain", "")
    text = text if isinstance(text, str) else "".join(text)
    new = copy.deepcopy(output)
    new["data"] = {"text/plain": text[: limit // 2] + note}
    new["metadata"] = {}
    return new


_SAFE_TAGS = sorted(
    set(bleach.sanitizer.ALLOWED_TAGS)
    | {"p", "br", "pre", "code", "div", "span", "table", "thead", "tbody", "tr", "th", "td"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "hr", "sub", "sup", "img"}
)
_SAFE_ATTRIBUTES = {"*": ["class", "title"], "a": ["href", "title"], "img": ["src", "alt"]}
_SAFE_MIME = {"text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg"}


def sanitize_html(html: str) -> str:
    return bleach.clean(
        html,
        tags=_SAFE_TAGS,
        attributes=_SAFE_ATTRIBUTES,
        protocols=["http", "https", "data"],
        strip=False,
    )


class SanitizeOutputs(NbGraderPreprocessor):
    """Removes scripts and active HTML from outputs and from Markdown written by the learner.

    formgrader and the feedback HTML render outputs as they are; a learner's
    ``<img onerror=...>`` or ``<script>`` would run in the grader's browser.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown":
            if not cell.metadata.get("nbgrader", {}).get("locked"):
                cell.source = sanitize_html(cell.source)
            cell.pop("attachments", None)
        elif cell.cell_type == "code":
            for output in cell.outputs:
                if "data" in output:
                    data = output["data"]
                    for mime in list(data):
                        if mime not in _SAFE_MIME:
                            del data[mime]
                        elif mime in ("text/html", "text/markdown"):
                            text = (
                                data[mime] if isinstance(data[mime], str) else "".join(data[mime])
                            )
                            data[mime] = sanitize_html(text)
                    if not data:
                        data["text/plain"] = "[classgrade: output removed (not a safe type)]"
                    output["metadata"] = {}
                if output.output_type == "error":
                    output["traceback"] = [str(t) for t in output.get("traceback", [])]
        elif cell.cell_type == "raw":
            cell.source = sanitize_html(cell.source)
            cell.metadata.pop("format", None)
        return cell, resources


class Watchdog:
    """Kills the kernel's sandbox when the notebook's wall-clock budget is spent."""

    def __init__(self, seconds: float, kill):
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire, args=(kill,))
        self._timer.daemon = True

    def _fire(self, kill) -> None:
        self.fired = True
        kill()

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        return False


def describe_execution_failure(exc: BaseException, watchdog: Watchdog, limit: float) -> str:
    if watchdog.fired:
        return f"the notebook ran longer than {limit:.0f} s (wall-clock limit) and was stopped"
    if isinstance(exc, trusted.KernelUnavailable):
        return str(exc)
    if isinstance(exc, DeadKernelError):
        return "the kernel died while running the notebook (os._exit, a crash, or the memory limit)"
    if isinstance(exc, NotebookFailed):
        return str(exc)
    if isinstance(exc, CellTimeoutError):
        return (
            "a cell kept running past the time limit and ignored the interrupt; the kernel "
            "was stopped"
        )
    name = type(exc).__name__
    return f"the notebook could not be run ({name}: {str(exc)[:300]})"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")
