"""The chapter-notebook generator (scripts/sync_chapter_notebooks.py), loaded for the tests.

Also the front matter that makes a small test page a MyST notebook.
"""

import importlib.util

from paths import ROOT

_spec = importlib.util.spec_from_file_location(
    "sync_chapter_notebooks", ROOT / "scripts" / "sync_chapter_notebooks.py"
)
sync_chapter_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_chapter_notebooks)

# The front matter of a MyST Markdown notebook page, as jupytext writes it.
NOTEBOOK_HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""
