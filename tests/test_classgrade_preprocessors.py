"""classgrade's own preprocessor steps: the same verdicts as nbgrader's, at less cost.

``CheckCellMetadataOnce`` is nbgrader's CheckCellMetadata with the JSON schema compiled once:
it must accept and refuse exactly the notebooks nbgrader's accepts and refuses. A notebook job
is pickled to its process compressed: it must come back equal, and small enough for a pipe.
"""

from __future__ import annotations

import copy
import pickle

import jsonschema
import nbformat
import nbgrader.nbgraderformat.common as nbgrader_format
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nbgrader.nbgraderformat import ValidationError
from nbgrader.preprocessors import CheckCellMetadata

from classgrade.notebook_job import ExecJob
from classgrade.preprocessors import CheckCellMetadataOnce, _validate
from classgrade.sandbox import Limits

PIPE_BYTES = 64 * 1024


def graded_cell(**changes: object) -> nbformat.NotebookNode:
    meta = {
        "grade": True,
        "grade_id": "check-gate",
        "locked": True,
        "points": 2,
        "schema_version": 3,
        "solution": False,
    }
    meta.update(changes)
    meta = {k: v for k, v in meta.items() if v is not None}
    return nbformat.v4.new_code_cell("assert True", metadata={"nbgrader": meta})


CELLS = {
    "valid": graded_cell(),
    "points as text": graded_cell(points="two"),
    "no grade id": graded_cell(grade_id=None),
    "empty grade id": graded_cell(grade_id=""),
    "no points": graded_cell(points=None),
    "locked as text": graded_cell(locked="yes"),
    "schema too old": graded_cell(schema_version=2),
    "schema too new": graded_cell(schema_version=4),
    "unknown key": graded_cell(colour="red"),
    "negative points": graded_cell(points=-1),
}


def verdict(preprocessor: type, cells: list[nbformat.NotebookNode]) -> str:
    nb = nbformat.v4.new_notebook(cells=copy.deepcopy(cells))
    try:
        preprocessor().preprocess(nb, {})
    except Exception as exc:  # nbgrader raises ValidationError or a schema-version error
        return f"{type(exc).__name__}: {exc}"
    return "accepted"


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_same_verdict_as_nbgrader(name):
    cells = [CELLS[name]]
    assert verdict(CheckCellMetadataOnce, cells) == verdict(CheckCellMetadata, cells)


def test_a_refusal_is_nbgraders_and_leaves_jsonschema_in_place():
    before = nbgrader_format.jsonschema
    with pytest.raises(ValidationError, match="nbgrader metadata may be corrupted"):
        CheckCellMetadataOnce().preprocess(nbformat.v4.new_notebook(cells=[CELLS["no points"]]), {})
    assert nbgrader_format.jsonschema is before is jsonschema


def test_a_duplicate_grade_id_is_refused_as_by_nbgrader():
    cells = [graded_cell(), graded_cell()]
    assert verdict(CheckCellMetadataOnce, cells) == verdict(CheckCellMetadata, cells)
    assert verdict(CheckCellMetadataOnce, cells) != "accepted"


METADATA_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["grade", "grade_id", "locked", "points", "schema_version", "solution", "task", "x"]
        ),
        METADATA_VALUES,
        max_size=8,
    )
)
def test_any_metadata_gets_jsonschemas_own_error(metadata):
    schema = nbgrader_format.BaseMetadataValidator.__new__(nbgrader_format.BaseMetadataValidator)
    schema.schema_version = 3
    nbgrader_format.BaseMetadataValidator.__init__(schema)

    def error_of(validate) -> str:
        try:
            validate(metadata, schema.schema)
        except jsonschema.ValidationError as exc:
            return str(exc)
        return ""

    assert error_of(_validate) == error_of(jsonschema.validate)


def test_a_pickled_job_comes_back_equal_and_fits_a_pipe():
    cells = [nbformat.v4.new_code_cell(f"x_{i} = {i}  # " + "w" * 60) for i in range(1500)]
    notebook_json = nbformat.writes(nbformat.v4.new_notebook(cells=cells))
    assert len(notebook_json) > 2 * PIPE_BYTES
    job = ExecJob("lstm/ana/lstm", 3, notebook_json, [("/a", "b")], "d", "i", "s", Limits())
    packed = pickle.dumps(job)
    assert len(packed) < PIPE_BYTES
    assert pickle.loads(packed) == job
    assert copy.deepcopy(job) == job
