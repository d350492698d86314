"""Each chapter notebook that Colab and Binder open runs alone, as a learner downloads it.

A notebook in notebooks/ is run in an empty folder, with neither the checkout's folders nor the
course's own modules (book/*.py: set-up, diagrams, the language model's corpus) importable: it
must carry all it needs (scripts/sync_chapter_notebooks.py inlines those modules, and the corpus
with them). Only the installed reference package rnn_ref comes from outside, as Colab installs it
in the notebook's first cell. Nothing is downloaded. Each notebook runs once per session.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from paths import ROOT
from site_fixtures import notebook_entries

# The build's limit is 60 s per cell (_config.yml); here it only stops a hung notebook.
CELL_TIMEOUT_SECONDS = 180
# What a notebook alone may not find: the course's own modules (the installed package, which
# Colab installs too, is rnn_ref with gradecheck and classgrade), nor the checkout's folders.
NOT_CARRIED = sorted(path.stem for path in (ROOT / "book").glob("*.py"))
CHECKOUT = [str(ROOT), str(ROOT / "book"), str(ROOT / "notebooks")]


def probe_cell() -> nbformat.NotebookNode:
    """A first cell that fails when anything of the checkout is importable or in the folder."""
    return nbformat.v4.new_code_cell(
        "import importlib.util as _util\n"
        "import os as _os\n"
        "import sys as _sys\n"
        f"_found = [n for n in {NOT_CARRIED!r} if _util.find_spec(n) is not None]\n"
        "assert _found == [], f'importable without the notebook: {_found}'\n"
        "assert _os.listdir('.') == [], _os.listdir('.')\n"
        f"_paths = [p for p in _sys.path if _os.path.abspath(p or '.') in {CHECKOUT!r}]\n"
        "assert _paths == [], f'the checkout is on the path: {_paths}'\n"
    )


def test_the_probe_sees_a_course_module(tmp_path):
    """The probe would notice a course module that the notebook did not carry."""
    (tmp_path / "course_setup.py").write_text("", encoding="utf-8")
    notebook = nbformat.v4.new_notebook(cells=[probe_cell()])
    client = NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    with pytest.raises(Exception, match="importable without the notebook"):
        client.execute()


@pytest.mark.slow
@pytest.mark.parametrize("entry", notebook_entries())
def test_chapter_notebook_runs_alone_in_an_empty_folder(entry, tmp_path, monkeypatch):
    # rnn_ref is installed here; were it missing, the notebook's first cell would download it.
    assert importlib.util.find_spec("rnn_ref") is not None
    notebook = nbformat.read(ROOT / "notebooks" / f"{Path(entry).name}.ipynb", as_version=4)
    notebook.cells.insert(0, probe_cell())
    empty = tmp_path / "alone"
    empty.mkdir()
    # The kernel inherits the environment: no extra import path, figures without a display.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_name="python3",
        resources={"metadata": {"path": str(empty)}},
    )
    client.execute()
    # nbclient stops at a cell that raises, except one tagged raises-exception, as in the book.
    for cell in notebook.cells:
        if "raises-exception" not in cell.metadata.get("tags", []):
            errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
            assert errors == [], f"{entry}, cell {cell.get('id')}: {errors}"
