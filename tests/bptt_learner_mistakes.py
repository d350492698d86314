"""Wrong bptt answers written by hand, each with the one mistake a learner makes.

Independent of gradecheck's catalogue of mistakes (``gradecheck/bptt.py`` computes its known
wrong answers with switches; these are written the way a learner writes them). Each function is
registered with the graded function it stands for and what the feedback must say: a phrase of
the catalogue's text where the mistake is a known one, else the generic wrong-value or
wrong-shape message naming the output. The tests bind each into a namespace where the other
functions are a correct learner's (:mod:`bptt_learner_loops`), with every function of this
module bound to that namespace (:func:`bind`): the names imported below from that learner are
looked up there, as a notebook's functions look each other up in its globals.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from bptt_learner_loops import (
    _affine_backward,
    _sigmoid,
    cell_state_update_backward,
    hidden_output_backward,
    simple_rnn_step_backward,
)

from gradecheck import mistakes as m


class WrongAnswer(NamedTuple):
    graded: str
    feedback: str
    function: Callable


WRONG_ANSWERS: list[WrongAnswer] = []


def bind(function: Callable, namespace: dict) -> Callable:
    """``function`` with ``namespace`` as its globals, as if defined in a notebook's cell."""
    bound = types.FunctionType(
        function.__code__, namespace, function.__name__, function.__defaults__
    )
    bound.__kwdefaults__ = function.__kwdefaults__
    return bound


def into_namespace(answer: WrongAnswer, namespace: dict) -> Callable:
    """Put this module's helpers and ``answer`` (as its graded name) into ``namespace``."""
    for name, value in list(globals().items()):
        if isinstance(value, types.FunctionType) and value.__module__ == __name__:
            namespace.setdefault(name, bind(value, namespace))
    namespace[answer.graded] = bind(answer.function, namespace)
    return namespace[answer.graded]


def wrong(graded: str, feedback: str):
    """Register the decorated function as a wrong ``graded`` whose feedback says ``feedback``."""

    def register(function):
        WRONG_ANSWERS.append(WrongAnswer(graded, feedback, function))
        return function

    return register


# -- one step of the simple RNN --------------------------------------------------------------------


@wrong("simple_rnn_step_backward", m.WEIGHT_GRADIENT_TRANSPOSED)
def transposed_weight_gradient(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t * (1 - h_t**2)
    return da @ W_xh.T, da @ W_hh.T, da.T @ x_t, da.T @ h_prev, da.sum(axis=0)


@wrong("simple_rnn_step_backward", m.TANH_DERIVATIVE_MISSING)
def missing_tanh_derivative(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    return dh_t @ W_xh.T, dh_t @ W_hh.T, x_t.T @ dh_t, h_prev.T @ dh_t, dh_t.sum(axis=0)


@wrong("simple_rnn_step_backward", m.TANH_APPLIED_TWICE)
def tanh_of_the_output(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t * (1 - np.tanh(h_t) ** 2)
    return da @ W_xh.T, da @ W_hh.T, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)


@wrong("simple_rnn_step_backward", m.WEIGHT_NOT_TRANSPOSED)
def weights_not_transposed(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t * (1 - h_t**2)
    return da @ W_xh.T, da @ W_hh, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)


@wrong("simple_rnn_step_backward", m.BATCH_MEAN)
def averaged_over_the_batch(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t * (1 - h_t**2)
    n = len(x_t)
    return da @ W_xh.T, da @ W_hh.T, x_t.T @ da / n, h_prev.T @ da / n, da.mean(axis=0)


@wrong("simple_rnn_step_backward", m.BIAS_NOT_SUMMED)
def bias_not_summed(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t * (1 - h_t**2)
    return da @ W_xh.T, da @ W_hh.T, x_t.T @ da, h_prev.T @ da, da


@wrong("simple_rnn_step_backward", "返回的 db_h 的形状不对（wrong shape）")
def bias_summed_over_the_wrong_axis(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t * (1 - h_t**2)
    return da @ W_xh.T, da @ W_hh.T, x_t.T @ da, h_prev.T @ da, da.sum(axis=1)


@wrong("simple_rnn_step_backward", "返回的 dx_t 的数值不对（wrong values）")
def derivative_at_the_previous_state(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t * (1 - h_prev**2)
    return da @ W_xh.T, da @ W_hh.T, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)


# -- the gates -----------------------------------------------------------------------------------


@wrong("forget_gate_backward", m.TANH_DERIVATIVE_FOR_SIGMOID)
def forget_gate_with_tanh_derivative(dg_f, x_t, h_prev, g_f, W_xf, W_hf):
    return _affine_backward(dg_f * (1 - g_f**2), x_t, h_prev, W_xf, W_hf)


@wrong("output_gate_backward", m.SIGMOID_DERIVATIVE_MISSING)
def output_gate_without_derivative(dg_o, x_t, h_prev, g_o, W_xo, W_ho):
    return _affine_backward(dg_o, x_t, h_prev, W_xo, W_ho)


@wrong("candidate_cell_state_backward", m.SIGMOID_DERIVATIVE_FOR_TANH)
def candidate_with_sigmoid_derivative(dc_bar, x_t, h_prev, c_bar, W_xc, W_hc):
    return _affine_backward(dc_bar * c_bar * (1 - c_bar), x_t, h_prev, W_xc, W_hc)


# -- BPTT over a sequence ------------------------------------------------------------------------


def _bptt(dh_seq, x, h0, h_seq, W_xh, W_hh, *, carry=True, accumulate=True, steps=None):
    """A learner's loop, with the knobs the wrong answers below turn."""
    N, T, D = x.shape
    dx = np.zeros((N, T, D))
    dW_xh, dW_hh, db_h = np.zeros(W_xh.shape), np.zeros(W_hh.shape), np.zeros(W_hh.shape[0])
    dh_next = np.zeros(h0.shape)
    for t in steps if steps is not None else reversed(range(T)):
        h_prev = h0 if t == 0 else h_seq[:, t - 1]
        dh = dh_seq[:, t] + dh_next if carry else dh_seq[:, t]
        dx[:, t], dh_next, dWx, dWh, db = simple_rnn_step_backward(
            dh, x[:, t], h_prev, h_seq[:, t], W_xh, W_hh
        )
        if accumulate:
            dW_xh, dW_hh, db_h = dW_xh + dWx, dW_hh + dWh, db_h + db
        else:
            dW_xh, dW_hh, db_h = dWx, dWh, db
    return dx, dh_next, dW_xh, dW_hh, db_h


@wrong("simple_rnn_bptt", m.NEXT_STEP_NOT_CARRIED)
def dh_next_not_carried(dh_seq, x, h0, h_seq, W_xh, W_hh):
    return _bptt(dh_seq, x, h0, h_seq, W_xh, W_hh, carry=False)


@wrong("simple_rnn_bptt", m.NOT_ACCUMULATED)
def gradient_not_accumulated_over_time(dh_seq, x, h0, h_seq, W_xh, W_hh):
    return _bptt(dh_seq, x, h0, h_seq, W_xh, W_hh, accumulate=False)


@wrong("simple_rnn_bptt", m.FORWARD_IN_TIME)
def bptt_forward_in_time(dh_seq, x, h0, h_seq, W_xh, W_hh):
    return _bptt(dh_seq, x, h0, h_seq, W_xh, W_hh, steps=range(x.shape[1]))


@wrong("simple_rnn_bptt", m.H_PREV_OFF_BY_ONE)
def h_prev_off_by_one(dh_seq, x, h0, h_seq, W_xh, W_hh):
    N, T, D = x.shape
    dx, dh_next = np.zeros((N, T, D)), np.zeros(h0.shape)
    dW_xh, dW_hh, db_h = 0, 0, 0
    for t in reversed(range(T)):
        dx[:, t], dh_next, dWx, dWh, db = simple_rnn_step_backward(
            dh_seq[:, t] + dh_next, x[:, t], h_seq[:, t], h_seq[:, t], W_xh, W_hh
        )
        dW_xh, dW_hh, db_h = dW_xh + dWx, dW_hh + dWh, db_h + db
    return dx, dh_next, dW_xh, dW_hh, db_h


@wrong("simple_rnn_bptt", m.OUTPUT_GRADIENT_FORGOTTEN)
def only_the_last_output_gradient(dh_seq, x, h0, h_seq, W_xh, W_hh):
    dh_only_last = np.zeros_like(dh_seq)
    dh_only_last[:, -1] = dh_seq[:, -1]
    return _bptt(dh_only_last, x, h0, h_seq, W_xh, W_hh)


@wrong("simple_rnn_bptt", "返回的 dW_hh 的数值不对（wrong values）")
def first_step_reads_the_last_state(dh_seq, x, h0, h_seq, W_xh, W_hh):
    # h_seq[:, t - 1] at t = 0 is h_seq[:, -1], the last state, not h0
    N, T, D = x.shape
    dx, dh_next = np.zeros((N, T, D)), np.zeros(h0.shape)
    dW_xh, dW_hh, db_h = 0, 0, 0
    for t in reversed(range(T)):
        dx[:, t], dh_next, dWx, dWh, db = simple_rnn_step_backward(
            dh_seq[:, t] + dh_next, x[:, t], h_seq[:, t - 1], h_seq[:, t], W_xh, W_hh
        )
        dW_xh, dW_hh, db_h = dW_xh + dWx, dW_hh + dWh, db_h + db
    return dx, dh_next, dW_xh, dW_hh, db_h


# -- LSTM ----------------------------------------------------------------------------------------


@wrong("hidden_output_backward", m.ONE_MINUS_C_SQUARED)
def one_minus_c_squared(dh_t, g_o, c_t):
    return dh_t * np.tanh(c_t), dh_t * g_o * (1 - c_t**2)


@wrong("hidden_output_backward", m.G_O_MISSING_IN_DC)
def g_o_missing(dh_t, g_o, c_t):
    return dh_t * np.tanh(c_t), dh_t * (1 - np.tanh(c_t) ** 2)


@wrong("cell_state_update_backward", m.C_PREV_AND_C_BAR_SWAPPED)
def c_prev_and_c_bar_swapped(dc_t, c_prev, g_f, g_i, c_bar):
    return dc_t * g_f, dc_t * c_bar, dc_t * c_prev, dc_t * g_i


@wrong("cell_state_update_backward", m.FORGET_GATE_MISSING_IN_DC_PREV)
def dc_prev_without_forget_gate(dc_t, c_prev, g_f, g_i, c_bar):
    return dc_t, dc_t * c_prev, dc_t * c_bar, dc_t * g_i


def _lstm(dh_t, dc_t, x_t, h_prev, c_prev, p, *, through_h=True, from_next=True):
    g_f = _sigmoid(x_t @ p.W_xf + h_prev @ p.W_hf + p.b_f)
    g_i = _sigmoid(x_t @ p.W_xi + h_prev @ p.W_hi + p.b_i)
    c_bar = np.tanh(x_t @ p.W_xc + h_prev @ p.W_hc + p.b_c)
    g_o = _sigmoid(x_t @ p.W_xo + h_prev @ p.W_ho + p.b_o)
    c_t = g_f * c_prev + g_i * c_bar
    dg_o, dc_h = hidden_output_backward(dh_t, g_o, c_t)
    dc = (dc_t if from_next else 0) + (dc_h if through_h else 0)
    dc_prev, dg_f, dg_i, dc_bar = cell_state_update_backward(dc, c_prev, g_f, g_i, c_bar)
    f = _affine_backward(dg_f * g_f * (1 - g_f), x_t, h_prev, p.W_xf, p.W_hf)
    i = _affine_backward(dg_i * g_i * (1 - g_i), x_t, h_prev, p.W_xi, p.W_hi)
    c = _affine_backward(dc_bar * (1 - c_bar**2), x_t, h_prev, p.W_xc, p.W_hc)
    o = _affine_backward(dg_o * g_o * (1 - g_o), x_t, h_prev, p.W_xo, p.W_ho)
    grads = type(p)(*i[2:], *f[2:], *c[2:], *o[2:])
    return f[0] + i[0] + c[0] + o[0], f[1] + i[1] + c[1] + o[1], dc_prev, grads


@wrong("lstm_step_backward", m.H_PATH_INTO_C_MISSING)
def lstm_without_the_path_through_h(dh_t, dc_t, x_t, h_prev, c_prev, params):
    return _lstm(dh_t, dc_t, x_t, h_prev, c_prev, params, through_h=False)


@wrong("lstm_step_backward", m.NEXT_C_NOT_CARRIED)
def lstm_ignores_dc_t(dh_t, dc_t, x_t, h_prev, c_prev, params):
    return _lstm(dh_t, dc_t, x_t, h_prev, c_prev, params, from_next=False)


# -- GRU -----------------------------------------------------------------------------------------


def _gru(dh_t, x_t, h_prev, p, *, direct=True, keras=False, reset=True, q_in_dW_hh=True):
    g_r = _sigmoid(x_t @ p.W_xr + h_prev @ p.W_hr + p.b_r)
    q = g_r * h_prev
    h_bar = np.tanh(x_t @ p.W_xh + q @ p.W_hh + p.b_h)
    g_z = _sigmoid(x_t @ p.W_xz + h_prev @ p.W_hz + p.b_z)
    if keras:  # as if h_t = g_z h_prev + (1 - g_z) h_bar
        dh_bar, dg_z, dh_direct = dh_t * (1 - g_z), dh_t * (h_prev - h_bar), dh_t * g_z
    else:
        dh_bar, dg_z, dh_direct = dh_t * g_z, dh_t * (h_bar - h_prev), dh_t * (1 - g_z)
    da_h = dh_bar * (1 - h_bar**2)
    dq = da_h @ p.W_hh.T
    da_r = dq * h_prev * g_r * (1 - g_r)
    da_z = dg_z * g_z * (1 - g_z)
    dh_prev = dq * g_r if reset else dq
    if direct:
        dh_prev = dh_prev + dh_direct
    dh_prev = dh_prev + da_r @ p.W_hr.T + da_z @ p.W_hz.T
    dx_t = da_r @ p.W_xr.T + da_z @ p.W_xz.T + da_h @ p.W_xh.T
    grads = {
        "W_xz": x_t.T @ da_z, "W_hz": h_prev.T @ da_z, "b_z": da_z.sum(0),
        "W_xr": x_t.T @ da_r, "W_hr": h_prev.T @ da_r, "b_r": da_r.sum(0),
        "W_xh": x_t.T @ da_h, "W_hh": (q if q_in_dW_hh else h_prev).T @ da_h, "b_h": da_h.sum(0),
    }  # fmt: skip
    return dx_t, dh_prev, grads


@wrong("gru_step_backward", m.DIRECT_PATH_MISSING)
def gru_without_the_direct_path(dh_t, x_t, h_prev, params):
    return _gru(dh_t, x_t, h_prev, params, direct=False)


@wrong("gru_step_backward", m.UPDATE_CONVENTION_SWAPPED)
def gru_in_keras_convention(dh_t, x_t, h_prev, params):
    return _gru(dh_t, x_t, h_prev, params, keras=True)


@wrong("gru_step_backward", m.RESET_MISSING_IN_DH_PREV)
def gru_reset_forgotten_in_dh_prev(dh_t, x_t, h_prev, params):
    return _gru(dh_t, x_t, h_prev, params, reset=False)


@wrong("gru_step_backward", m.DW_HH_USES_H_PREV)
def gru_weight_gradient_of_w_hh_from_h_prev(dh_t, x_t, h_prev, params):
    return _gru(dh_t, x_t, h_prev, params, q_in_dW_hh=False)
