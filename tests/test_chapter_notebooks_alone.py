"""Each chapter notebook that Colab and Binder open runs alone, as a learner downloads it.

The site's build runs every chapter that way, once (scripts/execute_chapters.py, before the
build: its report is read here): the notebook generated from the chapter, in an empty folder,
with neither the checkout's folders nor the course's own modules (book/*.py: set-up, diagrams,
the language model's corpus) importable. It must carry all it needs
(scripts/sync_chapter_notebooks.py inlines those modules, and the corpus with them). Only the
installed reference package rnn_ref comes from outside, as Colab installs it in the notebook's
first cell. Nothing is downloaded. A first cell checks all of that; the tests here check that
cell too.
"""

import importlib.util

import nbformat
import pytest
from nbclient import NotebookClient
from paths import ROOT
from script_modules import load_script
from site_fixtures import clean_site_build, notebook_entries, read_notebook

execute_chapters = load_script("execute_chapters")


def _run_probe(folder) -> None:
    """Run the first cell of a chapter's run alone, for a chapter of the course, in ``folder``."""
    probe = execute_chapters.probe_cell(ROOT, ROOT / "book" / "rnn.md")
    notebook = nbformat.v4.new_notebook(cells=[probe])
    NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": folder}}
    ).execute()


@pytest.mark.parametrize(
    ("planted", "complaint"),
    [
        ("course_setup.py", "importable without the notebook"),
        ("notes.txt", "notes.txt"),
    ],
)
def test_the_probe_sees_what_the_notebook_did_not_carry(tmp_path, planted, complaint):
    """The probe would notice a course module, or any file, in the notebook's folder."""
    (tmp_path / planted).write_text("", encoding="utf-8")
    with pytest.raises(Exception, match=complaint):
        _run_probe(tmp_path)


def test_the_probe_sees_the_checkout_on_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "notebooks"))
    with pytest.raises(Exception, match="the checkout is on the path"):
        _run_probe(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("entry", notebook_entries())
def test_chapter_notebook_runs_alone_in_an_empty_folder(entry):
    # rnn_ref is installed here; were it missing, the notebook's first cell would download it.
    assert importlib.util.find_spec("rnn_ref") is not None
    execution = clean_site_build().execution
    assert execution is not None
    run = execution.runs.get(f"{entry}.md")
    assert run is not None, f"{entry} was not run alone:\n{execution.log[-3000:]}"
    assert run["error"] is None, run["error"]


@pytest.mark.slow
@pytest.mark.parametrize("entry", notebook_entries())
def test_the_page_shows_its_run_alone(entry):
    """The page's cells are the notebook's own; nbclient stopped at none (a cell that raises is
    tagged raises-exception, as in the book), so every page cell has run."""
    site = clean_site_build()
    executed = read_notebook(site.executed / f"{entry}.ipynb")
    generated = read_notebook(ROOT / "notebooks" / f"{entry.split('/')[-1]}.ipynb")
    page_code = [cell.source for cell in executed.cells if cell.cell_type == "code"]
    notebook_code = [cell.source for cell in generated.cells if cell.cell_type == "code"]
    assert _in_order(page_code, notebook_code)
    for cell in executed.cells:
        if cell.cell_type == "code" and cell.source.strip():
            assert cell.execution_count is not None, (entry, cell.source[:80])
            if "raises-exception" not in cell.metadata.get("tags", []):
                errors = [o for o in cell.outputs if o.output_type == "error"]
                assert errors == [], (entry, cell.source[:80], errors)


def _in_order(part: list[str], whole: list[str]) -> bool:
    remaining = iter(whole)
    return all(any(item == other for other in remaining) for item in part)
