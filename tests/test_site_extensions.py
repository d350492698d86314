"""The site's local Sphinx extensions (sphinx_ext/), as plain functions."""

import sys

import pytest
from site_fixtures import ROOT

sys.path.insert(0, str(ROOT / "sphinx_ext"))
from cjk_line_breaks import join_cjk_lines
from launch_notebooks import colab_url, generated_notebook
from sphinx.errors import ExtensionError


@pytest.mark.parametrize(
    ("wrapped", "joined"),
    [
        ("随时间\n变化", "随时间变化"),
        ("长度  \n  可变", "长度可变"),
        ("一致，\nKeras 的写法", "一致，Keras 的写法"),
        ("形状\n（N, H）", "形状（N, H）"),
        ("用 Keras\n运行", "用 Keras\n运行"),
        ("状态 (state)\n向量", "状态 (state)\n向量"),
        ("two English\nwords", "two English\nwords"),
    ],
)
def test_line_breaks_inside_chinese_are_dropped(wrapped, joined):
    assert join_cjk_lines(wrapped) == joined


def test_generated_notebook_path():
    assert generated_notebook("book/lstm") == "notebooks/lstm.ipynb"
    assert generated_notebook("book/class-grading") == "notebooks/class-grading.ipynb"


def test_a_line_break_of_its_own_is_joined_by_its_neighbours():
    assert join_cjk_lines("\n", before="来", after="验") == ""
    assert join_cjk_lines("\n", before="e", after="验") == "\n"
    assert join_cjk_lines("\n", before="", after="验") == "\n"


def test_colab_url_of_a_repository_notebook():
    url = colab_url(
        "https://github.com/rnn-course/rnn-course/", "main", "exercises/lstm/lstm.ipynb"
    )
    assert url == (
        "https://colab.research.google.com/github/rnn-course/rnn-course/blob/main/"
        "exercises/lstm/lstm.ipynb"
    )
    with pytest.raises(ExtensionError, match="not a GitHub repository"):
        colab_url("https://gitlab.com/rnn-course/rnn-course", "main", "exercises/lstm/lstm.ipynb")
