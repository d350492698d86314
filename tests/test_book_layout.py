"""The book reads without sideways scrolling: its code fits the content column.

At a 1280-pixel window the theme's content column shows 77 characters of code (measured in
headless Chromium on the built site); tests/test_site_browser.py checks the built pages
themselves. Here the sources are checked, fast: every line of code a page shows fits in 76
columns: the code cells (all but ``remove-input`` cells; ``hide-input`` cells open on a
click) and the fenced code blocks of the text (``bash``, ``python``, ``text``, ...).
"""

import jupytext
import nbformat
import pytest
from markdown_it import MarkdownIt
from paths import ROOT
from site_fixtures import toc_entries

CODE_COLUMNS = 76
LIST_INDENT_COLUMNS = 4
MARKDOWN = MarkdownIt("commonmark")


def fenced_code(text: str):
    """(width, body) of the text's fenced code blocks (```bash, ```{code-block} python, ...).

    A block nested in a list item is indented, so its column is narrower by the indent
    (measured: 654 pixels instead of 684, about 3.5 characters).
    """
    lines = text.splitlines()
    for token in MARKDOWN.parse(text):
        language = token.info.strip()
        if token.type == "fence" and (not language.startswith("{") or "code-block" in language):
            opening = lines[token.map[0]]
            nested = len(opening) - len(opening.lstrip())
            yield CODE_COLUMNS - (LIST_INDENT_COLUMNS if nested else 0), token.content


def shown_code_lines(notebook):
    """(cell number, width it has, line) of every code line the page shows."""
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            if "remove-input" not in cell.metadata.get("tags", []):
                for line in cell.source.splitlines():
                    yield number, CODE_COLUMNS, line
        else:
            for width, block in fenced_code(cell.source):
                for line in block.splitlines():
                    yield number, width, line


@pytest.mark.parametrize("entry", toc_entries())
def test_code_lines_fit_the_content_column(entry):
    notebook = jupytext.read(ROOT / f"{entry}.md")
    too_wide = [
        f"cell {number}: {len(line)} columns (of {width}): {line.strip()[:60]}"
        for number, width, line in shown_code_lines(notebook)
        if len(line) > width
    ]
    assert too_wide == [], f"{entry}: code wider than the content column"


def test_the_width_check_sees_wide_code_but_not_a_removed_cell_or_prose():
    wide = "x = " + "1 + " * 20 + "1"
    assert len(wide) > CODE_COLUMNS
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("y = 1\n" + wide),
        nbformat.v4.new_code_cell(wide, metadata={"tags": ["remove-input"]}),
        nbformat.v4.new_markdown_cell(f"{wide}\n\n```bash\nls\n{wide}\n```\n"),
        nbformat.v4.new_markdown_cell(f"```{{eval-rst}}\n{wide}\n```\n"),
        nbformat.v4.new_markdown_cell("1. a step:\n\n   ```bash\n   ls\n   ```\n"),
    ]
    full, nested = CODE_COLUMNS, CODE_COLUMNS - LIST_INDENT_COLUMNS
    assert list(shown_code_lines(notebook)) == [
        (0, full, "y = 1"),
        (0, full, wide),
        (2, full, "ls"),
        (2, full, wide),
        (4, nested, "ls"),
    ]
