"""Hidden tests of the ``gru`` assignment: the notes' GRU gate by gate, then a Keras GRU.

Two conventions differ between the notes and Keras, and mixing them gives plausible numbers, so
both have their own messages: the update gate (the notes' ``g_z`` is Keras's ``1 - z``) and the
place of the reset gate (before the recurrent product in the notes, after it in Keras's default
``reset_after=True``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

import rnn_ref as ref
from rnn_ref.keras_weights import GRU_LAYOUT, GRU_RESET_AFTER_LAYOUT

from . import cases as c
from . import gated
from . import mistakes as m
from .core import Case, check_cases
from .substitution import scored_alone

ORDER = (
    "reset_gate",
    "candidate_state",
    "update_gate",
    "new_state",
    "gru_step",
    "gru_sequence",
    "candidate_state_reset_after",
    "keras_gru_forward",
)
"""The graded functions in the order the notebook defines them."""

CELL = gated.GatedCell(
    assignment="gru",
    layout=GRU_LAYOUT,
    reference=ref.GRUParams,
    reference_options={"reset_after": False, "update_convention": "notes"},
    layer=ref.gru,
    states=("h0",),
    keras_name="GRU",
    keras_layout=GRU_RESET_AFTER_LAYOUT,
    params_from_keras=functools.partial(ref.gru_params_from_keras, reset_after=True),
)
GRUParams = CELL.Params


def _reference_step(
    x_t: np.ndarray, h_prev: np.ndarray, params: gated.NotebookParams
) -> np.ndarray:
    return ref.gru_step(x_t, h_prev, CELL.reference_params(params))


def correct_functions() -> dict[str, Callable[..., Any]]:
    """A correct version of every graded function, with the notebook's parameters."""
    return {
        "reset_gate": ref.reset_gate,
        "update_gate": ref.update_gate,
        "candidate_state": ref.candidate_state,
        "new_state": ref.new_state,
        "gru_step": _reference_step,
        "gru_sequence": lambda x, params, h0=None: CELL.reference_sequence(x, params, h0),
        "candidate_state_reset_after": ref.candidate_state_reset_after,
        "keras_gru_forward": CELL.keras_forward,
    }


@scored_alone(correct_functions)
def reset_gate(func: object) -> None:
    """Check ``reset_gate(x_t, h_prev, W_xr, W_hr, b_r=None)``."""
    gated.check_gate(CELL, "reset_gate", func, ref.reset_gate, "sigmoid")


@scored_alone(correct_functions)
def update_gate(func: object) -> None:
    """Check ``update_gate(x_t, h_prev, W_xz, W_hz, b_z=None)``."""
    gated.check_gate(CELL, "update_gate", func, ref.update_gate, "sigmoid")


def _with_reset_gate(cases: list[Case], rng: np.random.Generator) -> list[Case]:
    """Insert a reset gate ``g_r`` (N, H) in (0, 1) after ``x_t, h_prev``."""
    result = []
    for case in cases:
        x_t, h_prev, *weights = case.args
        g_r = rng.uniform(0.0, 1.0, h_prev.shape)
        result.append(Case((x_t, h_prev, g_r, *weights), case.label))
    return result


@scored_alone(correct_functions)
def candidate_state(func: object) -> None:
    """Check ``candidate_state(x_t, h_prev, g_r, W_xh, W_hh, b_h=None)`` (reset before)."""
    name = "candidate_state"

    def mistakes(
        x_t: np.ndarray,
        h_prev: np.ndarray,
        g_r: np.ndarray,
        W_xh: np.ndarray,
        W_hh: np.ndarray,
        b_h: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        found = {
            m.RESET_AFTER_PRODUCT: ref.candidate_state_reset_after(
                x_t, h_prev, g_r, W_xh, W_hh, b_h
            ),
            m.RESET_GATE_NOT_APPLIED: ref.candidate_state(
                x_t, h_prev, np.ones_like(g_r), W_xh, W_hh, b_h
            ),
        }
        as_gate = m.gate_mistakes(
            lambda x, h, Wx, Wh, b=None, activation="tanh": ref.candidate_state(
                x, h, g_r, Wx, Wh, b, activation=activation
            ),
            "tanh",
        )
        found.update(as_gate(x_t, h_prev, W_xh, W_hh, b_h))
        return found

    cases = _with_reset_gate(c.gate_cases(f"gru.{name}"), c.generator(f"gru.{name}", 1))
    check_cases(name, func, cases, ref.candidate_state, mistakes)


@scored_alone(correct_functions)
def new_state(func: object) -> None:
    """Check ``new_state(h_prev, h_bar, g_z)`` in the notes' convention."""
    name = "new_state"
    rng = c.generator(f"gru.{name}")
    cases = []
    for N, _, H in c.STEP_SHAPES:
        h_prev, h_bar = rng.uniform(-1.0, 1.0, (2, N, H))
        g_z = rng.uniform(0.0, 1.0, (N, H))
        cases.append(Case((h_prev, h_bar, g_z), c.label(N=N, H=H)))

    def mistakes(h_prev: np.ndarray, h_bar: np.ndarray, g_z: np.ndarray) -> dict[str, np.ndarray]:
        return {
            m.UPDATE_CONVENTION_SWAPPED: ref.new_state_keras(h_prev, h_bar, g_z),
            m.ONE_MINUS_UPDATE_MISSING: h_prev + g_z * h_bar,
        }

    check_cases(name, func, cases, ref.new_state, mistakes)


def _variant(
    params: gated.NotebookParams, *, convention: str = "notes", reset_after: bool = False
) -> ref.GRUParams:
    """The same weights read with another update convention or reset placement."""
    p = CELL.reference_params(params)
    b_hh = None if p.b_h is None or not reset_after else np.zeros_like(p.b_h)
    return dataclasses.replace(p, update_convention=convention, reset_after=reset_after, b_hh=b_hh)


def _step_mistakes(
    x_t: np.ndarray, h_prev: np.ndarray, params: gated.NotebookParams
) -> dict[str, np.ndarray]:
    return {
        m.UPDATE_CONVENTION_SWAPPED: ref.gru_step(
            x_t, h_prev, _variant(params, convention="keras")
        ),
        m.RESET_AFTER_PRODUCT: ref.gru_step(x_t, h_prev, _variant(params, reset_after=True)),
    }


@scored_alone(correct_functions)
def gru_step(func: object) -> None:
    """Check ``gru_step(x_t, h_prev, params) -> h_t``."""
    name = "gru_step"
    check_cases(name, func, CELL.step_cases(name), _reference_step, _step_mistakes)


def _sequence_convention_swapped(
    x: np.ndarray, params: gated.NotebookParams, h0: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    keras = _variant(params, convention="keras")
    return {m.UPDATE_CONVENTION_SWAPPED: ref.gru(x, keras, return_sequences=True, initial_state=h0)}


@scored_alone(correct_functions)
def gru_sequence(func: object) -> None:
    """Check ``gru_sequence(x, params, h0=None) -> (N, T, H)``."""
    name = "gru_sequence"
    gated.check_sequence(CELL, name, func, _sequence_convention_swapped)


@scored_alone(correct_functions)
def candidate_state_reset_after(func: object) -> None:
    """Check ``candidate_state_reset_after(x_t, h_prev, g_r, W_xh, W_hh, b_h=None, b_hh=None)``."""
    name = "candidate_state_reset_after"
    rng = c.generator(f"gru.{name}", 1)
    cases = []
    for case in _with_reset_gate(c.gate_cases(f"gru.{name}"), rng):
        b_h = case.args[-1]
        b_hh = None if b_h is None else rng.normal(0.0, 0.6, b_h.shape)
        cases.append(Case((*case.args, b_hh), case.label))

    def mistakes(
        x_t: np.ndarray,
        h_prev: np.ndarray,
        g_r: np.ndarray,
        W_xh: np.ndarray,
        W_hh: np.ndarray,
        b_h: np.ndarray | None = None,
        b_hh: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        found = {
            m.RESET_BEFORE_PRODUCT: ref.candidate_state(
                x_t, h_prev, g_r, W_xh, W_hh, None if b_h is None else b_h + b_hh
            ),
            m.activation_swapped("sigmoid", "tanh"): ref.candidate_state_reset_after(
                x_t, h_prev, g_r, W_xh, W_hh, b_h, b_hh, activation="sigmoid"
            ),
        }
        if b_h is not None:
            found[m.RECURRENT_BIAS_OUTSIDE_RESET] = np.tanh(
                x_t @ W_xh + b_h + g_r * (h_prev @ W_hh) + b_hh
            )
            found[m.RECURRENT_BIAS_MISSING] = ref.candidate_state_reset_after(
                x_t, h_prev, g_r, W_xh, W_hh, b_h, None
            )
            found[m.INPUT_BIAS_MISSING] = ref.candidate_state_reset_after(
                x_t, h_prev, g_r, W_xh, W_hh, None, b_hh
            )
        return found

    check_cases(name, func, cases, ref.candidate_state_reset_after, mistakes)


def _keras_forward_mistakes(
    x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray
) -> dict[str, np.ndarray]:
    params = CELL.params_from_keras([kernel, recurrent_kernel, bias])
    reset_before = dataclasses.replace(
        params, reset_after=False, b_h=params.b_h + params.b_hh, b_hh=None
    )
    return {
        m.UPDATE_CONVENTION_SWAPPED: ref.gru(
            x, dataclasses.replace(params, update_convention="notes"), return_sequences=True
        ),
        m.RESET_BEFORE_PRODUCT: ref.gru(x, reset_before, return_sequences=True),
        m.BIAS_ROWS_SWAPPED: CELL.keras_forward(x, kernel, recurrent_kernel, bias[::-1]),
        m.LAST_STEP_ONLY: ref.gru(x, params),
        **CELL.gate_order_mistakes(x, kernel, recurrent_kernel, bias),
    }


@scored_alone(correct_functions)
def keras_gru_forward(func: object) -> None:
    """Check ``keras_gru_forward(x, kernel, recurrent_kernel, bias) -> (N, T, H)``.

    Against the outputs a real ``keras.layers.GRU`` (defaults: ``reset_after=True``) computed,
    then on fresh random weights against ``rnn_ref``.
    """
    name = "keras_gru_forward"
    gated.check_keras_forward(CELL, name, func, _keras_forward_mistakes)
