"""The preprocessors a notebook passes through, as named lists, in the order they run.

nbgrader's ``converters/autograde.py`` runs two lists in one process:

- ``sanitize_preprocessors``: ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells,
  CheckCellMetadata;
- ``autograde_preprocessors``: Execute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
  SaveAutoGrades, AssignLatePenalties, CheckCellMetadata.

classgrade splits the second list at the kernel: the main process sanitises (:func:`sanitizing`),
a job process of its own executes the notebook and makes its outputs safe
(:func:`after_execution`), and the main process records the grades (:func:`recording`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import types
from collections.abc import Iterator
from typing import Any

import jsonschema
import nbgrader.nbgraderformat.common as nbgrader_format
from nbconvert.preprocessors import ClearMetadataPreprocessor, Preprocessor
from nbformat import NotebookNode
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from traitlets.config import Config

from .output_sanitising import CapOutputs, SanitizeOutputs

_VALIDATORS: dict[str, Any] = {}
"""JSON-schema validators by their schema's text, each schema checked once."""


def _validate(instance: object, schema: dict[str, Any]) -> None:
    """``jsonschema.validate``, but for checking the (unchanging) schema itself every time."""
    key = json.dumps(schema, sort_keys=True)
    validator = _VALIDATORS.get(key)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = _VALIDATORS[key] = cls(copy.deepcopy(schema))
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


@contextlib.contextmanager
def _schema_checked_once() -> Iterator[None]:
    # nbgrader's metadata validator calls ``jsonschema.validate`` on each cell, which checks the
    # schema against its meta-schema before each use: 4 ms a cell, most of the run's own CPU.
    # Its module's name for jsonschema is the only hook; the checks themselves stay nbgrader's.
    saved = nbgrader_format.jsonschema
    nbgrader_format.jsonschema = types.SimpleNamespace(validate=_validate)
    try:
        yield
    finally:
        nbgrader_format.jsonschema = saved


class CheckCellMetadataOnce(CheckCellMetadata):
    """nbgrader's CheckCellMetadata (the same checks and errors), its schema compiled once."""

    def preprocess(
        self, nb: NotebookNode, resources: dict[str, Any]
    ) -> tuple[NotebookNode, dict[str, Any]]:
        """Check every cell's nbgrader metadata, as nbgrader does."""
        with _schema_checked_once():
            return super().preprocess(nb, resources)


def sanitizing(config: Config) -> list[Preprocessor]:
    """Before a notebook is executed: the gradebook's cells and kernel over the learner's.

    nbgrader's ``sanitize_preprocessors`` but for DeduplicateIds: the notebook is already rebuilt
    from the gradebook in the source's cell order, a duplicated grade id keeping its last copy
    (``intake.load_submission``). OverwriteCells adds the grade cells a learner deleted.
    These always run: a course's configuration cannot switch them off (their ``enabled`` is
    not read), since they are what keeps a learner's cells out of the grade cells.
    """
    return [
        ClearOutput(config=config),
        OverwriteKernelspec(config=config),
        OverwriteCells(config=config, add_missing_cells=True),
        CheckCellMetadataOnce(config=config),
    ]


def after_execution() -> list[Preprocessor]:
    """In the notebook's job, once it ran: its outputs bounded and made safe to render.

    nbgrader's LimitOutput, then classgrade's own caps and sanitiser (``output_sanitising``),
    under the notebook's deadline and never in the main process. The job has no course
    configuration: LimitOutput keeps nbgrader's defaults.
    """
    return [LimitOutput(), CapOutputs(), SanitizeOutputs()]


def recording(config: Config) -> list[Preprocessor]:
    """In the main process, on each executed notebook: its grades written to the gradebook.

    nbgrader's autograde list after Execute and LimitOutput (which ran in the job). IgnorePattern
    and ClearMetadataPreprocessor are off unless the course's configuration sets their
    ``enabled``, as in nbgrader; when on, they run here, before the grades are saved.
    """
    optional = [IgnorePattern(config=config), ClearMetadataPreprocessor(config=config)]
    return [
        *(pp for pp in optional if pp.enabled),
        SaveAutoGrades(config=config),
        AssignLatePenalties(config=config),
        CheckCellMetadataOnce(config=config),
    ]
