"""The chapter-notebook generator (scripts/sync_chapter_notebooks.py), loaded for the tests.

Also the front matter that makes a small test page a MyST notebook.
"""

from script_modules import load_script

sync_chapter_notebooks = load_script("sync_chapter_notebooks")

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
