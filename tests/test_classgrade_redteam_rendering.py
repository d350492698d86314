"""Red team: what learners write and what their kernels send, as the instructor's browser
renders it, and the cost of handling it.

Cases attack five things: script in the pages an instructor opens (the feedback HTML and
formgrader's view of the autograded notebook: Markdown cells, Markdown, HTML, SVG, LaTeX and
image outputs, raw cells, attachments, links of every spelling); bounded work (nesting bombs in
Markdown and in outputs, a huge cell count, floods of outputs); notebooks the kernel could make
invalid (an HTML string as ``execution_count``, outputs that break the schema); characters no
file can hold (unpaired surrogates in every kind of output and in Markdown); and learner ids
that display cleaning would merge. All of them, each followed by a correct submission, are
graded in one real run with the sandbox on; nbgrader then writes the feedback, and every
feedback page, formgrader view and plain ``nbconvert`` page of every case is opened in headless
Chromium, which records any dialog, script call, request, navigation or pop-up while the page
loads and while every link in it is clicked.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass

import nbformat
import pytest
from course import Course, correct, fill, grade_points
from headless_chromium import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.slow

A = "rnn"
STEP, SEQUENCE = "rnn_step_answer", "rnn_sequence_answer"
WRONG_STEP = "def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):\n    return x_t @ W_xh\n"
WRONG_SEQUENCE = (
    "def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):\n"
    "    return np.zeros((np.shape(x)[0], np.shape(x)[1], np.shape(W_hh)[0]))\n"
)
PAGE_URL = "http://classgrade.test/formgrader/submissions/1/"
TIMEOUT_MS = 30_000
THREAT = "alert"  # every script payload calls it (or opens, navigates, fetches)


def full() -> float:
    return sum(grade_points(A).values())


@dataclass
class Case:
    name: str
    threat: str  # script, bounded, invalid, surrogate, ids
    expect: str = "graded"
    score: float | None = None  # None: full marks
    reason: str = ""  # in the failure reason
    student: str | None = None


CASES: list[Case] = []
BUILDERS = {}


def case(name, threat, **more):
    def register(builder):
        CASES.append(Case(name, threat, **more))
        BUILDERS[name] = builder
        return builder

    return register


def _cells(nb, grade_id):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]


def _with_cells(course, cells, after: str = SEQUENCE):
    """A correct notebook with learner cells (code, Markdown or raw) after the answer ``after``."""
    nb = correct(course, A)
    index = nb.cells.index(_cells(nb, after)[0])
    nb.cells[index + 1 : index + 1] = cells
    return nb


def _code(source: str):
    return nbformat.v4.new_code_cell(source)


def _markdown(source: str, **more):
    cell = nbformat.v4.new_markdown_cell(source)
    cell.update(more)
    return cell


# -- Script in the instructor's browser --------------------------------------------------------

JS = "alert(document.domain)"
LINK_SPELLINGS = [
    f"javascript:{JS}",
    f"JaVaScRiPt:{JS}",
    f"JAVASCRIPT:{JS}",
    f"java&#x73;cript:{JS}",
    f"&#106;avascript:{JS}",
    f"javascript&colon;{JS}",
    f"java%73cript:{JS}",
    f"%20javascript:{JS}",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:text/html,<script>alert(1)</script>",
]
# The same links spelled with raw characters a browser skips inside a scheme.
RAW_SPELLINGS = [
    f"java\tscript:{JS}",
    f"java\nscript:{JS}",
    f"java\x00script:{JS}",
    f"\x01javascript:{JS}",
    f" javascript:{JS}",
    f"javascript\x0b:{JS}",
]
ACTIVE_HTML = [
    "<script>alert(1)</script>",
    "<ScRiPt>alert(2)</ScRiPt>",
    "<img src=x onerror=alert(3)>",
    '<img src="https://tracker.example/pixel.png">',
    "<svg onload=alert(4)><circle r=1 /></svg>",
    "<svg><script>alert(5)</script></svg>",
    "<svg><a xlink:href=javascript:alert(6)><text y=10>svg link</text></a></svg>",
    '<math><mi xlink:href="javascript:alert(7)">m</mi></math>',
    '<iframe src="javascript:alert(8)"></iframe>',
    '<iframe srcdoc="<script>alert(9)</script>"></iframe>',
    '<form action="javascript:alert(10)"><button>submit</button></form>',
    '<button formaction="javascript:alert(11)">b</button>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(12)">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<base href="https://evil.example/">',
    '<object data="javascript:alert(13)"></object>',
    '<embed src="javascript:alert(14)">',
    "<details open ontoggle=alert(15)><summary>s</summary></details>",
    '<div style="background:url(https://evil.example/bg.png)">styled</div>',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    "<style>@import url(https://evil.example/y.css);</style>",
    '<a href="javascript:alert(16)" onclick="alert(17)">click me</a>',
    '<a href="https://example.org/ok" onmouseover="alert(18)">a plain link</a>',
    '<input autofocus onfocus="alert(19)">',
    '<video><source onerror="alert(20)"></video>',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    "<!--><img src=x onerror=alert(21)>-->",
    '<noscript><p title="</noscript><img src=x onerror=alert(22)>"></noscript>',
]


def _markdown_links() -> str:
    inline = [f"[inline {k}]({url})" for k, url in enumerate(LINK_SPELLINGS)]
    angle = [f"[angle {k}](<{url}>)" for k, url in enumerate(LINK_SPELLINGS)]
    auto = [f"<{url}>" for url in LINK_SPELLINGS if " " not in url]
    refs = [f"[ref {k}][r{k}]" for k in range(len(LINK_SPELLINGS))]
    defs = [f"[r{k}]: {url}" for k, url in enumerate(LINK_SPELLINGS)]
    images = [f"![image {k}]({url})" for k, url in enumerate(LINK_SPELLINGS)]
    raw = [f'<a href="{url}">raw {k}</a>' for k, url in enumerate(LINK_SPELLINGS + RAW_SPELLINGS)]
    return "\n\n".join(
        [
            "# Links",
            " ".join(inline),
            " ".join(angle),
            " ".join(auto),
            " ".join(refs),
            " ".join(images),
            " ".join(raw),
            "[a plain link](https://example.org/page) and <mailto:someone@example.org>",
            "\n".join(defs),
        ]
    )


@case("markdown_links", "script")
def _(course):
    return _with_cells(course, [_markdown(_markdown_links())])


@case("markdown_active_html", "script")
def _(course):
    cells = [_markdown(h) for h in ACTIVE_HTML]
    cells.append(_markdown("Inline: " + " ".join(ACTIVE_HTML)))
    cells.append(_markdown("```python\nx = 1\n\ny = '<script>alert(1)</script>'\n```"))
    return _with_cells(course, cells)


@case("markdown_attachments", "script")
def _(course):
    svg = "PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIG9ubG9hZD0iYWxlcnQoMSkiLz4="
    cell = _markdown(
        "![svg](attachment:evil.svg) ![missing](attachment:missing.png) "
        '![html](attachment:page.html) <img src="attachment:evil.svg">',
        attachments={
            "evil.svg": {"image/svg+xml": svg},
            "page.html": {"text/html": "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="},
        },
    )
    return _with_cells(course, [cell])


@case("raw_cells_as_html", "script")
def _(course):
    cells = []
    for meta in ({"raw_mimetype": "text/html"}, {"format": "text/html"}, {}):
        cell = nbformat.v4.new_raw_cell("<script>alert(1)</script><img src=x onerror=alert(2)>")
        cell.metadata.update(meta)
        cells.append(cell)
    return _with_cells(course, cells)


_DISPLAY = "from IPython.display import display, HTML, Markdown, SVG, Latex, Javascript\n"


@case("html_outputs", "script")
def _(course):
    source = _DISPLAY + "".join(
        f"display(HTML({h!r}))\ndisplay({{'text/html': {h!r}, 'text/plain': 'p'}}, raw=True)\n"
        for h in ACTIVE_HTML
    )
    return _with_cells(course, [_code(source)])


@case("markdown_outputs", "script")
def _(course):
    text = _markdown_links() + "\n\n" + "\n\n".join(ACTIVE_HTML)
    source = (
        _DISPLAY + f"display(Markdown({text!r}))\n"
        f"display({{'text/markdown': {text!r}}}, raw=True)\n"
        "display({'text/markdown': '![a](attachment:x.png)'}, raw=True)\n"
    )
    return _with_cells(course, [_code(source)])


@case("svg_latex_script_outputs", "script")
def _(course):
    source = (
        _DISPLAY + 'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
        "<script>alert(2)</script></svg>'))\n"
        "display({'image/svg+xml': '<svg onload=alert(3)/>'}, raw=True)\n"
        "display(Javascript('alert(4)'))\n"
        "display({'application/javascript': 'alert(5)'}, raw=True)\n"
        "display(Latex('</div><script>alert(6)</script>'))\n"
        "display({'text/latex': '<img src=x onerror=alert(7)>'}, raw=True)\n"
        "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'x'}}, raw=True)\n"
        "display({'image/png': '\" onerror=\"alert(8)', 'text/plain': 'p'}, raw=True)\n"
        "display({'image/png': 'iVBORw0KGgo='}, metadata={'filenames': {'image/png': "
        "'javascript:alert(9)'}, 'width': '1 onerror=alert(10)'}, raw=True)\n"
        "print('<script>alert(11)</script>')\n"
        "'<img src=x onerror=alert(12)>'\n"
    )
    return _with_cells(course, [_code(source)])


@case("error_output_html", "script")
def _(course):
    return _with_cells(
        course, [_code("raise ValueError('<img src=x onerror=alert(1)><script>alert(2)</script>')")]
    )


@case("widget_state", "script")
def _(course):
    source = (
        "from ipykernel.comm import Comm\n"
        "state = {'_model_module': 'https://evil.example/widget.js', '_model_name': 'M',\n"
        "         '_view_module': 'https://evil.example/widget.js', '_view_name': 'V'}\n"
        "c = Comm(target_name='jupyter.widget', data={'state': state, 'buffer_paths': []})\n"
        "c.send({'method': 'update', 'state': state, 'buffer_paths': []})\n"
        "from IPython.display import display\n"
        "display({'application/vnd.jupyter.widget-view+json': {'model_id': c.comm_id,\n"
        "         'version_major': 2, 'version_minor': 0}, 'text/plain': 'w'}, raw=True)\n"
    )
    return _with_cells(course, [_code(source)])


# -- Bounded work --------------------------------------------------------------------------------


@case("markdown_nesting_bomb", "bounded")
def _(course):
    return _with_cells(course, [_markdown("<div>" * 40_000) for _ in range(12)])


@case("output_nesting_bomb", "bounded")
def _(course):
    cell = _DISPLAY + "for _ in range(8):\n    display(HTML('<div>' * 12_000))\n"
    markdown = _DISPLAY + "display(Markdown('> ' * 2_000 + '<div>' * 12_000))\n"
    return _with_cells(course, [_code(cell) for _ in range(20)] + [_code(markdown)])


@case("huge_cell_count", "bounded", expect="failed", reason="cells, over the limit of 1000")
def _(course):
    nb = correct(course, A)
    nb.cells.extend(nbformat.v4.new_markdown_cell("") for _ in range(150_000))
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat_minor = 4
    return nb


@case("output_flood", "bounded")
def _(course):
    # 70 outputs of 1 MB, each a message of its own: more than the job keeps while the notebook
    # runs (64 MB).
    source = (
        "from IPython.display import display\n"
        "for _ in range(70):\n"
        "    display({'text/plain': 'x' * 1_000_000}, raw=True)\n"
    )
    return _with_cells(course, [_code(source)])


@case("one_huge_message", "bounded")
def _(course):
    # One 8 MB message: its text is cut to 1 MB as it is read, then to the output limits.
    source = "import sys\nsys.stdout.write('y' * 8_000_000)\nsys.stdout.flush()\n"
    return _with_cells(course, [_code(source)])


# -- Notebooks the kernel could make invalid ---------------------------------------------------

# Sends a message on the kernel's output channel as the cell's own; ``send_json`` sends content
# already packed as JSON, whose escapes may spell characters no UTF-8 text can hold.
_SEND = (
    "import json\n"
    "k = get_ipython().kernel\n"
    "def send(kind, content):\n"
    "    k.session.send(k.iopub_socket, kind, content, parent=k.get_parent('shell'),\n"
    "                   ident=k._topic(kind))\n"
    "def send_json(kind, content):\n"
    "    send(kind, json.dumps(content).encode('ascii'))\n"
)


@case("execution_count_html", "invalid")
def _(course):
    source = _SEND + (
        "send('execute_input', {'code': '', 'execution_count': '<img src=x onerror=alert(1)>'})\n"
        "send('execute_result', {'data': {'text/plain': 'r'}, 'metadata': {},\n"
        "     'execution_count': '<script>alert(2)</script>'})\n"
        "send('execute_result', {'data': {'text/plain': 'r'}, 'metadata': {},\n"
        "     'execution_count': -5})\n"
    )
    return _with_cells(course, [_code(source)])


@case("schema_violations", "invalid")
def _(course):
    source = _SEND + (
        "send('display_data', {'data': {'text/plain': ['a', 1]}, 'metadata': {}})\n"
        "send('display_data', {'data': 'not a bundle', 'metadata': {}})\n"
        "send('display_data', {'data': {'text/html': {'nested': 1}}, 'metadata': 7})\n"
        "send('stream', {'name': 'stdout', 'text': ['a', 2]})\n"
        "send('stream', {'name': 5, 'text': 'x'})\n"
        "send('error', {'ename': 1, 'evalue': None, 'traceback': 'not a list'})\n"
        "send('execute_result', {'data': {}, 'metadata': {}})\n"
        "send('made_up_output', {'data': {}})\n"
        "send('update_display_data', {'data': 3, 'transient': {'display_id': 'd'}})\n"
    )
    return _with_cells(course, [_code(source)])


@case("execution_count_attribute", "invalid")
def _(course):
    return _with_cells(course, [_code("get_ipython().execution_count = '<b>count</b>'\n")])


# -- Characters no file can hold ---------------------------------------------------------------

SURROGATES = "\ud800 \udc80 \udfff \udbff"


@case("surrogate_outputs", "surrogate")
def _(course):
    # Messages packed by the cell itself (a kernel's own packer refuses lone surrogates), then
    # the ordinary ways to print them, each in a cell of its own (each may raise in the kernel).
    packed = _SEND + (
        f"s = {SURROGATES!r}\n"
        "send_json('stream', {'name': 'stdout', 'text': s})\n"
        "send_json('stream', {'name': 'stderr', 'text': s})\n"
        "send_json('display_data', {'data': {'text/plain' + s: s, 'text/html': s,\n"
        "          'text/markdown': s, 'text/latex': s}, 'metadata': {s: s}})\n"
        "send_json('execute_result', {'data': {'text/plain': s}, 'metadata': {s: s},\n"
        "          'execution_count': 3})\n"
        "send_json('error', {'ename': s, 'evalue': s, 'traceback': [s]})\n"
    )
    ordinary = [
        f"print({SURROGATES!r})",
        f"import sys\nsys.stderr.write({SURROGATES!r})",
        "from IPython.display import display, Markdown\n"
        f"display({{'text/plain': {SURROGATES!r}, 'text/html': '<b>\\udc80</b>'}}, raw=True)",
        f"from IPython.display import Markdown\nMarkdown({SURROGATES!r})",
        f"raise ValueError({SURROGATES!r})",
        f"{SURROGATES!r}",
    ]
    return _with_cells(course, [_code(packed)] + [_code(source) for source in ordinary])


@case("surrogate_markdown", "surrogate")
def _(course):
    return _with_cells(
        course, [_markdown(f"text {SURROGATES} [x](https://example.org/{SURROGATES})")]
    )


@case("surrogate_answer", "surrogate")
def _(course):
    nb = correct(course, A)
    cell = _cells(nb, STEP)[0]
    cell.source += f"\n# {SURROGATES}\n_note = {SURROGATES!r}\n"
    return nb


# -- Learner ids display cleaning would merge --------------------------------------------------

ID_PAIRS = [
    ("casey", "casey\u00a0"),
    ("drew", "drew\u2003"),
    ("emery" + "m" * 80 + "_a", "emery" + "m" * 80 + "_b"),
    ("+frank", "'+frank"),
]
for _k, (_plain, _twin) in enumerate(ID_PAIRS):
    # The plain one solves everything; its look-alike twin nothing: each must keep its own.
    case(f"id_plain_{_k}", "ids", student=_plain)(lambda course: correct(course, A))
    case(f"id_twin_{_k}", "ids", score=0.0, student=_twin)(
        lambda course: fill(course.release(A), {STEP: WRONG_STEP, SEQUENCE: WRONG_SEQUENCE})
    )


# -- The run -------------------------------------------------------------------------------------


def _student(c: Case) -> str:
    return c.student or f"r{CASES.index(c):02d}_{c.name}"


def _follower(c: Case) -> str:
    return f"r{CASES.index(c):02d}z_correct"


def _by_name(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = Course.create(tmp_path_factory.mktemp("rendering") / "course", (A,), release=True)
    for c in CASES:
        course.submit(_follower(c), A, correct(course, A))
        course.submit(_student(c), A, BUILDERS[c.name](course))
    run = course.classgrade(
        "grade",
        "--workers",
        "2",
        "--cell-seconds",
        "60",
        "--notebook-seconds",
        "300",
        "--max-notebook-mb",
        "20",
        "--quiet",
    )
    feedback = course.nbgrader("generate_feedback", A, check=False)
    return course, run, feedback


def _entry(course, student: str) -> dict:
    return course.journal()[f"{A}/{student}"]


def test_the_run_finished(graded):
    _course, run, _feedback = graded
    assert "Graded" in run.stdout, run.stderr[-3000:]


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_case_outcome(graded, c):
    course, _run, _ = graded
    entry = _entry(course, _student(c))
    if c.expect == "failed":
        assert entry["status"] == "failed", entry
        assert c.reason in entry["reason"], entry
        assert not course.has_submission(_student(c), A)
    else:
        assert entry["status"] == "graded", entry
        assert entry["score"] == pytest.approx(full() if c.score is None else c.score), entry


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_correct_submission_after_each_case_scores_full(graded, c):
    course, _run, _ = graded
    entry = _entry(course, _follower(c))
    assert entry["status"] == "graded", entry
    assert entry["score"] == pytest.approx(full()), entry


def _graded_cases() -> list[Case]:
    return [c for c in CASES if c.expect == "graded"]


def _notebook(course, c: Case) -> dict:
    return json.loads(course.autograded(_student(c), A).read_text(encoding="utf-8"))


@pytest.mark.parametrize("c", _graded_cases(), ids=lambda c: c.name)
def test_autograded_notebook_is_valid_and_keeps_no_foreign_metadata(graded, c):
    course, _run, _ = graded
    nb = _notebook(course, c)
    nbformat.validate(nb)  # raises on any schema violation
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}, nb["metadata"]
    assert nb["metadata"]["language_info"] == {"name": "python"}
    for cell in nb["cells"]:
        assert set(cell["metadata"]) <= {"nbgrader", "editable", "deletable"}, cell["metadata"]
        assert "attachments" not in cell
        count = cell.get("execution_count")
        assert count is None or isinstance(count, int)
        for output in cell.get("outputs", []):
            assert output.get("metadata", {}) == {} or output["output_type"] == "stream"
    # No temporary folder left beside it.
    assert not list((course.path / "autograded" / _student(c)).glob(".*classgrade-tmp"))


def test_no_temporary_folder_is_left_anywhere(graded):
    course, _run, _ = graded
    assert not list((course.path / "autograded").glob("*/.*classgrade-tmp"))


def _markdown_sources(nb: dict) -> list[str]:
    return [
        "".join(cell["source"])
        for cell in nb["cells"]
        if cell["cell_type"] == "markdown"
        and not cell["metadata"].get("nbgrader", {}).get("locked")
    ]


def test_nesting_bombs_are_shown_as_text_not_parsed(graded):
    course, _run, _ = graded
    nb = _notebook(course, _by_name("markdown_nesting_bomb"))
    bombs = [s for s in _markdown_sources(nb) if "&lt;div&gt;" in s]
    assert len(bombs) == 12
    assert all("nested too deeply" in s and "<div><div>" not in s for s in bombs)
    nb = _notebook(course, _by_name("output_nesting_bomb"))
    html = [
        "".join(o["data"]["text/html"])
        for cell in nb["cells"]
        for o in cell.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    assert len(html) >= 20 * 8 // 2  # capped per cell, not dropped wholesale
    assert all("nested too deeply" in h and "<div><div>" not in h for h in html)


def _text_of(nb: dict) -> str:
    return json.dumps(nb, ensure_ascii=False)


def test_floods_are_bounded_and_noted(graded):
    course, _run, _ = graded
    text = _text_of(_notebook(course, _by_name("output_flood")))
    assert "further outputs dropped" in text
    assert course.autograded(_student(_by_name("output_flood")), A).stat().st_size < 10_000_000
    huge = course.autograded(_student(_by_name("one_huge_message")), A)
    assert huge.stat().st_size < 10_000_000
    text = huge.read_text(encoding="utf-8")
    assert "y" * 200_000 not in text
    # The 8 MB text was cut to 1 MB as it was read, before the output caps cut it further.
    sizes = [int(n) for n in re.findall(r"output of (\d+) bytes cut", text)]
    assert sizes, text[-2000:]
    assert all(n < 1_100_000 for n in sizes), sizes


def _outputs_and_counts(nb: dict) -> str:
    """What the kernel put in the notebook (not the code the learner wrote)."""
    return json.dumps(
        [
            (cell.get("execution_count"), cell.get("outputs", []))
            for cell in nb["cells"]
            if cell["cell_type"] == "code"
        ],
        ensure_ascii=False,
    )


def _html_outputs(nb: dict) -> str:
    return "\n".join(
        "".join(output["data"]["text/html"])
        for cell in nb["cells"]
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {})
    )


def test_invalid_counts_and_outputs_are_repaired(graded):
    course, _run, _ = graded
    for name in ("execution_count_html", "schema_violations", "execution_count_attribute"):
        nb = _notebook(course, _by_name(name))
        for cell in nb["cells"]:
            counts = [cell.get("execution_count")]
            counts += [o.get("execution_count") for o in cell.get("outputs", [])]
            assert all(n is None or type(n) is int for n in counts), (name, counts)
        _assert_inert(_html_outputs(nb), name)
    text = _outputs_and_counts(_notebook(course, _by_name("schema_violations")))
    assert "breaks the notebook format" in text


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_surrogates_are_replaced_and_the_text_kept(graded):
    course, _run, _ = graded
    for name in ("surrogate_outputs", "surrogate_markdown", "surrogate_answer"):
        nb = json.loads(course.autograded(_student(_by_name(name)), A).read_bytes())
        strings = list(_strings(nb))
        for text in strings:
            text.encode("utf-8")  # raises on an unpaired surrogate
        assert any("\ufffd" in text for text in strings), name
    outputs = _outputs_and_counts(_notebook(course, _by_name("surrogate_outputs")))
    assert outputs.count("\ufffd") >= 20  # every kind of output kept its text


INERT_TAGS = set(
    "a abbr b blockquote br caption code col colgroup dd del details div dl dt em figcaption "
    "figure h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strong sub "
    "summary sup table tbody td tfoot th thead tr u ul var".split()
)


def _assert_inert(text: str, where: str) -> None:
    """Every element of ``text`` (as a tolerant parser reads it) is on the allow-list, with no
    handler, no style, and no URL a browser would run or fetch."""
    from html.parser import HTMLParser

    found = []

    class Elements(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

        handle_startendtag = handle_starttag

    parser = Elements(convert_charrefs=True)
    parser.feed(text)
    parser.close()
    for tag, attrs in found:
        assert tag in INERT_TAGS, (where, tag)
        for name, value in attrs.items():
            assert not name.startswith("on"), (where, tag, name)
            assert name != "style", (where, tag)
            if name == "href":
                assert _browser_scheme(value or "") in ("", "http", "https", "mailto"), (
                    where,
                    value,
                )
            if name == "src":
                assert (value or "").startswith(
                    ("data:image/png;base64,", "data:image/jpeg;base64,")
                ), (where, value)


def test_no_active_content_is_stored(graded):
    """Nothing stored in the autograded notebooks could run when rendered as it is."""
    course, _run, _ = graded
    for c in _graded_cases():
        nb = _notebook(course, c)
        _assert_inert("\n".join(_markdown_sources(nb)), c.name)
        _assert_inert(_html_outputs(nb), c.name)
        for cell in nb["cells"]:
            for output in cell.get("outputs", []):
                assert set(output.get("data", {})) <= {
                    "text/plain",
                    "text/html",
                    "text/latex",
                    "image/png",
                    "image/jpeg",
                }, output


def _browser_scheme(url: str) -> str:
    """The scheme a browser reads: it strips leading controls and spaces, drops tabs and
    newlines anywhere, and ignores case."""
    squeezed = re.sub(r"[\t\n\r]", "", url).lstrip("".join(map(chr, range(0x21))))
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", squeezed)
    return match.group(1).lower() if match else ""


def _export(course) -> dict[str, dict]:
    out = course.path / "grades.csv"
    done = course.classgrade("export", "--to", str(out))
    assert done.returncode == 0, done.stderr
    with open(out, newline="", encoding="utf-8") as f:
        return {r["student"]: r for r in csv.DictReader(f) if r["assignment"] == A}


def _unescape(cell: str) -> str:
    """What an LMS import does with an exported id: the guide's two rules undone."""
    text = cell[1:] if cell.startswith("'") else cell
    return text.encode("ascii", "backslashreplace").decode("unicode_escape")


def test_lookalike_ids_export_apart_with_their_own_scores(graded):
    course, _run, _ = graded
    rows = _export(course)
    by_id = {_unescape(cell): row for cell, row in rows.items()}
    for plain, twin in ID_PAIRS:
        assert float(by_id[plain]["score"]) == full(), by_id[plain]
        assert float(by_id[twin]["score"]) == 0.0, by_id[twin]
    assert len(rows) == len({_unescape(cell) for cell in rows})


def test_lookalike_ids_show_apart_in_status(graded):
    course, _run, _ = graded
    done = course.classgrade("status")
    assert done.returncode == 0, done.stderr
    firsts = [line.split(" ", 1)[1].split()[0] for line in done.stdout.splitlines()]
    assert len(firsts) == len(set(firsts))


# -- The pages, in a browser -------------------------------------------------------------------


def _formgrader_page(course, student: str) -> str:
    """formgrader's view of an autograded notebook: its exporter and template, as it serves
    them (nbgrader.server_extensions.formgrader: SubmissionHandler)."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    config = Config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    resources = {
        "assignment_id": A,
        "notebook_id": A,
        "submission_id": "1",
        "index": 0,
        "total": 1,
        "base_url": "",
        "student": student,
        "last_name": None,
        "first_name": None,
        "notebook_path": f"autograded/{student}/{A}/{A}.ipynb",
    }
    html, _ = HTMLExporter(config=config).from_filename(
        str(course.autograded(student, A)), resources=resources
    )
    return html


def _plain_page(course, student: str) -> str:
    """``jupyter nbconvert --to html`` of the autograded notebook."""
    from nbconvert.exporters import HTMLExporter

    html, _ = HTMLExporter().from_filename(str(course.autograded(student, A)))
    return html


_INIT = """
window.__calls = [];
for (const name of ['alert', 'confirm', 'prompt', 'print', 'open']) {
  window[name] = (...args) => { window.__calls.push(name + ': ' + args.join(',')); };
}
document.addEventListener('click', (event) => {
  const link = event.target.closest && event.target.closest('a[href]');
  // A link to a web page or a mail address is let be (not followed in the test); any other
  // link keeps its default action, so a script URL would run.
  if (link && /^(https?|mailto):/i.test(link.href)) event.preventDefault();
}, true);
"""


def _visit(browser, html: str) -> dict:
    """Load ``html`` as if served at ``PAGE_URL``, click every link; what happened."""
    seen = {"calls": [], "dialogs": [], "requests": [], "navigations": [], "popups": []}
    context = browser.new_context()
    context.add_init_script(_INIT)

    def route(request_route):
        url = request_route.request.url
        if url == PAGE_URL:
            request_route.fulfill(status=200, content_type="text/html", body=html)
        else:
            seen["requests"].append(url)
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    context.on("page", lambda p: seen["popups"].append(p.url))  # any page but this one
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on(
        "framenavigated",
        lambda frame: (
            seen["navigations"].append(frame.url)
            if frame.url.split("#")[0] not in (PAGE_URL, "about:blank", "about:srcdoc")
            else None
        ),
    )
    page.goto(PAGE_URL, wait_until="load", timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)
    seen["dom"] = page.evaluate(
        """() => {
        const all = [...document.querySelectorAll('*')];
        return {
          scripts: document.querySelectorAll('script').length,
          handlers: all.filter(e => [...e.attributes].some(a => /^on/i.test(a.name))).length,
          active: document.querySelectorAll(
            'iframe, frame, object, embed, form, meta[http-equiv], base, link[rel=import]').length,
          // Every URL in the page as the browser resolves it: [protocol, its start].
          urls: all.flatMap(e => ['href', 'src', 'action', 'formaction', 'xlink:href', 'data']
            .map(n => e.getAttribute(n)).filter(v => v !== null)
            .map(v => {
              try { return [new URL(v, document.baseURI).protocol, v.slice(0, 40)]; }
              catch (error) { return ['invalid', v.slice(0, 40)]; }
            })),
          links: document.querySelectorAll('a[href]').length,
        };
      }"""
    )
    for index in range(seen["dom"]["links"]):
        link = page.locator("a[href]").nth(index)
        if link.is_visible():  # a real click, wherever the link is drawn
            link.click(force=True, no_wait_after=True, timeout=TIMEOUT_MS)
        else:
            link.dispatch_event("click")
    page.wait_for_timeout(300)
    if page.url.split("#")[0] == PAGE_URL:
        seen["calls"] = page.evaluate("window.__calls")
    else:
        seen["navigations"].append(page.url)
    context.close()
    return seen


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def _pages(course, student: str) -> dict[str, str]:
    feedback = course.feedback(student, A)
    return {
        "feedback": feedback.read_text(encoding="utf-8"),
        "formgrader": _formgrader_page(course, student),
        "nbconvert": _plain_page(course, student),
    }


def test_feedback_was_written_for_every_graded_submission(graded):
    course, _run, feedback = graded
    assert feedback.returncode == 0, (feedback.stdout + feedback.stderr)[-3000:]
    for c in _graded_cases():
        assert course.feedback(_student(c), A).is_file(), c.name


@pytest.fixture(scope="module")
def reference_pages(graded, browser):
    """The same pages for a correct submission: what the templates themselves do."""
    course, _run, _ = graded
    return {
        kind: _visit(browser, html)
        for kind, html in _pages(course, _follower(_by_name("markdown_links"))).items()
    }


@pytest.mark.parametrize(
    "c", [c for c in _graded_cases() if c.threat != "ids"], ids=lambda c: c.name
)
def test_no_page_runs_script_requests_or_navigates(graded, browser, reference_pages, c):
    course, _run, _ = graded
    for kind, html in _pages(course, _student(c)).items():
        seen = _visit(browser, html)
        reference = reference_pages[kind]
        where = (c.name, kind)
        assert seen["calls"] == [], where
        assert seen["dialogs"] == [], where
        assert seen["popups"] == [], where
        assert seen["navigations"] == [], where
        # Requests: only those the template itself makes (its scripts and styles).
        assert set(seen["requests"]) <= set(reference["requests"]), where
        dom, ref = seen["dom"], reference["dom"]
        assert dom["scripts"] <= ref["scripts"], where
        assert dom["handlers"] <= ref["handlers"], where
        assert dom["active"] <= ref["active"], where
        for protocol, start in dom["urls"]:
            assert protocol in ("http:", "https:", "mailto:", "invalid") or start.startswith(
                ("data:image/png;base64,", "data:image/jpeg;base64,")
            ), (where, protocol, start)


def test_the_browser_check_sees_an_unsanitised_page(graded, browser, reference_pages):
    """The check itself can fail: the learner's raw links and HTML, rendered without
    classgrade's sanitising, are caught."""
    raw = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(_markdown_links() + "\n\n" + "\n".join(ACTIVE_HTML))]
    )
    from nbconvert.exporters import HTMLExporter

    html, _ = HTMLExporter().from_notebook_node(raw)
    seen = _visit(browser, html)
    assert seen["calls"] or seen["dialogs"] or seen["navigations"]
    assert set(seen["requests"]) - set(reference_pages["nbconvert"]["requests"])
    # The links alone: only clicking them runs anything, and the clicks are seen.
    links = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(_markdown_links())])
    html, _ = HTMLExporter().from_notebook_node(links)
    seen = _visit(browser, html)
    assert any(call.startswith("alert") for call in seen["calls"]), seen
    assert any(protocol == "javascript:" for protocol, _ in seen["dom"]["urls"])


def test_widget_state_is_not_kept(graded):
    course, _run, _ = graded
    c = _by_name("widget_state")
    nb = _notebook(course, c)
    assert "widgets" not in nb["metadata"]
    assert "evil.example" not in _outputs_and_counts(nb)
    assert "widget-view" not in _outputs_and_counts(nb)
    assert "widget-state" not in _plain_page(course, _student(c))


def test_every_case_class_is_covered():
    threats = {c.threat for c in CASES}
    assert threats == {"script", "bounded", "invalid", "surrogate", "ids"}
    assert len([c for c in CASES if c.threat == "script"]) >= 8
