"""Output filters applied to every executed notebook before it is recorded or shown.

``CapOutputs`` bounds each output and each cell's outputs in bytes; ``SanitizeOutputs`` removes
HTML and JavaScript that would run in formgrader or in the feedback a learner opens.
"""

from __future__ import annotations

import copy
import json

import bleach
import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer


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
