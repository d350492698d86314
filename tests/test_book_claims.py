"""Claims of the chapters' text that their own cells cannot check, checked from the sources."""

import re

import jupytext
import yaml
from conftest import ROOT


def test_each_practice_model_trains_in_a_cell_of_its_own():
    # The practice chapter says each model trains in under a minute: the build's limit per
    # cell says so, provided every model trains in a cell of its own.
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["execute"]["timeout"] <= 60
    chapter = jupytext.read(ROOT / "book" / "practice.md")
    cells = [cell.source for cell in chapter.cells if cell.cell_type == "code"]
    calls = [len(re.findall(r"^train\(", source, re.MULTILINE)) for source in cells]
    assert max(calls) == 1
    assert sum(calls) == 5  # the five models of the chapter's table
    assert "每个模型的训练各占一个代码单元格" in "\n".join(
        cell.source for cell in chapter.cells if cell.cell_type == "markdown"
    )
