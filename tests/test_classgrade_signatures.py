"""What the kernel says a learner's function accepts, as the grader rebuilds it.

The kernel sends each function's signature as plain data so that the correct stand-ins for the
learner's other functions accept exactly the learner's arguments. The description comes from a
hostile kernel: anything that is not a valid Python signature of plain data is dropped (the
stand-in then takes the notebook's own signature), never trusted, imported or evaluated.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from classgrade import codec
from classgrade.trusted import MAX_PARAMETERS, UnavailableDefault, learner_signature
from gradecheck import substitution


def _array_only(obj, arrays, depth):
    return codec.array_reference(obj, arrays, scalar=False)


def _param(name, kind="POSITIONAL_OR_KEYWORD", **more):
    return {"name": name, "kind": kind, **more}


def test_a_described_signature_is_rebuilt_with_its_defaults():
    arrays = {}
    default = codec.encode_value(np.arange(3.0), arrays, _array_only)
    described = [
        _param("x"),
        _param("h", default=None),
        _param("b", default=default),
        _param("rest", "VAR_POSITIONAL"),
        _param("scale", "KEYWORD_ONLY", default=2.5),
        _param("options", "VAR_KEYWORD"),
    ]
    signature = learner_signature(described, arrays)
    assert str(signature) == "(x, h=None, b=array([0., 1., 2.]), *rest, scale=2.5, **options)"


def test_a_default_the_kernel_could_not_send_is_marked_not_invented():
    signature = learner_signature([_param("x"), _param("f", default_unavailable=True)], {})
    assert isinstance(signature.parameters["f"].default, UnavailableDefault)


@pytest.mark.parametrize(
    "described",
    [
        None,
        "(x, h)",
        {"x": 1},
        [_param("x")] * (MAX_PARAMETERS + 1),
        [_param("x y")],
        [_param("class")],
        [_param("__import__('os').system('id')")],
        [_param("x" * 101)],
        [_param(7)],
        [_param("x", "POSITIONAL")],
        [_param("x", None)],
        [["x", "POSITIONAL_OR_KEYWORD"]],
        [_param("x"), _param("x")],  # a name twice
        [_param("x", default=1), _param("h")],  # a default before a required parameter
        [_param("x", "KEYWORD_ONLY"), _param("h", "POSITIONAL_ONLY")],  # kinds out of order
        [_param("rest", "VAR_POSITIONAL"), _param("more", "VAR_POSITIONAL")],
    ],
)
def test_an_invalid_description_is_dropped(described):
    assert learner_signature(described, {}) is None


@pytest.mark.parametrize(
    "default",
    [
        {"__handle__": 1, "name": "f"},  # a function as a default: not sent as one
        {"__import__": "os", "attr": "system"},
        {"__array__": "missing"},
        {"__pickle__": "gASVAAAAAAAAAAA="},
    ],
)
def test_a_default_that_is_not_plain_data_is_never_decoded(default):
    signature = learner_signature([_param("x", default=default)], {})
    assert isinstance(signature.parameters["x"].default, UnavailableDefault)


def test_the_stand_in_takes_the_signature_set_when_it_was_installed():
    """The class-grading namespace learns the learner's signature when it substitutes."""
    stand_in = substitution.stand_in("hidden_output", lambda g_o, c_t: g_o * c_t, "lstm_step")
    assert str(inspect.signature(stand_in)) == "(g_o, c_t)"
    stand_in.__signature__ = learner_signature([_param("gate"), _param("cell")], {})
    assert stand_in(gate=2.0, cell=3.0) == 6.0
    with pytest.raises(substitution.WrongCall, match="missing a required argument: 'gate'"):
        stand_in(g_o=2.0, c_t=3.0)
