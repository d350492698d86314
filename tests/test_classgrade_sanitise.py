"""classgrade's sanitiser and the bounds on learner data, on their own.

What is stored for a learner's Markdown must render (as nbconvert renders it for feedback and
formgrader) to exactly HTML that passed the allow-list; every link that survives has a web or
mail scheme however it was spelled; nothing is handed to a parser past the depth and size
bounds; the notebook the job hands back keeps only the course's metadata and passes the
nbformat schema; no unpaired surrogate leaves the kernel's messages or a submission.
"""

from __future__ import annotations

import html
import html.parser
import json
import re

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classgrade import codec, output_sanitising
from classgrade.executor import MAX_KEPT_OUTPUT_BYTES, SandboxedExecute
from classgrade.intake import (
    MAX_CELLS,
    SourceCell,
    SourceNotebook,
    SubmissionError,
    SubmittedFolder,
    load_submission,
)
from classgrade.output_sanitising import (
    MAX_DEPTH,
    MAX_RENDERED_CHARS,
    MAX_SHOWN_TEXT_CHARS,
    CapOutputs,
    InvalidNotebook,
    SanitizeOutputs,
    nesting_depth,
    render_markdown,
    safe_markdown,
    sanitize_html,
    tidy_notebook,
    validated,
)

ALLOWED_TAGS = set(output_sanitising._TAGS)
WEB_SCHEMES = {"", "http", "https", "mailto"}


class _Elements(html.parser.HTMLParser):
    """Every start tag and its attributes, as a tolerant parser reads them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    handle_startendtag = handle_starttag


def _elements(text: str) -> list[tuple[str, dict]]:
    parser = _Elements()
    parser.feed(text)
    parser.close()
    return parser.found


def _browser_scheme(url: str) -> str:
    """The scheme a browser reads: it strips leading controls and spaces, drops tabs and
    newlines anywhere, and ignores case."""
    squeezed = re.sub(r"[\t\n\r]", "", url).lstrip("\x00\x01\x02\x03\x04\x05\x06\x07\x08 ")
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", squeezed)
    return match.group(1).lower() if match else ""


def _assert_inert(stored: str) -> None:
    for tag, attrs in _elements(stored):
        assert tag in ALLOWED_TAGS, (tag, stored)
        for name, value in attrs.items():
            assert not name.startswith("on"), (name, stored)
            assert name != "style", stored
            if name == "href":
                assert _browser_scheme(value) in WEB_SCHEMES, (value, stored)
            if name == "src":
                assert value.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))


def _assert_fixed_point(stored: str) -> None:
    rendered = render_markdown(stored).strip("\n")
    assert rendered == stored
    assert sanitize_html(rendered) == rendered


JS = "alert(1)"
SPELLINGS = [
    f"javascript:{JS}",
    f"JaVaScRiPt:{JS}",
    f"java&#x73;cript:{JS}",
    f"&#x6A;avascript:{JS}",
    f"&#106;&#97;vascript:{JS}",
    f"javascript&colon;{JS}",
    f"javascript&#58;{JS}",
    f"java&#9;script:{JS}",
    f"java&#x0A;script:{JS}",
    f"&#x01;javascript:{JS}",
    f"java\tscript:{JS}",
    f"java\nscript:{JS}",
    f" \x01javascript:{JS}",
    f"javascript\x00:{JS}",
    "vbscript:msgbox(1)",
    "VBScript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DaTa:image/svg+xml,<svg onload=alert(1)>",
    "livescript:alert(1)",
]
FORMS = [
    "[x]({url})",
    "[x](<{url}>)",
    "<{url}>",
    "[x][r]\n\n[r]: {url}\n",
    "[x][r]\n\n[r]: <{url}>\n",
    "![x]({url})",
    '<a href="{url}">x</a>',
    "<a href='{url}'>x</a>",
    "<a href={url}>x</a>",
    '<img src="{url}">',
    '<iframe src="{url}"></iframe>',
    '<form action="{url}"><button>b</button></form>',
    '<meta http-equiv="refresh" content="0;url={url}">',
    '<base href="{url}">',
    '<svg><a xlink:href="{url}"><text>t</text></a></svg>',
    '<math><mi href="{url}">m</mi></math>',
    '<object data="{url}"></object>',
    '<embed src="{url}">',
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("url", SPELLINGS)
def test_no_spelling_of_a_script_link_survives(form, url):
    stored, _ = safe_markdown(form.format(url=url))
    _assert_inert(stored)
    _assert_fixed_point(stored)


@pytest.mark.parametrize(
    "text",
    [
        "<img src=x onerror=alert(1)>",
        "<svg onload=alert(1)>",
        "<details open ontoggle=alert(1)>",
        "<script>alert(1)</script>",
        "<style>@import 'https://x.example/a.css';</style>",
        '<div style="background:url(https://x.example/b)">s</div>',
        '<link rel=stylesheet href="https://x.example/c.css">',
        '<img src="https://x.example/pixel.png">',
        "<!--><img src=x onerror=alert(1)>-->",
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
        "<textarea><img src=x onerror=alert(1)></textarea>",
        "<xmp><img src=x onerror=alert(1)></xmp>",
        '<input autofocus onfocus="alert(1)">',
        '<button formaction="javascript:alert(1)">b</button>',
    ],
)
def test_active_html_is_inert_in_markdown_and_outputs(text):
    stored, _ = safe_markdown(text)
    _assert_inert(stored)
    _assert_fixed_point(stored)
    _assert_inert(sanitize_html(text))


def test_ordinary_markdown_keeps_its_look():
    text = (
        "# Title\n\nSome *emphasis*, `code` and a [link](https://example.org/a?b=1).\n\n"
        "- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n$x^2 < y$\n\n"
        "```python\nx = 1\n\ny = 2\n```\n\n> quoted\n"
    )
    stored, _ = safe_markdown(text)
    _assert_fixed_point(stored)
    for piece in ("<h1>", "<em>emphasis</em>", "<code>code</code>", "<table>", "<li>one</li>"):
        assert piece in stored
    assert 'href="https://example.org/a?b=1"' in stored
    assert "$x^2 &lt; y$" in stored
    assert "shown as text" not in stored


MARKDOWN_PIECES = st.sampled_from(
    [
        "# h\n",
        "\n\n",
        "\n",
        "*e*",
        "**s**",
        "`c`",
        "```\nx\n\ny\n```\n",
        "```python\na\n\n\nb\n```\n",
        "- item\n",
        "  - nested\n",
        "> quote\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n",
        "$x<y$",
        "$$\\alpha$$",
        "<div>",
        "</div>",
        "<pre>",
        "</pre>",
        "<p>",
        "<b>",
        "</b>",
        "<!--",
        "-->",
        "&amp;",
        "&#10;",
        "&lt;",
        "<",
        ">",
        '"',
        "'",
        "[l](javascript:alert(1))",
        "[l](https://example.org)",
        "<a href=javascript:alert(1)>",
        "<img src=x onerror=alert(1)>",
        "<script>",
        "</script>",
        "<style>",
        "<textarea>",
        "<svg>",
        "<math>",
        "<table><tr><td>",
        "\t",
        "    indented\n",
        "\r\n",
        "\x00",
        "\u2028",
        "\ufffd",
        "text ",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MARKDOWN_PIECES, max_size=30).map("".join))
def test_whatever_is_written_renders_as_exactly_what_passed_the_allow_list(text):
    stored, _ = safe_markdown(text)
    _assert_inert(stored)
    _assert_fixed_point(stored)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_renders_as_exactly_what_passed_the_allow_list(text):
    stored, _ = safe_markdown(text)
    _assert_inert(stored)
    _assert_fixed_point(stored)


TAGS = st.sampled_from(["div", "p", "span", "b", "i", "table", "tr", "td", "ul", "li", "a"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), TAGS), max_size=120))
def test_the_depth_count_never_underestimates_the_parsed_depth(tokens):
    from bleach._vendor import html5lib  # the parser bleach sanitises with

    text = "".join(f"<{'/' if closing else ''}{tag}>x" for closing, tag in tokens)
    tree = html5lib.parse(text, namespaceHTMLElements=False)

    def depth(element) -> int:
        return 1 + max((depth(child) for child in element), default=0)

    body = tree.find("body")
    parsed = depth(body) - 1 if body is not None else 0
    assert nesting_depth(text, limit=10_000) >= parsed


def test_deep_or_long_text_is_never_parsed():
    deep = "<div>" * (MAX_DEPTH + 1)
    assert nesting_depth(deep) > MAX_DEPTH
    assert not output_sanitising.fits(deep)
    assert output_sanitising.fits("<div>" * MAX_DEPTH)
    for text in (deep, "<div>" * 40_000, "x" * (MAX_RENDERED_CHARS + 1)):
        stored, spent = safe_markdown(text)
        assert spent == 0  # not rendered
        assert "too long or nested too deeply" in stored
        _assert_fixed_point(stored)
        html_out = SanitizeOutputs()._html(text)
        assert "too long or nested too deeply" in html_out
    long = "q" * (MAX_RENDERED_CHARS + 1)  # shown as text, cut
    stored, _ = safe_markdown(long)
    assert stored.count("q") == MAX_SHOWN_TEXT_CHARS
    assert "(cut)" in stored


def _display(mime: str, text: str):
    return nbformat.v4.new_output("display_data", data={mime: text})


def test_the_notebooks_rendering_budget_is_bounded():
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [_display("text/html", "<b>" + "x" * 9_000 + "</b>") for _ in range(30)]
    md = nbformat.v4.new_markdown_cell("*" + "x" * 9_000 + "*")
    nb = nbformat.v4.new_notebook(cells=[cell, md])
    nb, _ = SanitizeOutputs(max_rendered_chars=100_000).preprocess(nb, {})
    shown = ["".join(o.data["text/html"]) for o in nb.cells[0].outputs]
    spent = [s for s in shown if "budget is spent" in s]
    assert 15 <= len(spent) < 30  # the first ones rendered, the rest shown as text
    assert "budget is spent" in nb.cells[1].source


def test_outputs_are_capped_per_notebook():
    cells = []
    for _ in range(10):
        cell = nbformat.v4.new_code_cell("")
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="z" * 40_000) for _ in range(5)
        ]
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb, _ = CapOutputs(max_notebook_bytes=500_000).preprocess(nb, {})
    total = sum(len(json.dumps(o)) for c in nb.cells for o in c.outputs)
    assert total <= 500_000 + 10 * 1_000
    texts = [o.get("text", "") for c in nb.cells for o in c.outputs]
    assert any("cut to fit" in t for t in texts)
    assert any("more outputs removed" in t for t in texts)
    assert sum(len(c.outputs) for c in nb.cells) < 50


def test_unsafe_output_types_and_forged_images_are_dropped():
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "image/png": '" onerror="alert(1)',
                "image/svg+xml": "<svg onload=alert(1)>",
                "application/javascript": "alert(1)",
                "text/markdown": "[x](javascript:alert(1))",
            },
            metadata={"image/png": {"width": "1 onerror=alert(1)"}, "filenames": {"x": "y"}},
        )
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb, _ = SanitizeOutputs().preprocess(nb, {})
    out = nb.cells[0].outputs[0]
    assert set(out.data) == {"text/html"}
    _assert_inert(out.data["text/html"])
    assert out.metadata == {}


def test_raw_cells_are_never_shown_as_html():
    raw = nbformat.v4.new_raw_cell("<script>alert(1)</script>")
    raw.metadata.update(raw_mimetype="text/html", format="text/html")
    nb = nbformat.v4.new_notebook(cells=[raw])
    nb, _ = SanitizeOutputs().preprocess(nb, {})
    assert "raw_mimetype" not in nb.cells[0].metadata
    assert "format" not in nb.cells[0].metadata


def test_tidy_keeps_only_the_courses_metadata_and_valid_counts():
    cell = nbformat.v4.new_code_cell("x")
    cell.metadata.update(nbgrader={"grade": False}, tags=["raises-exception"], widgets={"a": 1})
    cell.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1)
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    cell.execution_count = "<img src=x onerror=alert(1)>"
    cell.outputs[0]["execution_count"] = "<b>"
    nb.metadata.update(
        widgets={"application/vnd.jupyter.widget-state+json": {"state": {}}},
        language_info={"name": "python", "pygments_lexer": "evil"},
        anything="else",
    )
    tidy_notebook(nb, {"name": "python3", "display_name": "Python 3", "language": "python"})
    assert set(nb.metadata) == {"kernelspec", "language_info"}
    assert nb.metadata.language_info == {"name": "python"}
    assert set(nb.cells[0].metadata) == {"nbgrader"}
    assert nb.cells[0].execution_count is None
    assert nb.cells[0].outputs[0].execution_count is None
    validated(nb)


def test_outputs_that_break_the_schema_are_replaced_and_the_rest_fails_with_a_reason():
    cell = nbformat.v4.new_code_cell("x")
    good = nbformat.v4.new_output("stream", name="stdout", text="kept")
    nb = nbformat.v4.new_notebook(cells=[cell])
    cell.outputs = [good, {"output_type": "stream", "name": 5, "text": ["a", 1]}]
    cell.outputs.append({"output_type": "display_data", "data": "nope", "metadata": {}})
    validated(nb)
    nbformat.validate(nb)
    assert nb.cells[0].outputs[0] == good
    assert all("breaks the notebook format" in o.text for o in nb.cells[0].outputs[1:])
    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("x")])
    broken.cells[0]["source"] = 5  # not an output: nothing to repair
    with pytest.raises(InvalidNotebook):
        validated(broken)


def test_surrogates_are_replaced_in_frames_and_strings():
    text = "a\ud800b\udc80c\udfff"
    assert codec.clean_string(text) == "a\ufffdb\ufffdc\ufffd"
    head = json.dumps({"payload": {"k\ud800": [text, {"x": text}]}, "arrays": []}).encode()
    payload, _ = codec._decode_frame(head, memoryview(b""))
    dumped = json.dumps(payload, ensure_ascii=False)
    dumped.encode("utf-8")  # would raise UnicodeEncodeError on a surrogate
    assert "\ufffd" in dumped
    assert codec.clean_strings({"a": [[[[["\ud800"]]]]]}) == {"a": [[[[["\ufffd"]]]]]}
    deep: list = ["\ud800"]
    for _ in range(codec.MAX_CLEAN_DEPTH + 10):
        deep = [deep]
    cleaned = codec.clean_strings(deep)
    assert json.dumps(cleaned).count("[") == codec.MAX_CLEAN_DEPTH + 1  # deeper: None


def _source() -> SourceNotebook:
    src = SourceNotebook("hw")
    src.cells["answer"] = SourceCell("answer", "code", False, False, True, False, None)
    return src


def _folder(cells: list[dict]) -> SubmittedFolder:
    raw = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    folder = SubmittedFolder()
    folder.contents["hw.ipynb"] = raw.encode()
    folder.files["hw.ipynb"] = (len(raw), "")
    return folder


def test_intake_caps_the_number_of_cells_and_cleans_surrogates():
    cell = {"cell_type": "markdown", "metadata": {}, "source": "x"}
    with pytest.raises(SubmissionError, match=f"over the limit of {MAX_CELLS}"):
        load_submission(_folder([cell] * (MAX_CELLS + 1)), "hw.ipynb", _source(), 10**8)
    nb = load_submission(
        _folder(
            [{"cell_type": "markdown", "metadata": {}, "source": ["a\ud800", "b"]}] * MAX_CELLS
        ),
        "hw.ipynb",
        _source(),
        10**8,
    )
    assert nb.cells[0].source == "a\ufffdb"
    nbformat.writes(nb).encode("utf-8")


def _running_cell():
    cell = nbformat.v4.new_code_cell("")
    cell.metadata["execution"] = {}  # as nbclient prepares a cell it runs
    return cell


def _message(kind: str, content: dict, msg_id: str = "m") -> dict:
    return {
        "msg_type": kind,
        "header": {"msg_type": kind, "msg_id": "x"},
        "parent_header": {"msg_id": msg_id},
        "metadata": {},
        "content": content,
    }


def test_the_job_keeps_a_bounded_amount_of_outputs(monkeypatch):
    from classgrade import executor

    monkeypatch.setattr(executor, "MAX_KEPT_OUTPUT_BYTES", 50_000)
    client = SandboxedExecute()
    client.reset_execution_trackers()  # as nbclient does before it runs a notebook
    client.clear_before_next_output = False  # as nbclient does before it runs a cell
    cell = _running_cell()
    for _ in range(20):
        client.process_message(
            _message("stream", {"name": "stdout", "text": "q" * 10_000}), cell, 0
        )
    kept = sum(o.get("text", "").count("q") for o in cell.outputs)
    assert 30_000 <= kept <= 50_000
    assert "further outputs dropped" in cell.outputs[0].text  # first: later caps keep it
    assert client.dropped_outputs > 0
    assert MAX_KEPT_OUTPUT_BYTES > 50_000  # the real bound is larger (and hit by the red team)


def test_a_huge_message_is_cut_before_it_is_cleaned_or_measured():
    from classgrade.executor import MAX_MESSAGE_TEXT_CHARS, bounded_content

    content, size = bounded_content({"text": "\ud800" + "w" * (5 * MAX_MESSAGE_TEXT_CHARS)})
    assert content["text"].startswith("\ufffd")
    assert content["text"].count("w") == MAX_MESSAGE_TEXT_CHARS - 1
    assert "message text cut" in content["text"]
    assert size < MAX_MESSAGE_TEXT_CHARS + 100
    deep: list = []
    for _ in range(100):
        deep = [deep]
    assert json.dumps(bounded_content(deep)[0]).count("[") <= 42


def test_the_kernels_messages_are_cleaned_before_nbclient_files_them():
    client = SandboxedExecute()
    client.reset_execution_trackers()  # as nbclient does before it runs a notebook
    client.clear_before_next_output = False  # as nbclient does before it runs a cell
    cell = _running_cell()
    client.process_message(
        _message(
            "execute_result",
            {"data": {"text/plain": "v\ud800"}, "metadata": {}, "execution_count": "<b>"},
        ),
        cell,
        0,
    )
    client.process_message(
        _message("execute_input", {"code": "", "execution_count": "<i>"}), cell, 0
    )
    client.process_message(
        _message(
            "comm_open",
            {"comm_id": "c", "target_name": "jupyter.widget", "data": {"state": {"a": 1}}},
        ),
        cell,
        0,
    )
    assert cell.execution_count is None
    assert cell.outputs[0].data["text/plain"] == "v\ufffd"
    assert cell.outputs[0].execution_count is None
    assert not client.widget_state
