"""The chapters: the structure every chapter follows, their claims, and a quiet run of each page.

The pages back their claims with assertions in their own cells, so running a page checks them.
Each chapter runs once per test session, in the site's clean build (site_fixtures), which fails
on a cell that raises; the run's notebooks are then checked here for quiet and for figures.
"""

import re

import jupytext
import pytest
from paths import ROOT
from site_fixtures import clean_site_build, read_notebook

CHAPTERS = [
    "rnn",
    "bptt",
    "lstm",
    "gru",
    "bidirectional",
    "sequence-tasks",
    "attention",
    "practice",
]
# The exercise each chapter offers; the practice chapter links all of them instead.
EXERCISES = {
    "rnn": ["rnn"],
    "bptt": ["bptt"],
    "lstm": ["lstm"],
    "gru": ["gru"],
    "bidirectional": ["brnn"],
    "sequence-tasks": [],
    "attention": [],
    "practice": ["rnn", "bptt", "lstm", "gru", "brnn"],
}
# How a chapter ends: the chapters that follow the notes compare with the notes' code (BPTT and
# attention are not in the notes), then every chapter has its summary, questions to think about
# (answers in dropdowns), the notebook exercise if it has one, and its references.
NOT_IN_THE_NOTES = {"bptt", "attention"}


def expected_ending(name: str) -> list[str]:
    notes = [] if name in NOT_IN_THE_NOTES else ["与笔记中 TensorFlow 2.0 代码的不同"]
    exercise = ["练习"] if EXERCISES[name] else []
    return [*notes, "小结", "思考题", *exercise, "参考文献"]


def read_chapter(name):
    return jupytext.read(ROOT / "book" / f"{name}.md")


def markdown_of(notebook) -> str:
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def figure_options(cell) -> dict | None:
    return cell.metadata.get("mystnb", {}).get("figure")


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_is_a_myst_notebook_with_one_label_and_one_title(name):
    notebook = read_chapter(name)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert notebook.metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    text = markdown_of(notebook)
    assert re.findall(r"^\(([\w-]+)\)=$", text, re.MULTILINE) == [name]
    assert len(re.findall(r"^# \S.*$", text, re.MULTILINE)) == 1


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_opens_with_overview_and_ends_with_summary_questions_and_references(name):
    text = markdown_of(read_chapter(name))
    sections = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert sections[0] == "概述 (Overview)"
    ending = expected_ending(name)
    assert sections[-len(ending) :] == ending
    for exercise in EXERCISES[name]:
        link = f"{{download}}`下载练习 {exercise}.ipynb <../exercises/{exercise}/{exercise}.ipynb>`"
        assert link in text


@pytest.mark.parametrize("name", CHAPTERS)
def test_first_code_cell_sets_up_through_course_setup_and_seeds(name):
    # book/course_setup.py silences TensorFlow before importing it and seeds in start().
    cells = code_cells(read_chapter(name))
    setup = cells[0]
    assert "hide-input" in setup.metadata.get("tags", [])
    assert "from course_setup import" in setup.source
    assert re.search(r"^start\(", setup.source, re.MULTILINE), setup.source
    assert not [cell.source for cell in cells if "import tensorflow" in cell.source]
    assert not [cell.source for cell in cells[1:] if "course_setup" in cell.source]


def test_course_setup_silences_tensorflow_before_importing_it_and_seeds():
    source = (ROOT / "book" / "course_setup.py").read_text(encoding="utf-8")
    # The first import statement of TensorFlow or Keras (Keras 3 imports TensorFlow).
    import_at = re.search(r"^(import|from) (tensorflow|keras)\b", source, re.MULTILINE).start()
    assert source.index('os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"') < import_at
    assert source.index('os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"') < import_at
    assert "keras.utils.set_random_seed(seed)" in source


@pytest.mark.parametrize("name", CHAPTERS)
def test_layers_get_their_shape_from_keras_input_not_input_shape(name):
    for cell in code_cells(read_chapter(name)):
        if "input_shape=" in cell.source:
            # Only a cell that demonstrates the Keras 3 warning may use the old argument.
            assert "warnings.catch_warnings" in cell.source, cell.source


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_figure_is_named_after_its_chapter_and_has_a_caption(name):
    figures = [figure_options(cell) for cell in code_cells(read_chapter(name))]
    figures = [figure for figure in figures if figure]
    assert figures
    for figure in figures:
        assert figure["name"].startswith(f"{name}-")
        assert figure["caption"].strip()


@pytest.mark.parametrize("name", CHAPTERS)
def test_prose_uses_chinese_quotation_marks(name):
    # Sphinx's smart quotes turn ASCII "..." in Chinese text into two closing quotes.
    for line in markdown_of(read_chapter(name)).splitlines():
        prose = re.sub(r"`[^`]*`|\$[^$]*\$", "", line)
        assert '"' not in prose, line


def test_gru_chapter_shows_both_keras_conventions_against_rnn_ref():
    sources = "\n".join(cell.source for cell in code_cells(read_chapter("gru")))
    for needle in (
        "rnn_ref.gru_params_from_keras",
        "rnn_ref.convert_update_convention",
        "reset_after=False",
        'update_convention="notes"',
    ):
        assert needle in sources


def test_bidirectional_chapter_covers_every_merge_mode_and_rnn_ref():
    sources = "\n".join(cell.source for cell in code_cells(read_chapter("bidirectional")))
    for mode in ('"concat"', '"sum"', '"mul"', '"ave"', "None:"):
        assert mode in sources
    assert "rnn_ref.bidirectional(" in sources
    assert "go_backwards=True" in sources


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_runs_quietly_and_draws_its_figures(name):
    # The build (--keep-going) writes every page's notebook even if another page fails, and
    # keeps stderr off the page (_config.yml) but every output in the notebook.
    path = clean_site_build().executed / "book" / f"{name}.ipynb"
    assert path.is_file(), f"the site build did not run book/{name}.md"
    notebook = read_notebook(path)
    assert [cell.source for cell in code_cells(notebook)] == [
        cell.source for cell in code_cells(read_chapter(name))
    ], f"the build ran another version of book/{name}.md"
    for index, cell in enumerate(code_cells(notebook)):
        assert cell.execution_count is not None, f"code cell {index} of book/{name}.md did not run"
        errors = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
        if "raises-exception" not in cell.metadata.get("tags", []):
            assert not errors, f"code cell {index} of book/{name}.md raised {errors}"
        stderr = [out.text for out in cell.outputs if out.get("name") == "stderr"]
        assert not stderr, f"code cell {index} of book/{name}.md wrote to stderr: {stderr}"
        if figure_options(cell):
            images = [out for out in cell.outputs if "image/png" in out.get("data", {})]
            assert images, f"figure cell {index} of book/{name}.md drew nothing"
