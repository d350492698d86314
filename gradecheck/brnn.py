"""Hidden tests of the ``brnn`` assignment: a layer run backwards, the merges, ``Bidirectional``.

The layers are simple RNNs given as Keras's weight lists ``(kernel, recurrent_kernel, bias)``:
``kernel`` is ``W_xh`` (D, H), ``recurrent_kernel`` is ``W_hh`` (H, H), ``bias`` is ``b_h`` (H,).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

import rnn_ref as ref
from rnn_ref.keras_weights import KERAS_FLOAT32_TOLERANCE, MERGE_MODES

from . import cases as c
from . import mistakes as m
from . import simple_rnn
from .core import Case, call, check_cases, compare, compare_with_keras, fail
from .keras_reference import FILES, load
from .simple_rnn import layer
from .substitution import scored_alone

ORDER = ("simple_rnn_sequence", "rnn_go_backwards", "merge_outputs", "bidirectional_rnn")
"""The graded functions in the order the notebook defines them."""


def _go_backwards(
    x: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray | None = None
) -> np.ndarray:
    return layer((W_xh, W_hh, b_h), go_backwards=True)(x)


def _bidirectional(
    x: np.ndarray,
    forward_weights: c.Weights,
    backward_weights: c.Weights,
    merge_mode: str | None = "concat",
) -> list[np.ndarray]:
    forward = layer(forward_weights, return_state=True)
    backward = layer(backward_weights, return_state=True, go_backwards=True)
    return ref.bidirectional(x, forward, backward, merge_mode=merge_mode)


def _merge(y_forward: np.ndarray, y_backward: np.ndarray, merge_mode: str | None) -> Any:
    return ref.merge(y_forward, y_backward, merge_mode)


def correct_functions() -> dict[str, Callable[..., Any]]:
    """A correct version of every graded function, with the notebook's parameters."""
    return {
        "simple_rnn_sequence": simple_rnn.reference_sequence,
        "rnn_go_backwards": _go_backwards,
        "merge_outputs": _merge,
        "bidirectional_rnn": _bidirectional,
    }


def _stored_case(stored: dict[str, np.ndarray], prefix: str) -> Case:
    weights = tuple(stored[f"{prefix}_{n}"] for n in ("kernel", "recurrent_kernel", "bias"))
    return Case((stored["x"], *weights), f"{FILES['brnn']} 中的 Keras SimpleRNN")


@scored_alone(correct_functions)
def simple_rnn_sequence(func: object) -> None:
    """Check ``simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None) -> (N, T, H)``."""
    name = "simple_rnn_sequence"
    stored = load("brnn")
    case = _stored_case(stored, "forward")
    expected = stored["forward_output"]
    compare_with_keras(name, func, case, expected, simple_rnn.sequence_mistakes)
    simple_rnn.check_sequence(name, func)


def _backwards_mistakes(
    x: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    processing_order = _go_backwards(x, W_xh, W_hh, b_h)
    return {
        m.GO_BACKWARDS_FLIPPED_BACK: processing_order[:, ::-1],
        m.INPUT_NOT_REVERSED: layer((W_xh, W_hh, b_h))(x),
        m.LAST_STEP_ONLY: processing_order[:, -1],
    }


@scored_alone(correct_functions)
def rnn_go_backwards(func: object) -> None:
    """Check ``rnn_go_backwards(x, W_xh, W_hh, b_h=None)``: Keras's ``go_backwards=True``."""
    name = "rnn_go_backwards"
    stored = load("brnn")
    case = _stored_case(stored, "backward")
    compare_with_keras(name, func, case, stored["go_backwards_output"], _backwards_mistakes)
    cases = [case for case in simple_rnn.sequence_cases(f"brnn.{name}") if len(case.args) == 4]
    check_cases(name, func, cases, _go_backwards, _backwards_mistakes)


@scored_alone(correct_functions)
def merge_outputs(func: object, merge_mode: str | None) -> None:
    """Check ``merge_outputs(y_forward, y_backward, merge_mode)`` for one ``merge_mode``."""
    name = f"merge_outputs(..., merge_mode={merge_mode!r})"
    rng = c.generator(f"brnn.merge_outputs.{merge_mode}")
    cases = []
    for shape in ((2, 3, 4), (1, 5, 2), (3, 4)):
        y_forward, y_backward = rng.uniform(-1.0, 1.0, (2, *shape))
        cases.append(Case((y_forward, y_backward, merge_mode), f"case y shape {shape}"))
    for case in cases:
        y_forward, y_backward, _ = case.args
        expected = _merge(y_forward, y_backward, merge_mode)
        result = call(name, func, case)
        if merge_mode is None:
            if not isinstance(result, list | tuple) or len(result) != 2:
                fail(
                    f"{name} 应该返回两个输出的列表 [y_forward, y_backward]（a list of two），"
                    f"得到 {type(result).__name__}。"
                )
            swapped = {m.MERGED_IN_WRONG_ORDER: y_forward}
            compare(f"{name} 的第 1 项", result[0], expected[0], case, swapped)
            compare(f"{name} 的第 2 项", result[1], expected[1], case)
            continue
        mistakes = {
            "concat": {
                m.BACKWARD_FIRST: np.concatenate([y_backward, y_forward], axis=-1),
                m.CONCATENATED_ALONG_WRONG_AXIS: np.concatenate([y_forward, y_backward], axis=0),
            },
            "sum": {m.AVERAGED_NOT_SUMMED: (y_forward + y_backward) / 2},
            "ave": {m.SUMMED_NOT_AVERAGED: y_forward + y_backward},
            "mul": {m.ADDED_NOT_MULTIPLIED: y_forward + y_backward},
        }[merge_mode]
        compare(name, result, expected, case, mistakes)


def _bidirectional_cases(name: str) -> list[Case]:
    """Stored Keras weights first (for every merge mode), then fresh random ones."""
    stored = load("brnn")
    forward = _stored_case(stored, "forward").args[1:]
    backward = _stored_case(stored, "backward").args[1:]
    cases = [
        Case((stored["x"], forward, backward, mode), f"Keras Bidirectional, merge_mode={mode!r}")
        for mode in MERGE_MODES
    ]
    rng = c.generator(name)
    for i, (N, T, D, H) in enumerate(c.SEQUENCE_SHAPES):
        x = c.sequence_inputs(rng, N, T, D)
        mode = MERGE_MODES[i % len(MERGE_MODES)]
        forward, backward = c.weights(rng, D, H), c.weights(rng, D, H)
        cases.append(Case((x, forward, backward, mode), c.label(N=N, T=T, D=D, H=H) + f", {mode=}"))
    return cases


def _stored_expected(stored: dict[str, np.ndarray], mode: str | None) -> list[np.ndarray]:
    states = [stored["forward_state"], stored["backward_state"]]
    if mode is None:
        return [stored["output_none_forward"], stored["output_none_backward"], *states]
    return [stored[f"output_{mode}"], *states]


def _check_bidirectional(func: object, parts: str) -> None:
    name = "bidirectional_rnn"
    stored = load("brnn")
    for case in _bidirectional_cases(f"brnn.{name}.{parts}"):
        mode = case.args[3]
        is_keras = case.label.startswith("Keras")
        expected = _stored_expected(stored, mode) if is_keras else _bidirectional(*case.args)
        tolerance = KERAS_FLOAT32_TOLERANCE if is_keras else None
        result = call(name, func, case)
        count = 4 if mode is None else 3
        if not isinstance(result, list | tuple) or len(result) != count:
            items = "y_forward, y_backward" if mode is None else "y"
            got = type(result).__name__
            if isinstance(result, list | tuple):
                got += f" of length {len(result)}"
            fail(
                f"{name} 应该像 Keras 一样返回列表 [{items}, h_forward, h_backward]"
                f"（a list of {count}），{case.label} 时得到 {got}。"
            )
        outputs = range(count - 2) if parts == "outputs" else range(count - 2, count)
        for k in outputs:
            compare(
                f"{name} 返回的第 {k + 1} 项",
                result[k],
                expected[k],
                case,
                functools.partial(_bidirectional_mistakes, case.args, k),
                tolerance=tolerance,
            )


def _as_float(value: object) -> Any:
    if isinstance(value, tuple):
        return tuple(np.asarray(v, dtype=np.float64) for v in value)
    return value if isinstance(value, str) or value is None else np.asarray(value, dtype=np.float64)


def _bidirectional_mistakes(args: tuple[Any, ...], item: int) -> dict[str, np.ndarray]:
    """Known wrong values of the ``item``-th result of ``bidirectional_rnn(*args)``."""
    return {text: values[item] for text, values in _wrong_results(*map(_as_float, args)).items()}


def _wrong_results(
    x: np.ndarray, forward: c.Weights, backward: c.Weights, mode: str | None
) -> dict[str, list[np.ndarray]]:
    y_forward = layer(forward)(x)
    y_backward = _go_backwards(x, *backward)
    h_forward, h_backward = y_forward[:, -1], y_backward[:, -1]

    def result(
        y_f: np.ndarray, y_b: np.ndarray, h_f: np.ndarray = h_forward, h_b: np.ndarray = h_backward
    ) -> list[np.ndarray]:
        merged = _merge(y_f, y_b, mode)
        return [*merged, h_f, h_b] if mode is None else [merged, h_f, h_b]

    forwards = layer(backward)(x)
    return {
        m.BACKWARD_NOT_FLIPPED_BACK: result(y_forward, y_backward),
        m.BACKWARD_LAYER_NOT_REVERSED: result(y_forward, forwards[:, ::-1], h_b=forwards[:, -1]),
        m.DIRECTIONS_SWAPPED: result(y_backward[:, ::-1], y_forward, h_f=h_backward, h_b=h_forward),
        m.BACKWARD_STATE_FROM_WRONG_END: result(
            y_forward, y_backward[:, ::-1], h_b=y_backward[:, 0]
        ),
    }


@scored_alone(correct_functions, "bidirectional_rnn")
def bidirectional_outputs(func: object) -> None:
    """Check the merged output(s) of ``bidirectional_rnn``, against Keras and ``rnn_ref``."""
    _check_bidirectional(func, "outputs")


@scored_alone(correct_functions, "bidirectional_rnn")
def bidirectional_states(func: object) -> None:
    """Check the final states ``h_forward, h_backward`` that ``bidirectional_rnn`` returns."""
    _check_bidirectional(func, "states")
