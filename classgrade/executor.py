"""nbgrader's Execute with the kernel in a sandbox and the locked grade cells run by the grader.

Learner cells run in the sandboxed kernel as nbgrader runs them. The instructor's locked grade
cells run in the grading process (``trusted``), and read-only setup cells run in both; every
name a grade cell takes from the notebook crosses the sandbox's channel as plain data.
"""

from __future__ import annotations

import secrets
import time
from typing import Any as AnyType

import nbformat
from jupyter_client.client import KernelClient
from jupyter_client.manager import KernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Any, Float, Integer

from . import channel, trusted
from .codec import clean_string, clean_strings
from .grade_outcome import (
    CELL_IGNORED_INTERRUPT,
    KERNEL_DIED,
    KERNEL_DIED_RUNNING,
    OUT_OF_TIME,
    clean_name,
    clean_text,
    not_run,
    over_wall_clock,
    timings,
)
from .sandbox import Limits

PROBE_START_SECONDS = 60.0
MAX_KEPT_OUTPUT_BYTES = 64 * 1024 * 1024
"""Outputs the job keeps while the notebook runs, before they are capped; later ones are
dropped with a note (without it, a kernel could fill the job's memory with outputs)."""
IOPUB_SECONDS = 30
"""How long a cell's outputs may take to be read after the kernel's reply (then it fails)."""
MAX_MESSAGE_TEXT_CHARS = 1_000_000
"""Longest string of a kernel message kept (outputs are later cut far shorter); cut before it
is cleaned or measured, so a huge message costs the job little beyond its decoding."""
MAX_CONTENT_DEPTH = 40
_OUTPUT_MESSAGES = {"stream", "display_data", "execute_result", "error", "update_display_data"}


def bounded_content(value: object, depth: int = 0) -> tuple[object, int]:
    """A message's content with every string cut and cleaned, and its size in characters."""
    if isinstance(value, str):
        if len(value) > MAX_MESSAGE_TEXT_CHARS:
            value = value[:MAX_MESSAGE_TEXT_CHARS] + "\n[classgrade: message text cut]\n"
        return clean_string(value), len(value)
    if depth > MAX_CONTENT_DEPTH:
        return None, 1
    if isinstance(value, dict):
        out: dict[object, object] = {}
        size = 0
        for key, item in value.items():
            key, key_size = bounded_content(str(key), depth + 1)
            out[key], item_size = bounded_content(item, depth + 1)
            size += key_size + item_size + 1
        return out, size
    if isinstance(value, list | tuple):
        pairs = [bounded_content(item, depth + 1) for item in value]
        return [v for v, _ in pairs], sum(n for _, n in pairs) + 1
    return value, 8


def _is_count(value: object) -> bool:
    return value is None or (type(value) is int and value >= 0)


class NotebookFailed(Exception):
    """The notebook's execution had to be abandoned (the kernel died, hung or ran too long)."""


class ProbeStartFailed(NotebookFailed):
    """The grading probe did not start in a fresh kernel: nothing of the learner's ran yet."""


class SandboxedExecute(Execute):
    """Execute with a started sandboxed kernel and grade cells run in the grading process.

    The kernel manager is passed in already started. ``channel_socket`` is the grader's end of
    the socket pair whose other end the sandbox received when it started.
    """

    channel_socket = Any()
    notebook_deadline = Float(float("inf"))
    call_timeout = Integer(Limits.cell_seconds)
    on_kernel_ready = Any(None)  # called once the kernel answered, before any cell runs

    def __init__(self, **kwargs: object):
        # The kernel's widget state would land in the notebook's metadata (and feed a widget
        # renderer in a plain nbconvert of it): the course uses no widgets.
        kwargs.setdefault("store_widget_state", False)
        # The outputs a cell sent before its reply may still be read (and cut) by the grader
        # after it: on a busy machine that takes longer than nbclient's default 4 s.
        kwargs.setdefault("iopub_timeout", IOPUB_SECONDS)
        super().__init__(**kwargs)
        self.kept_output_bytes = 0
        self.dropped_outputs = 0
        # A tag a learner cannot guess: no submitted tag can make nbclient skip a cell.
        self.skip_cells_with_tag = "classgrade-skip-" + secrets.token_hex(16)
        self.channel: trusted.KernelChannel | None = None
        self.namespace: trusted.GradingNamespace | None = None
        self.probe_ready = False

    def preprocess(
        self,
        nb: NotebookNode,
        resources: dict[str, object] | None = None,
        km: KernelManager | None = None,
    ) -> tuple[NotebookNode, dict[str, object]]:
        """``nb`` run with a fresh channel to the kernel and a fresh grading namespace."""
        self.channel = trusted.KernelChannel(
            self.channel_socket, self, float(self.call_timeout), self.notebook_deadline
        )
        self.namespace = trusted.GradingNamespace(self.channel)
        timings.mark("execute")
        try:
            return super().preprocess(nb, resources, km=km)
        finally:
            timings.mark("executed")
            timings.flush()

    async def async_start_new_kernel_client(self) -> KernelClient:
        """The client started as nbclient starts it (channels, kernel_info, IOPub flushed), timed.

        With timings on, the moment the kernel's first ``kernel_info_reply`` is taken is marked
        too: what follows it is jupyter_client's wait for a quiet IOPub channel.
        """
        if not timings.enabled():
            return await super().async_start_new_kernel_client()
        timings.mark("client")
        km = self.km
        if km is not None:
            make_client = km.client

            def timed_client(**kwargs: AnyType) -> KernelClient:
                kc = make_client(**kwargs)
                handle = kc._handle_kernel_info_reply

                def handled(msg: dict[str, AnyType]) -> None:
                    timings.mark("kernel_info_reply")
                    handle(msg)

                kc._handle_kernel_info_reply = handled
                return kc

            km.client = timed_client
        kc = await super().async_start_new_kernel_client()
        timings.mark("kernel_ready")
        return kc

    # nbclient's own synchronous name is bound to its base method: point it at this one.
    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def process_message(
        self, msg: dict[str, object], cell: NotebookNode, cell_index: int
    ) -> NotebookNode | None:
        """A kernel message made safe before nbclient files it into the notebook.

        Every string the kernel sends made writable, its execution count checked, and the
        outputs kept bounded in bytes.
        """
        content, size = bounded_content(msg.get("content", {}))
        if not isinstance(content, dict):
            content = {}
        if "execution_count" in content and not _is_count(content["execution_count"]):
            content["execution_count"] = None
        msg = {**msg, "content": content}
        if msg.get("msg_type") in _OUTPUT_MESSAGES:
            if self.kept_output_bytes + size > MAX_KEPT_OUTPUT_BYTES:
                if self.dropped_outputs == 0:
                    # First in the cell: the output caps applied later keep it.
                    cell.outputs.insert(
                        0,
                        nbformat.v4.new_output(
                            "stream",
                            name="stderr",
                            text="[classgrade: further outputs dropped (the notebook's outputs "
                            "are over the limit)]\n",
                        ),
                    )
                self.dropped_outputs += 1
                return None
            self.kept_output_bytes += size
        try:
            return super().process_message(msg, cell, cell_index)
        except (nbformat.ValidationError, ValueError, TypeError, KeyError, AttributeError):
            # An output the notebook format cannot hold: the kernel's, so only it is lost.
            cell.outputs.append(
                nbformat.v4.new_output(
                    "stream",
                    name="stderr",
                    text="[classgrade: an output that breaks the notebook format removed]\n",
                )
            )
            return None

    def handle_comm_msg(
        self, outs: list[NotebookNode], msg: dict[str, object], cell_index: int
    ) -> None:
        """Comms (widgets) are ignored: nothing of them is kept or answered."""

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, object], index: int
    ) -> tuple[NotebookNode, dict[str, object]]:
        """Run one cell: a grade cell's test in the grader, any other cell in the kernel."""
        if not self.probe_ready:
            self._start_probe()  # before any of the learner's code runs
        if is_trusted_test(cell):
            with timings.adding("grade_cells"):
                self._run_trusted(cell)
            return cell, resources
        if time.monotonic() >= self.notebook_deadline:
            raise NotebookFailed(OUT_OF_TIME)
        with timings.adding("kernel_cells"):
            cell, resources = super().preprocess_cell(cell, resources, index)
        if cell.cell_type == "code":
            self._namespace().forget_fetched()
        if is_read_only_setup(cell):
            with timings.adding("setup_cells_in_grader"):
                trusted.run_setup_code(cell.source, self._namespace())
        return cell, resources

    def _namespace(self) -> trusted.GradingNamespace:
        if self.namespace is None:  # made by ``preprocess``, before any cell
            raise NotebookFailed("a cell ran before the notebook's grading namespace was made")
        return self.namespace

    def _run_trusted(self, cell: NotebookNode) -> None:
        name = cell.metadata.get("nbgrader", {}).get("grade_id", "?")
        outputs = trusted.run_trusted_code(cell.source, self._namespace(), name)
        cell.outputs = [nbformat.from_dict(clean_strings(o)) for o in outputs]
        cell.execution_count = None

    # -- the channel's link to the kernel (trusted.KernelLink) -----------------------------

    def announce(self, request_id: int) -> None:
        """Ask the kernel (shell message) to read request ``request_id`` from the socket."""
        msg = self.kc.session.msg(channel.REQUEST_MESSAGE, content={"id": request_id})
        self.kc.shell_channel.send(msg)

    def alive(self) -> bool:
        """Whether the kernel is still running."""
        return bool(run_sync(self.km.is_alive)())

    def interrupt(self) -> None:
        """Interrupt the kernel."""
        run_sync(self.km.interrupt_kernel)()

    # -- the probe -------------------------------------------------------------------------

    def _start_probe(self) -> None:
        timings.mark("probe")
        if self.on_kernel_ready is not None:
            self.on_kernel_ready()
        status = run_sync(self._async_start_probe)()
        timings.mark("probe_ready")
        if status != "ok":
            raise ProbeStartFailed(f"the grading probe could not start in the kernel: {status}")
        self.probe_ready = True

    async def _async_start_probe(self) -> str:
        # Importing the probe registers its handler of ``channel.REQUEST_MESSAGE``.
        msg_id = self.kc.execute(
            "",
            silent=True,
            store_history=False,
            user_expressions={"r": f"__import__({channel.PROBE_MODULE!r}) and 'ok'"},
            allow_stdin=False,
        )
        deadline = time.monotonic() + PROBE_START_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "no answer"
            if not await self.km.is_alive():
                return KERNEL_DIED
            try:
                reply = await self.kc.get_shell_msg(timeout=min(remaining, 0.5))
            except Exception:  # queue.Empty: keep waiting, the deadline bounds it
                continue
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            content = reply["content"]
            if content.get("status") != "ok":
                return f"the kernel refused ({clean_name(content.get('ename', '?'))})"
            result = content.get("user_expressions", {}).get("r", {})
            if result.get("status") != "ok":
                return clean_text(f"{result.get('ename', 'error')}: {result.get('evalue', '')}")
            text = result.get("data", {}).get("text/plain", "")
            return "ok" if text.strip("'\"") == "ok" else "an unexpected answer"


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
    """Whether ``cell`` is locked code that is neither graded nor a solution (setup code)."""
    nbg = cell.metadata.get("nbgrader", {})
    return (
        cell.cell_type == "code"
        and bool(nbg.get("locked"))
        and not nbg.get("grade")
        and not nbg.get("solution")
    )


def describe_execution_failure(exc: BaseException, timed_out: bool, limit: float) -> str:
    """The failure reason for ``exc`` raised while the notebook ran (``limit``: its seconds)."""
    if timed_out:
        return over_wall_clock(limit)
    if isinstance(exc, trusted.KernelUnavailable | NotebookFailed):
        return clean_text(exc)
    if isinstance(exc, DeadKernelError):
        return KERNEL_DIED_RUNNING
    if isinstance(exc, CellTimeoutError):
        return CELL_IGNORED_INTERRUPT
    return not_run(exc)
