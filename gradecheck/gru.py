"""Hidden tests of the ``gru`` assignment: the notes' GRU gate by gate, then a Keras GRU.

Two conventions differ between the notes and Keras, and mixing them gives plausible numbers, so
both have their own messages: the update gate (the notes' ``g_z`` is Keras's ``1 - z``) and the
place of the reset gate (before the recurrent product in the notes, after it in Keras's default
``reset_after=True``).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

import numpy as np

import rnn_ref as ref

from . import cases as c
from .core import (
    Case,
    check_cases,
    compare_with_keras,
)
from .keras_reference import load
from .rnn import gate_mistakes
from .substitution import use_correct_earlier_functions

KERAS_GATE_ORDER = ("z", "r", "h")

CONVENTION_SWAPPED = (
    "把更新门的约定用反了（update-gate convention swapped）：笔记中 "
    "h_t = (1 − g_z) ⊙ h_{t-1} + g_z ⊙ h̄_t，Keras 的 z = 1 − g_z"
)
RESET_AFTER = (
    "把复位门放在了矩阵乘法之后（reset applied after the product）：笔记中是 (g_r ⊙ h_{t-1}) W_hh"
)
RESET_BEFORE = (
    "把复位门放在了矩阵乘法之前（reset applied before the product）：Keras 默认 reset_after=True，"
    "是 g_r ⊙ (h_{t-1} W_hh + b_hh)"
)

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


class GRUParams(NamedTuple):
    """The notebook's parameters (the notes' GRU): same fields and order as ``rnn_ref``'s."""

    W_xz: np.ndarray
    W_hz: np.ndarray
    b_z: np.ndarray | None
    W_xr: np.ndarray
    W_hr: np.ndarray
    b_r: np.ndarray | None
    W_xh: np.ndarray
    W_hh: np.ndarray
    b_h: np.ndarray | None


def as_reference_params(params) -> ref.GRUParams:
    fields = {name: getattr(params, name) for name in GRUParams._fields}
    return ref.GRUParams(**fields, reset_after=False, update_convention="notes")


def random_params(rng: np.random.Generator, D: int, H: int, bias: bool = True) -> GRUParams:
    values = []
    for _ in KERAS_GATE_ORDER:
        values.extend(c.weights(rng, D, H, bias=bias))
    return GRUParams(*values)


def reset_gate(func) -> None:
    """Check ``reset_gate(x_t, h_prev, W_xr, W_hr, b_r=None)``."""
    name = "reset_gate"
    cases = c.gate_cases(f"gru.{name}")
    check_cases(name, func, cases, ref.reset_gate, gate_mistakes(ref.reset_gate, "sigmoid"))


def update_gate(func) -> None:
    """Check ``update_gate(x_t, h_prev, W_xz, W_hz, b_z=None)``."""
    name = "update_gate"
    cases = c.gate_cases(f"gru.{name}")
    check_cases(name, func, cases, ref.update_gate, gate_mistakes(ref.update_gate, "sigmoid"))


def _with_reset_gate(cases: list[Case], rng: np.random.Generator) -> list[Case]:
    """Insert a reset gate ``g_r`` (N, H) in (0, 1) after ``x_t, h_prev``."""
    result = []
    for case in cases:
        x_t, h_prev, *weights = case.args
        g_r = rng.uniform(0.0, 1.0, h_prev.shape)
        result.append(Case((x_t, h_prev, g_r, *weights), case.label))
    return result


def candidate_state(func) -> None:
    """Check ``candidate_state(x_t, h_prev, g_r, W_xh, W_hh, b_h=None)`` (reset before)."""
    name = "candidate_state"

    def mistakes(x_t, h_prev, g_r, W_xh, W_hh, b_h=None):
        found = {
            RESET_AFTER: ref.candidate_state_reset_after(x_t, h_prev, g_r, W_xh, W_hh, b_h),
            "没有用复位门（reset gate not applied）": ref.candidate_state(
                x_t, h_prev, np.ones_like(g_r), W_xh, W_hh, b_h
            ),
        }
        as_gate = gate_mistakes(
            lambda x, h, Wx, Wh, b=None, activation="tanh": ref.candidate_state(
                x, h, g_r, Wx, Wh, b, activation=activation
            ),
            "tanh",
        )
        found.update(as_gate(x_t, h_prev, W_xh, W_hh, b_h))
        return found

    cases = _with_reset_gate(c.gate_cases(f"gru.{name}"), c.generator(f"gru.{name}", 1))
    check_cases(name, func, cases, ref.candidate_state, mistakes)


def new_state(func) -> None:
    """Check ``new_state(h_prev, h_bar, g_z)`` in the notes' convention."""
    name = "new_state"
    rng = c.generator(f"gru.{name}")
    cases = []
    for N, _, H in c.STEP_SHAPES:
        h_prev, h_bar = rng.uniform(-1.0, 1.0, (2, N, H))
        g_z = rng.uniform(0.0, 1.0, (N, H))
        cases.append(Case((h_prev, h_bar, g_z), c.label(N=N, H=H)))

    def mistakes(h_prev, h_bar, g_z):
        return {
            CONVENTION_SWAPPED: ref.new_state_keras(h_prev, h_bar, g_z),
            "漏了 (1 − g_z)（h_t = h_{t-1} + g_z ⊙ h̄_t）": h_prev + g_z * h_bar,
        }

    check_cases(name, func, cases, ref.new_state, mistakes)


def _reference_step(x_t, h_prev, params):
    return ref.gru_step(x_t, h_prev, as_reference_params(params))


def _reference_sequence(x, params, h0=None):
    return ref.gru(x, as_reference_params(params), return_sequences=True, initial_state=h0)


def _correct_functions() -> dict:
    """Correct versions of the notebook's functions, installed when a later one is checked."""
    return {
        "reset_gate": ref.reset_gate,
        "update_gate": ref.update_gate,
        "candidate_state": ref.candidate_state,
        "new_state": ref.new_state,
        "gru_step": _reference_step,
        "gru_sequence": _reference_sequence,
        "candidate_state_reset_after": ref.candidate_state_reset_after,
    }


def _variant(params, *, convention: str = "notes", reset_after: bool = False) -> ref.GRUParams:
    """The same weights read with another update convention or reset placement."""
    p = as_reference_params(params)
    b_hh = None if p.b_h is None or not reset_after else np.zeros_like(p.b_h)
    return dataclasses.replace(p, update_convention=convention, reset_after=reset_after, b_hh=b_hh)


def _step_mistakes(x_t, h_prev, params):
    return {
        CONVENTION_SWAPPED: ref.gru_step(x_t, h_prev, _variant(params, convention="keras")),
        RESET_AFTER: ref.gru_step(x_t, h_prev, _variant(params, reset_after=True)),
    }


def gru_step(func, namespace: dict | None = None) -> None:
    """Check ``gru_step(x_t, h_prev, params) -> h_t``, with correct gates substituted."""
    name = "gru_step"
    rng = c.generator(f"gru.{name}")
    cases = []
    for i, (N, D, H) in enumerate(c.STEP_SHAPES):
        x_t, h_prev = c.step_inputs(rng, N, D, H)
        cases.append(
            Case((x_t, h_prev, random_params(rng, D, H, bias=i != 3)), c.label(N=N, D=D, H=H))
        )
    use_correct_earlier_functions(namespace, _correct_functions(), ORDER, name)
    check_cases(name, func, cases, _reference_step, _step_mistakes)


def gru_sequence(func, namespace: dict | None = None) -> None:
    """Check ``gru_sequence(x, params, h0=None) -> (N, T, H)``, with a correct step substituted."""
    name = "gru_sequence"
    rng = c.generator(f"gru.{name}")
    cases = []
    for i, (N, T, D, H) in enumerate(c.SEQUENCE_SHAPES):
        x = c.sequence_inputs(rng, N, T, D)
        params = random_params(rng, D, H)
        dims = c.label(N=N, T=T, D=D, H=H)
        if i == 1:
            cases.append(Case((x, params, c.initial_state(rng, N, H)), dims + ", h0 given"))
        else:
            cases.append(Case((x, params), dims))

    def mistakes(x, params, h0=None):
        p = as_reference_params(params)
        found = {
            "只返回了最后一步（returned only the last step instead of every step）": (
                _reference_sequence(x, params, h0)[:, -1]
            ),
            "按时间倒序处理了序列（ran the sequence backwards）": ref.gru(
                x, p, return_sequences=True, go_backwards=True, initial_state=h0
            ),
            CONVENTION_SWAPPED: ref.gru(
                x, _variant(params, convention="keras"), return_sequences=True, initial_state=h0
            ),
        }
        if h0 is not None:
            found["忽略了初始状态 h0（h0 ignored）"] = _reference_sequence(x, params)
        return found

    use_correct_earlier_functions(namespace, _correct_functions(), ORDER, name)
    check_cases(name, func, cases, _reference_sequence, mistakes)


def candidate_state_reset_after(func) -> None:
    """Check ``candidate_state_reset_after(x_t, h_prev, g_r, W_xh, W_hh, b_h=None, b_hh=None)``."""
    name = "candidate_state_reset_after"
    rng = c.generator(f"gru.{name}", 1)
    cases = []
    for case in _with_reset_gate(c.gate_cases(f"gru.{name}"), rng):
        b_h = case.args[-1]
        b_hh = None if b_h is None else rng.normal(0.0, 0.6, b_h.shape)
        cases.append(Case((*case.args, b_hh), case.label))

    def mistakes(x_t, h_prev, g_r, W_xh, W_hh, b_h=None, b_hh=None):
        found = {
            RESET_BEFORE: ref.candidate_state(
                x_t, h_prev, g_r, W_xh, W_hh, None if b_h is None else b_h + b_hh
            ),
            "用了 sigmoid 而不是 tanh（tanh and sigmoid swapped）": ref.candidate_state_reset_after(
                x_t, h_prev, g_r, W_xh, W_hh, b_h, b_hh, activation="sigmoid"
            ),
        }
        if b_h is not None:
            outside = "把 b_hh 放在了复位门外面（b_hh outside the reset: g_r ⊙ (h W_hh + b_hh)）"
            found[outside] = np.tanh(x_t @ W_xh + b_h + g_r * (h_prev @ W_hh) + b_hh)
            found["漏了 b_hh（recurrent bias missing）"] = ref.candidate_state_reset_after(
                x_t, h_prev, g_r, W_xh, W_hh, b_h, None
            )
            found["漏了 b_h（input bias missing）"] = ref.candidate_state_reset_after(
                x_t, h_prev, g_r, W_xh, W_hh, None, b_hh
            )
        return found

    check_cases(name, func, cases, ref.candidate_state_reset_after, mistakes)


def _keras_params(kernel, recurrent_kernel, bias, order=KERAS_GATE_ORDER) -> ref.GRUParams:
    """Keras's GRU parameters, as a learner who reads the gate blocks in ``order`` gets them."""
    H = recurrent_kernel.shape[0]
    picks = [slice(order.index(g) * H, (order.index(g) + 1) * H) for g in KERAS_GATE_ORDER]

    def reorder(array):
        return np.concatenate([array[..., s] for s in picks], axis=-1)

    weights = [reorder(kernel), reorder(recurrent_kernel), reorder(bias)]
    return ref.gru_params_from_keras(weights, reset_after=True)


def _keras_forward(x, kernel, recurrent_kernel, bias):
    params = _keras_params(kernel, recurrent_kernel, bias)
    return ref.gru(x, params, return_sequences=True)


def _keras_forward_mistakes(x, kernel, recurrent_kernel, bias):
    params = _keras_params(kernel, recurrent_kernel, bias)
    reset_before = dataclasses.replace(
        params, reset_after=False, b_h=params.b_h + params.b_hh, b_hh=None
    )
    found = {
        CONVENTION_SWAPPED: ref.gru(
            x, dataclasses.replace(params, update_convention="notes"), return_sequences=True
        ),
        RESET_BEFORE: ref.gru(x, reset_before, return_sequences=True),
        "把 bias 的两行用反了（bias rows swapped: row 0 is the input bias, row 1 the recurrent）": (
            _keras_forward(x, kernel, recurrent_kernel, bias[::-1])
        ),
        "只返回了最后一步（returned only the last step）": ref.gru(x, params),
    }
    for order in itertools.permutations(KERAS_GATE_ORDER):
        if order != KERAS_GATE_ORDER:
            text = f"按 {', '.join(order)} 的顺序切分了权重；Keras 是 z, r, h（gate order wrong）"
            found[text] = ref.gru(
                x, _keras_params(kernel, recurrent_kernel, bias, order), return_sequences=True
            )
    return found


def _keras_cases(name: str) -> list[Case]:
    rng = c.generator(name)
    result = []
    for N, T, D, H in ((2, 4, 3, 5), (1, 3, 4, 2)):
        kernel = rng.normal(0.0, 0.5, (D, 3 * H))
        recurrent_kernel = rng.normal(0.0, 0.5, (H, 3 * H))
        bias = rng.normal(0.0, 0.5, (2, 3 * H))
        x = c.sequence_inputs(rng, N, T, D)
        result.append(Case((x, kernel, recurrent_kernel, bias), c.label(N=N, T=T, D=D, H=H)))
    return result


def keras_gru_forward(func, namespace: dict | None = None) -> None:
    """Check ``keras_gru_forward(x, kernel, recurrent_kernel, bias) -> (N, T, H)``.

    Against the outputs a real ``keras.layers.GRU`` (defaults: ``reset_after=True``) computed,
    then on fresh random weights against ``rnn_ref``.
    """
    name = "keras_gru_forward"
    stored = load("gru")
    args = (stored["x"], stored["kernel"], stored["recurrent_kernel"], stored["bias"])
    case = Case(args, "keras_gru_reference.npz 中的 Keras GRU")
    use_correct_earlier_functions(namespace, _correct_functions(), ORDER, name)
    compare_with_keras(name, func, case, stored["output"], _keras_forward_mistakes)
    check_cases(name, func, _keras_cases(f"gru.{name}"), _keras_forward, _keras_forward_mistakes)
