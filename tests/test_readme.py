"""The README is the map of the repository: its layout table names every module.

Every Python module of the three packages is named in the table (alone, or after a folder as
``rnn_ref/_checks.py, _gate.py``), and every path the table names exists. A module added without
a line saying what it does, or a line left behind by a removed module, fails here.
"""

import re

from paths import ROOT

PACKAGES = ("rnn_ref", "gradecheck", "classgrade")


def layout_rows() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]


def named_paths(rows: list[str]) -> set[str]:
    """Each row's first cell, `a/b.py`, `c.py` -> {a/b.py, a/c.py}."""
    paths = set()
    for cell in rows:
        names = re.findall(r"`([^`]+)`", cell)
        folder = names[0].rsplit("/", 1)[0] + "/" if "/" in names[0].rstrip("/") else ""
        paths.add(names[0])
        paths.update(folder + name for name in names[1:] if "/" not in name)
    return paths


def test_every_module_has_a_line_in_the_layout_table():
    named = named_paths(layout_rows())
    modules = {f"{p}/{m.name}" for p in PACKAGES for m in (ROOT / p).glob("*.py")}
    modules -= {f"{p}/__init__.py" for p in PACKAGES}
    assert sorted(modules - named) == []


def test_every_path_in_the_layout_table_exists():
    missing = [path for path in named_paths(layout_rows()) if not (ROOT / path).exists()]
    assert missing == []


def test_paths_are_read_from_a_row_with_several_modules():
    row = ["`gradecheck/rnn.py`, `lstm.py`"]
    assert named_paths(row) == {"gradecheck/rnn.py", "gradecheck/lstm.py"}
