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

from nbconvert.preprocessors import ClearMetadataPreprocessor, Preprocessor
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
        CheckCellMetadata(config=config),
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
        CheckCellMetadata(config=config),
    ]
