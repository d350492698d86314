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
from conftest import ROOT
from markdown_it import MarkdownIt
from site_fixtures import toc_entries

CODE_COLUMNS = 76
MARKDOWN = MarkdownIt("commonmark")


def fenced_code(text: str):
    """The bodies of the text's fenced code blocks (```bash, ```{code-block} python, ...)."""
    for token in MARKDOWN.parse(text):
        language = token.info.strip()
        if token.type == "fence" and (not language.startswith("{") or "code-block" in language):
            yield token.content


def shown_code_lines(notebook):
    """(cell number, line) of every code line the page shows."""
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            if "remove-input" not in cell.metadata.get("tags", []):
                for line in cell.source.splitlines():
                    yield number, line
        else:
            for block in fenced_code(cell.source):
                for line in block.splitlines():
                    yield number, line


@pytest.mark.parametrize("entry", toc_entries())
def test_code_lines_fit_the_content_column(entry):
    notebook = jupytext.read(ROOT / f"{entry}.md")
    too_wide = [
        f"cell {number}: {len(line)} columns: {line.strip()[:60]}"
        for number, line in shown_code_lines(notebook)
        if len(line) > CODE_COLUMNS
    ]
    assert too_wide == [], f"{entry}: code wider than {CODE_COLUMNS} columns"


def test_the_width_check_sees_wide_code_but_not_a_removed_cell_or_prose():
    wide = "x = " + "1 + " * 20 + "1"
    assert len(wide) > CODE_COLUMNS
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("y = 1\n" + wide),
        nbformat.v4.new_code_cell(wide, metadata={"tags": ["remove-input"]}),
        nbformat.v4.new_markdown_cell(f"{wide}\n\n```bash\nls\n{wide}\n```\n"),
        nbformat.v4.new_markdown_cell(f"```{{eval-rst}}\n{wide}\n```\n"),
    ]
    assert list(shown_code_lines(notebook)) == [(0, "y = 1"), (0, wide), (2, "ls"), (2, wide)]
