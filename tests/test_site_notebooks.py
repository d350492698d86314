"""The generator of the chapters' Colab/Binder notebooks (scripts/sync_chapter_notebooks.py)."""

import json

import nbformat
import pytest
from chapter_notebook_sync import NOTEBOOK_HEADER as HEADER
from chapter_notebook_sync import sync_chapter_notebooks


@pytest.fixture
def course(tmp_path):
    """A minimal repository: _config.yml, _toc.yml and two pages, one of them a notebook."""
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/example/course/\n  branch: dev\n",
        encoding="utf-8",
    )
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/lstm\nparts:\n  - chapters:\n      - file: book/notes\n",
        encoding="utf-8",
    )
    (tmp_path / "book" / "lstm.md").write_text(
        HEADER
        + "(lstm)=\n# LSTM\n\nSee {ref}`the gates <gates>`, {math}`g_f`, "
        + "{download}`练习 <../exercises/lstm/lstm.ipynb>`.\n\n"
        + "```{code-cell} ipython3\nimport numpy as np\n```\n\n"
        + "```{code-cell} ipython3\nfrom rnn_ref import lstm\n```\n",
        encoding="utf-8",
    )
    (tmp_path / "book" / "notes.md").write_text("(notes)=\n# Notes\n\nText.\n", encoding="utf-8")
    return tmp_path


def test_markdown_roles_become_plain_markdown():
    convert = sync_chapter_notebooks.jupyter_markdown
    assert convert("(lstm)=\n# LSTM\n") == "# LSTM\n"
    assert convert("{download}`练习 <../ex/lstm.ipynb>`") == "[练习](../ex/lstm.ipynb)"
    assert convert("{download}`../ex/lstm.ipynb`") == "[../ex/lstm.ipynb](../ex/lstm.ipynb)"
    assert convert("{math}`g_f = 1`") == "$g_f = 1$"
    assert convert("{ref}`遗忘门 <forget-gate>` and {term}`LSTM`") == "遗忘门 and LSTM"
    assert convert("a `literal` stays") == "a `literal` stays"


def test_only_notebook_pages_are_generated(course):
    expected = sync_chapter_notebooks.expected_notebooks(course)
    assert [path.name for path in expected] == ["lstm.ipynb"]


def test_generated_notebook_installs_rnn_ref_before_first_code(course):
    notebook = sync_chapter_notebooks.chapter_notebook(course / "book" / "lstm.md", course)
    nbformat.validate(notebook)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds == ["markdown", "markdown", "code", "code", "code"]
    assert "book/lstm.md" in notebook.cells[0].source
    assert "(lstm)=" not in notebook.cells[1].source
    download = "[练习](https://github.com/example/course/blob/dev/exercises/lstm/lstm.ipynb)"
    assert download in notebook.cells[1].source
    install = notebook.cells[2].source
    assert 'find_spec("rnn_ref") is None' in install
    assert "git+https://github.com/example/course@dev" in install
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert "jupytext" not in notebook.metadata


def test_no_install_cell_without_rnn_ref(course):
    page = course / "book" / "lstm.md"
    page.write_text(page.read_text(encoding="utf-8").replace("from rnn_ref import lstm", "1 + 1"))
    notebook = sync_chapter_notebooks.chapter_notebook(page, course)
    assert not any("rnn_ref" in cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_sync_is_deterministic_and_check_reports_stale(course):
    assert sync_chapter_notebooks.stale_notebooks(course) == ["notebooks/lstm.ipynb"]
    assert sync_chapter_notebooks.sync(course) == ["notebooks/lstm.ipynb"]
    first = (course / "notebooks" / "lstm.ipynb").read_text(encoding="utf-8")
    assert sync_chapter_notebooks.sync(course) == []
    assert (course / "notebooks" / "lstm.ipynb").read_text(encoding="utf-8") == first
    assert all(cell["outputs"] == [] for cell in json.loads(first)["cells"] if "outputs" in cell)

    page = course / "book" / "lstm.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nMore text.\n", encoding="utf-8")
    (course / "notebooks" / "old.ipynb").write_text("{}", encoding="utf-8")
    assert sync_chapter_notebooks.stale_notebooks(course) == [
        "notebooks/lstm.ipynb",
        "notebooks/old.ipynb",
    ]
    sync_chapter_notebooks.sync(course)
    assert not (course / "notebooks" / "old.ipynb").exists()
    assert sync_chapter_notebooks.stale_notebooks(course) == []


def test_missing_toc_page_is_an_error(course):
    (course / "book" / "notes.md").unlink()
    with pytest.raises(FileNotFoundError, match="book/notes"):
        sync_chapter_notebooks.toc_pages(course)


def test_links_to_pages_point_to_their_notebooks(course):
    pages = {course / "book" / "lstm.md": True, course / "book" / "notes.md": False}
    targets = sync_chapter_notebooks.link_targets(pages)
    convert = sync_chapter_notebooks.jupyter_markdown
    assert convert("{doc}`lstm`", targets) == "[LSTM](lstm.ipynb)"
    assert convert("{ref}`lstm`", targets) == "[LSTM](lstm.ipynb)"
    assert convert("{ref}`本章 <lstm>`", targets) == "[本章](lstm.ipynb)"
    assert convert("{doc}`../book/notes`", targets) == "Notes"
    assert convert("{ref}`unknown-label`", targets) == "unknown-label"


# Each generated notebook is run, alone in an empty folder, by test_chapter_notebooks_alone.py.
