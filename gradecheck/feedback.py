"""An nbgrader feedback preprocessor that reduces every traceback to its last line.

A failed grade cell's traceback shows the source lines around each frame: the hidden test code
and the checking package's code. ``ClearHiddenTests`` removes the hidden tests from the cells'
sources; this removes them from the error outputs, keeping ``ExceptionName: message``, which is
what a learner needs.
"""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor


class MinimalTracebacks(NbGraderPreprocessor):
    """Replace each error output's traceback by ``ename: evalue``."""

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, Any], index: int
    ) -> tuple[NotebookNode, dict[str, Any]]:
        """Cut the traceback of each of ``cell``'s error outputs to its last line."""
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [
                    f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                ]
        return cell, resources
