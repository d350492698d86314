"""The chapters' own modules (book/*.py) travel inside the generated chapter notebooks.

scripts/sync_chapter_notebooks.py puts a copy of each module a chapter imports in a code cell
before the first cell that imports it; the corpus module's copy carries the course's pages.
"""

import base64
import json
import lzma
import shutil
import sys

import nbformat
import pytest
from chapter_notebook_sync import NOTEBOOK_HEADER as HEADER
from chapter_notebook_sync import sync_chapter_notebooks
from paths import ROOT


def code_cell(source: str) -> str:
    return f"```{{code-cell}} ipython3\n{source}\n```\n\n"


@pytest.fixture
def course(tmp_path):
    """A repository whose chapter imports book/helpers.py, which imports book/colours.py."""
    book = tmp_path / "book"
    book.mkdir()
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/example/course\n  branch: main\n",
        encoding="utf-8",
    )
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/chapter\nparts:\n  - chapters:\n      - file: book/other\n",
        encoding="utf-8",
    )
    (book / "colours.py").write_text('"""Colours."""\n\nINK = "0.15"\n', encoding="utf-8")
    (book / "helpers.py").write_text(
        '"""Helpers."""\n\nfrom colours import INK\n\n\ndef ink():\n    return INK\n',
        encoding="utf-8",
    )
    (book / "unused.py").write_text('"""Not imported by any chapter."""\n', encoding="utf-8")
    (book / "chapter.md").write_text(
        HEADER
        + "(chapter)=\n# Chapter\n\n"
        + code_cell("x = 1")
        + "Text.\n\n"
        + code_cell("from helpers import ink\n\nprint(ink())")
        + code_cell("import helpers"),
        encoding="utf-8",
    )
    (book / "other.md").write_text("(other)=\n# Other\n\n你好。\n", encoding="utf-8")
    return tmp_path


def reading_the_corpus(course):
    """The course's chapter, now also reading the pages through the real corpus module."""
    shutil.copy(ROOT / "book" / "course_corpus.py", course / "book" / "course_corpus.py")
    chapter = course / "book" / "chapter.md"
    chapter.write_text(
        chapter.read_text(encoding="utf-8")
        + code_cell("from course_corpus import course_pages\n\npages = course_pages()"),
        encoding="utf-8",
    )
    return chapter


@pytest.fixture
def fresh_modules():
    """Module names the test defines in sys.modules, removed afterwards."""
    names = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


def run_code_cells(notebook, fresh_modules) -> dict:
    """Run the notebook's code cells in one namespace, as a kernel would (no magics here)."""
    fresh_modules += ["colours", "helpers", "course_corpus"]
    namespace: dict = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, cell.id, "exec"), namespace)
    return namespace


def test_each_module_is_carried_once_before_its_first_import(course, fresh_modules):
    notebook = sync_chapter_notebooks.chapter_notebook(course / "book" / "chapter.md", course)
    nbformat.validate(notebook)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert code[0] == "x = 1"
    # The module that helpers imports comes first.
    assert 'types.ModuleType("colours")' in code[1]
    assert 'types.ModuleType("helpers")' in code[2]
    assert code[3].startswith("from helpers import ink")
    assert code[4] == "import helpers"
    assert not any("unused" in source for source in code)
    assert "book/helpers.py" in code[2]

    namespace = run_code_cells(notebook, fresh_modules)
    assert namespace["ink"]() == "0.15"
    assert sys.modules["helpers"].__file__ == "helpers.py"


def test_a_module_a_raw_string_cannot_carry_is_an_error(course):
    helpers = course / "book" / "helpers.py"
    helpers.write_text("TEXT = '''quoted'''\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"book/helpers\.py cannot be carried"):
        sync_chapter_notebooks.chapter_notebook(course / "book" / "chapter.md", course)


def test_the_corpus_module_carries_the_other_pages(course, fresh_modules):
    chapter = reading_the_corpus(course)
    (course / "book" / "third.md").write_text("# Third\n\n第三。\n", encoding="utf-8")
    notebook = sync_chapter_notebooks.chapter_notebook(chapter, course)
    carrier = [
        cell.source for cell in notebook.cells if 'ModuleType("course_corpus")' in cell.source
    ]
    assert len(carrier) == 1
    assert "EMBEDDED_PAGES: str | None = None" not in carrier[0]

    namespace = run_code_cells(notebook, fresh_modules)
    expected = {
        name: (course / "book" / name).read_text(encoding="utf-8")
        for name in ("other.md", "third.md")
    }
    assert namespace["pages"] == expected
    # Where nothing is carried, the module reads the files of book/.
    from_files = sync_chapter_notebooks.load_module(ROOT / "book" / "course_corpus.py")
    on_disk = from_files.course_pages(exclude={"sequence-tasks"})
    assert set(on_disk) == {p.name for p in (ROOT / "book").glob("*.md")} - {"sequence-tasks.md"}


def test_an_edited_page_refreshes_the_corpus_without_making_the_notebook_stale(
    course, fresh_modules
):
    chapter = reading_the_corpus(course)
    assert sync_chapter_notebooks.sync(course) == ["notebooks/chapter.ipynb"]
    other = course / "book" / "other.md"
    other.write_text("# Other\n\n改过了。\n", encoding="utf-8")
    assert sync_chapter_notebooks.stale_notebooks(course) == []
    assert sync_chapter_notebooks.sync(course) == ["notebooks/chapter.ipynb"]
    notebook = nbformat.read(course / "notebooks" / "chapter.ipynb", as_version=4)
    assert run_code_cells(notebook, fresh_modules)["pages"]["other.md"] == "# Other\n\n改过了。\n"
    # A change to the chapter's code is a stale notebook, as before.
    chapter.write_text(chapter.read_text(encoding="utf-8") + code_cell("y = 2"), encoding="utf-8")
    assert sync_chapter_notebooks.stale_notebooks(course) == ["notebooks/chapter.ipynb"]


def test_the_corpus_line_must_be_there_to_be_replaced(course):
    (course / "book" / "course_corpus.py").write_text("EMBEDDED_PAGES = None\n", encoding="utf-8")
    chapter = course / "book" / "chapter.md"
    chapter.write_text(
        chapter.read_text(encoding="utf-8") + code_cell("import course_corpus"), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="must hold the line"):
        sync_chapter_notebooks.chapter_notebook(chapter, course)


def test_packed_pages_round_trip_and_bad_ones_are_refused():
    corpus = sync_chapter_notebooks.load_module(ROOT / "book" / "course_corpus.py")
    pages = {"b.md": "第二页\n", "a.md": "# A\n"}
    assert corpus.unpack(corpus.pack(pages)) == pages
    assert corpus.pack(pages) == corpus.pack(dict(reversed(pages.items())))
    a_list = base64.b64encode(lzma.compress(json.dumps(["a.md"]).encode())).decode()
    with pytest.raises(ValueError, match="does not hold"):
        corpus.unpack(a_list)
