"""The book reads without sideways scrolling: its code fits the content column.

At a 1280-pixel window the theme's content column shows 77 characters of code (measured in
headless Chromium on the built site); tests/test_site_browser.py checks the built pages
themselves. Here the sources are checked, fast: every line of a code cell that the page shows
(all but ``remove-input`` cells; ``hide-input`` cells open on a click) fits in 76 columns.
"""

import jupytext
import nbformat
import pytest
from conftest import ROOT
from site_fixtures import notebook_entries

CODE_COLUMNS = 76


def shown_code_lines(notebook):
    """(cell number, line) of every code line the page shows."""
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "remove-input" not in cell.metadata.get("tags", []):
            for line in cell.source.splitlines():
                yield number, line


@pytest.mark.parametrize("entry", notebook_entries())
def test_code_lines_fit_the_content_column(entry):
    notebook = jupytext.read(ROOT / f"{entry}.md")
    too_wide = [
        f"cell {number}: {len(line)} columns: {line.strip()[:60]}"
        for number, line in shown_code_lines(notebook)
        if len(line) > CODE_COLUMNS
    ]
    assert too_wide == [], f"{entry}: code wider than {CODE_COLUMNS} columns"


def test_the_width_check_sees_a_wide_line_but_not_a_removed_one():
    wide = "x = " + "1 + " * 20 + "1"
    assert len(wide) > CODE_COLUMNS
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("y = 1\n" + wide),
        nbformat.v4.new_code_cell(wide, metadata={"tags": ["remove-input"]}),
        nbformat.v4.new_markdown_cell(wide),
    ]
    assert list(shown_code_lines(notebook)) == [(0, "y = 1"), (0, wide)]
