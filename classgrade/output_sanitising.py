"""What an executed notebook may show.

Every output and every learner-written cell, bounded and made safe inside the notebook's own
job, before anything of it is recorded.

``CapOutputs`` bounds each output, each cell's outputs and the notebook's outputs in bytes.
``SanitizeOutputs`` makes what formgrader and the feedback pages will *render* safe: HTML is
sanitised with an allow-list of tags, attributes and URL schemes (bleach), Markdown is first
rendered exactly as nbconvert renders it and the rendered HTML is what gets sanitised, and what
is stored renders to exactly that sanitised HTML (checked; otherwise the learner's text is shown
escaped). Nesting depth and sizes are capped before any parser sees the text, so its cost is
bounded. ``tidy_notebook`` keeps only the metadata the course uses and validates the notebook
against the nbformat schema, repairing what a kernel can break.
"""

from __future__ import annotations

import base64
import binascii
import copy
import html
import json
import re

import nbformat
from bleach.sanitizer import Cleaner
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer

MAX_DEPTH = 60
"""Deepest tag nesting handed to an HTML parser (its time grows with the square of depth)."""
MAX_RENDERED_CHARS = 100_000
"""Longest Markdown cell or HTML output rendered and sanitised; a longer one is shown as text."""
MAX_NOTEBOOK_RENDERED_CHARS = 2_000_000
"""Rendered-and-sanitised text per notebook (about 10 s of bleach on a busy machine)."""
MAX_SHOWN_TEXT_CHARS = 20_000
"""Longest learner text kept when it is shown escaped instead of rendered."""


def _output_bytes(output: dict) -> int:
    return len(json.dumps(output, default=str))


class CapOutputs(NbGraderPreprocessor):
    """Caps the size of every output, of each cell's outputs and of the notebook's, in bytes.

    nbgrader's LimitOutput counts stream lines only; one 20 MB line, an image or an HTML blob
    passes it. Over-long outputs are replaced by a short note that says what was removed.
    """

    max_output_bytes = Integer(100_000).tag(config=True)
    max_cell_bytes = Integer(500_000).tag(config=True)
    max_notebook_bytes = Integer(8_000_000).tag(config=True)

    def preprocess(
        self, nb: NotebookNode, resources: dict[str, object]
    ) -> tuple[NotebookNode, dict[str, object]]:
        """``nb`` with its outputs bounded, the notebook's total counted afresh."""
        self._notebook_total = 0
        return super().preprocess(nb, resources)

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, object], index: int
    ) -> tuple[NotebookNode, dict[str, object]]:
        """``cell`` with its outputs bounded in bytes."""
        if cell.cell_type != "code":
            return cell, resources
        total = 0
        kept = []
        for index, output in enumerate(cell.outputs):
            size = _output_bytes(output)
            left = self.max_notebook_bytes - self._notebook_total - total
            if size > self.max_output_bytes or total + size > self.max_cell_bytes or size > left:
                output = _cap(output, max(0, min(self.max_output_bytes, left)), size)
                size = _output_bytes(output)
            total += size
            kept.append(output)
            if total > min(self.max_cell_bytes, self.max_notebook_bytes - self._notebook_total):
                left_out = len(cell.outputs) - index - 1
                if left_out:
                    note = f"[classgrade: {left_out} more outputs removed (output limits)]\n"
                    kept.append(nbformat.v4.new_output("stream", name="stderr", text=note))
                break
        self._notebook_total += total
        cell.outputs = kept
        return cell, resources


def _cap(output: NotebookNode, limit: int, size: int) -> NotebookNode:
    note = f"\n[classgrade: output of {size} bytes cut to fit the output limits]\n"
    if output.output_type == "stream":
        text = output.text if isinstance(output.text, str) else "".join(output.text)
        return nbformat.v4.new_output("stream", name=output.name, text=text[: limit // 2] + note)
    if output.output_type == "error":
        return nbformat.v4.new_output(
            "error",
            ename=str(output.ename)[:200],
            evalue=str(output.evalue)[: limit // 2],
            traceback=[str(line)[:2000] for line in output.traceback[:50]][: max(1, limit // 4000)],
        )
    text = output.get("data", {}).get("text/plain", "")
    text = text if isinstance(text, str) else "".join(text)
    new = copy.deepcopy(output)
    new["data"] = {"text/plain": text[: limit // 2] + note}
    new["metadata"] = {}
    return new


# -- Sanitising what is rendered ----------------------------------------------------------------

_TAGS = frozenset(
    "a abbr b blockquote br caption code col colgroup dd del details div dl dt em figcaption "
    "figure h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strong sub "
    "summary sup table tbody td tfoot th thead tr u ul var".split()
)
_BASE64_IMAGES = ("image/png", "image/jpeg")
_IMAGE_DATA = re.compile(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/=\s]*\Z")


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    if name in ("class", "title"):
        return True
    if tag == "a":
        # The cleaner's protocols then keep http, https, mailto and relative links only.
        return name == "href" and _scheme(value) != "data"
    if tag == "img":
        # Only images embedded in the page: a URL would make the instructor's browser fetch it.
        return name == "alt" or (name == "src" and _IMAGE_DATA.match(value) is not None)
    if tag in ("td", "th"):
        return name in ("colspan", "rowspan", "align")
    if tag == "ol":
        return name == "start"
    return False


def _scheme(url: str) -> str:
    """A URL's scheme as a browser reads it (it ignores whitespace and controls in it)."""
    squeezed = re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(url)).lower()
    match = re.match(r"([a-z][a-z0-9+.-]*):", squeezed)
    return match.group(1) if match else ""


_CLEANER = Cleaner(
    tags=_TAGS,
    attributes=_allowed_attribute,
    protocols=["http", "https", "mailto", "data"],  # data: only survives on an <img> (above)
    strip=False,  # a tag that is not allowed is shown as text, not run
    strip_comments=True,
)
_TAG_TOKEN = re.compile(r"<(/?)([A-Za-z][^\s/>]*)[^>]*?(/?)>")
_IMPLIED_PARENTS = {"tr": 1, "td": 2, "th": 2, "col": 1}
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())


def nesting_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """How deep an HTML parser may nest the tags of ``text``.

    Never less than the depth it builds (counted without parsing; the count stops past
    ``limit``).

    An end tag closes an element only when it closes the innermost open one: a parser may
    ignore a stray end tag, keep an element open past it, or reopen formatting elements, so
    every other end tag is taken to close nothing. An end tag may also create an element
    (``</p>``, ``</br>``), and a table's parts bring the parents they imply (``<tbody>``,
    ``<tr>``, ``<colgroup>``).
    """
    stack: list[tuple[str, int]] = []  # (tag, levels it adds)
    depth = deepest = 0
    for match in _TAG_TOKEN.finditer(text):
        closing, name, _self_closing = match.groups()
        name = name.lower()
        levels = 1 + _IMPLIED_PARENTS.get(name, 0)
        if closing:
            deepest = max(deepest, depth + 1)
            if stack and stack[-1][0] == name:
                depth -= stack.pop()[1]
        elif name in _VOID:
            deepest = max(deepest, depth + levels)
        else:  # "<div/>" opens a div in HTML
            stack.append((name, levels))
            depth += levels
            deepest = max(deepest, depth)
        if deepest > limit:
            break
    return deepest


def sanitize_html(text: str) -> str:
    """``text`` with every tag, attribute and URL scheme off the allow-list made inert.

    The caller bounds its size and depth first (:func:`fits`).
    """
    return _CLEANER.clean(text)


def fits(text: str) -> bool:
    """Small and shallow enough to hand to an HTML or Markdown parser."""
    return len(text) <= MAX_RENDERED_CHARS and nesting_depth(text) <= MAX_DEPTH


def render_markdown(text: str, attachments: dict | None = None) -> str:
    """Markdown as nbconvert's HTML exporter (feedback, formgrader) renders a cell's source."""
    renderer = IPythonRenderer(
        escape=False, attachments=_Attachments() if attachments is None else attachments
    )
    return MarkdownWithMath(renderer=renderer).render(text)


_BLANK_LINE_AHEAD = re.compile(r"\n(?=[ \t]*\n)")


def _markdown_for(clean: str) -> str:
    """Markdown text whose rendering is ``clean`` (sanitised HTML) itself.

    Rendered Markdown passes an HTML block that starts with ``<div`` through untouched until a
    blank line; a newline before a blank line is written as a character reference, so there is
    none.
    """
    return _BLANK_LINE_AHEAD.sub("&#10;", f'<div class="classgrade-md">{clean}</div>')


def _renders_as_itself(stored: str) -> bool:
    """The fixed point: ``stored`` renders to itself, and sanitising that changes nothing.

    So the page shows exactly HTML that passed the allow-list.
    """
    try:
        rendered = render_markdown(stored).strip("\n")
    except Exception:
        return False
    return rendered == stored and sanitize_html(rendered) == stored


class _Attachments(dict[str, dict[str, str]]):
    """A cell's attachments as the renderer looks them up: raster images only.

    Any other or missing one gives a URL the sanitiser removes (nbconvert raises on a missing
    one).
    """

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> dict[str, str]:
        return {"application/x-missing": ""}


def _attachments(cell_attachments: object) -> _Attachments:
    found = _Attachments()
    if isinstance(cell_attachments, dict):
        for name, bundle in cell_attachments.items():
            if isinstance(bundle, dict):
                kept = {
                    m: v
                    for m, v in bundle.items()
                    if m in _BASE64_IMAGES and isinstance(v, str) and _valid_base64(v)
                }
                found[name] = kept or {"application/x-missing": ""}
    return found


def escaped_markdown(text: str, why: str = "") -> str:
    """The learner's text shown as plain preformatted text (its rendering checked)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    note = ""
    if len(text) > MAX_SHOWN_TEXT_CHARS:
        text = text[:MAX_SHOWN_TEXT_CHARS]
        note = " (cut)"
    label = html.escape(f"[classgrade: shown as text{(': ' + why) if why else ''}{note}]", False)
    body = html.escape(text, quote=False)
    stored = _markdown_for(f'<pre class="classgrade-text">{label}\n{body}</pre>')
    if _renders_as_itself(stored):
        return stored
    return f"<p>{label}: the text could not be shown safely</p>"


def safe_markdown(text: str, attachments: object = None) -> tuple[str, int]:
    """Markdown a cell may keep: its rendering is its own sanitised rendering.

    Returns (stored text, characters rendered) so callers can keep a budget.
    """
    if not fits(text):
        return escaped_markdown(text, "too long or nested too deeply to render"), 0
    try:
        rendered = render_markdown(text, _attachments(attachments))
    except Exception:
        return escaped_markdown(text, "it could not be rendered"), len(text)
    if not fits(rendered):
        return escaped_markdown(text, "too long or nested too deeply to render"), len(text)
    stored = _markdown_for(sanitize_html(rendered).strip("\n"))
    if _renders_as_itself(stored):
        return stored, len(text) + len(rendered)
    return escaped_markdown(text, "its rendering could not be made safe"), len(text)


_SAFE_MIME = {"text/plain", "text/html", "text/latex", "image/png", "image/jpeg"}


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return str(value)


def _valid_base64(text: str) -> bool:
    try:
        base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


class SanitizeOutputs(NbGraderPreprocessor):
    """Makes every output and every cell the learner wrote safe to render.

    formgrader is served from the Jupyter server's origin, and the feedback HTML opens in a
    browser: a learner's ``<img onerror=...>``, ``<script>`` or ``[x](javascript:...)`` link
    would run with the instructor's session. Instructor cells (locked, restored from the
    gradebook) are left as they are.
    """

    max_rendered_chars = Integer(MAX_NOTEBOOK_RENDERED_CHARS).tag(config=True)

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)
        self._budget = self.max_rendered_chars

    def preprocess(
        self, nb: NotebookNode, resources: dict[str, object]
    ) -> tuple[NotebookNode, dict[str, object]]:
        """``nb`` made safe to render, with a fresh budget of rendered characters."""
        self._budget = self.max_rendered_chars
        return super().preprocess(nb, resources)

    def _spend(self, chars: int) -> None:
        self._budget -= chars

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, object], index: int
    ) -> tuple[NotebookNode, dict[str, object]]:
        """``cell`` made safe to render."""
        locked = bool(cell.metadata.get("nbgrader", {}).get("locked"))
        if cell.cell_type == "markdown":
            if not locked:
                cell.source = self._markdown(_text(cell.source), cell.get("attachments"))
            cell.pop("attachments", None)
        elif cell.cell_type == "code":
            cell.outputs = [self._output(o) for o in cell.outputs]
        elif cell.cell_type == "raw":
            # A raw cell is shown as HTML when its metadata says so: never the learner's.
            cell.metadata.pop("format", None)
            cell.metadata.pop("raw_mimetype", None)
            cell.pop("attachments", None)
        return cell, resources

    def _markdown(self, text: str, attachments: object) -> str:
        if self._budget <= 0:
            return escaped_markdown(text, "the notebook's rendering budget is spent")
        stored, spent = safe_markdown(text, attachments)
        self._spend(spent)
        return stored

    def _output(self, output: NotebookNode) -> NotebookNode:
        if output.get("output_type") == "error":
            output["traceback"] = [str(t) for t in output.get("traceback", [])]
        if "data" not in output:
            return output
        data = output["data"]
        markdown = data.pop("text/markdown", None)
        for mime in list(data):
            if mime not in _SAFE_MIME:
                del data[mime]
            elif mime in _BASE64_IMAGES and not _valid_base64(_text(data[mime])):
                del data[mime]
        if "text/html" in data:
            data["text/html"] = self._html(_text(data["text/html"]))
        elif markdown is not None:
            data["text/html"] = self._html_from_markdown(_text(markdown))
        if not data:
            data["text/plain"] = "[classgrade: output removed (not a safe type)]"
        output["metadata"] = {}
        return output

    def _html(self, text: str) -> str:
        if self._budget <= 0:
            return _escaped_html(text, "the notebook's rendering budget is spent")
        if not fits(text):
            return _escaped_html(text, "too long or nested too deeply to render")
        self._spend(len(text))
        return sanitize_html(text)

    def _html_from_markdown(self, text: str) -> str:
        if self._budget <= 0:
            return _escaped_html(text, "the notebook's rendering budget is spent")
        if not fits(text):
            return _escaped_html(text, "too long or nested too deeply to render")
        try:
            rendered = render_markdown(text)
        except Exception:
            return _escaped_html(text, "it could not be rendered")
        self._spend(len(text) + len(rendered))
        if not fits(rendered):
            return _escaped_html(text, "too long or nested too deeply to render")
        return sanitize_html(rendered)


def _escaped_html(text: str, why: str) -> str:
    label = html.escape(f"[classgrade: shown as text: {why}]")
    return f"<pre>{label}\n{html.escape(text[:MAX_SHOWN_TEXT_CHARS], quote=False)}</pre>"


# -- The notebook's metadata and schema ----------------------------------------------------------

_CELL_METADATA = ("nbgrader", "editable", "deletable")


def tidy_notebook(nb: NotebookNode, kernelspec: dict | None) -> None:
    """Only the metadata the course uses: no widget state, no kernel-reported settings."""
    nb.metadata = nbformat.from_dict({"language_info": {"name": "python"}})
    if kernelspec:
        nb.metadata["kernelspec"] = copy.deepcopy(kernelspec)
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict(
            {k: cell.metadata[k] for k in _CELL_METADATA if k in cell.metadata}
        )
        if cell.cell_type == "code" and not _is_count(cell.get("execution_count")):
            cell.execution_count = None
        for output in cell.get("outputs", []):
            if output.get("output_type") == "execute_result" and not _is_count(
                output.get("execution_count")
            ):
                output["execution_count"] = None


def _is_count(value: object) -> bool:
    return value is None or (type(value) is int and value >= 0)


class InvalidNotebook(Exception):
    """The graded notebook breaks the nbformat schema and could not be repaired."""


def invalid_notebook(detail: str) -> str:
    """The reason for a graded notebook that breaks the notebook format (``detail``: how)."""
    return f"the graded notebook breaks the notebook format ({detail})"


def validated(nb: NotebookNode) -> NotebookNode:
    """``nb`` checked against the nbformat schema.

    An output that breaks it is replaced by a note; anything else that breaks it raises
    :class:`InvalidNotebook` with the reason.
    """
    try:
        nbformat.validate(nb)
        return nb
    except nbformat.ValidationError:
        pass
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            try:
                nbformat.validate(output, ref="output", version=4, version_minor=5)
                kept.append(output)
            except nbformat.ValidationError:
                kept.append(
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text="[classgrade: an output that breaks the notebook format removed]\n",
                    )
                )
        cell.outputs = kept
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise InvalidNotebook(str(exc.message)[:200]) from None
    return nb
