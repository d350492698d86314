"""A correct bptt answer written the long way: one example at a time, as a learner might.

Read as notebook code (the tests exec this file into a fresh namespace, which the grading's
substitution then edits): each function looks the others up by name, like the notebook's
cells. Written without gradecheck or rnn_ref: loops over the batch and time, outer products,
lists instead of tuples, a dict of weight gradients, a helper of its own.
"""

import numpy as np


def _affine_backward(da, x_t, h_prev, W_x, W_h):
    """One example at a time: the gradients of a = x_t W_x + h_prev W_h + b."""
    dx_t = np.zeros_like(x_t, dtype=float)
    dh_prev = np.zeros_like(h_prev, dtype=float)
    dW_x = np.zeros_like(W_x, dtype=float)
    dW_h = np.zeros_like(W_h, dtype=float)
    db = np.zeros(W_h.shape[0])
    for n in range(da.shape[0]):
        dx_t[n] = W_x @ da[n]
        dh_prev[n] = W_h @ da[n]
        dW_x += np.outer(x_t[n], da[n])
        dW_h += np.outer(h_prev[n], da[n])
        db += da[n]
    return [dx_t, dh_prev, dW_x, dW_h, db]


def simple_rnn_step_backward(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    return _affine_backward(dh_t * (1.0 - h_t * h_t), x_t, h_prev, W_xh, W_hh)


def simple_rnn_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh):
    T = x.shape[1]
    dx = np.zeros(x.shape)
    dW_xh, dW_hh, db_h = 0.0, 0.0, 0.0
    dh_next = np.zeros(h0.shape)
    for t in range(T - 1, -1, -1):
        h_prev = h_seq[:, t - 1] if t > 0 else h0
        step = simple_rnn_step_backward(
            dh_next + dh_seq[:, t], x[:, t], h_prev, h_seq[:, t], W_xh, W_hh
        )
        dx[:, t] = step[0]
        dh_next = step[1]
        dW_xh = dW_xh + step[2]
        dW_hh = dW_hh + step[3]
        db_h = db_h + step[4]
    return [dx, dh_next, dW_xh, dW_hh, db_h]


def forget_gate_backward(dg_f, x_t, h_prev, g_f, W_xf, W_hf):
    return _affine_backward(dg_f * g_f * (1.0 - g_f), x_t, h_prev, W_xf, W_hf)


def input_gate_backward(dg_i, x_t, h_prev, g_i, W_xi, W_hi):
    return _affine_backward(dg_i * g_i * (1.0 - g_i), x_t, h_prev, W_xi, W_hi)


def candidate_cell_state_backward(dc_bar, x_t, h_prev, c_bar, W_xc, W_hc):
    return _affine_backward(dc_bar * (1.0 - c_bar**2), x_t, h_prev, W_xc, W_hc)


def output_gate_backward(dg_o, x_t, h_prev, g_o, W_xo, W_ho):
    return _affine_backward(dg_o * g_o * (1.0 - g_o), x_t, h_prev, W_xo, W_ho)


def hidden_output_backward(dh_t, g_o, c_t):
    tanh_c = np.tanh(c_t)
    return [dh_t * tanh_c, dh_t * g_o * (1.0 - tanh_c**2)]


def cell_state_update_backward(dc_t, c_prev, g_f, g_i, c_bar):
    return [g_f * dc_t, c_prev * dc_t, c_bar * dc_t, g_i * dc_t]


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_step_backward(dh_t, dc_t, x_t, h_prev, c_prev, params):
    p = params
    g_f = _sigmoid(x_t @ p.W_xf + h_prev @ p.W_hf + p.b_f)
    g_i = _sigmoid(x_t @ p.W_xi + h_prev @ p.W_hi + p.b_i)
    c_bar = np.tanh(x_t @ p.W_xc + h_prev @ p.W_hc + p.b_c)
    g_o = _sigmoid(x_t @ p.W_xo + h_prev @ p.W_ho + p.b_o)
    c_t = g_f * c_prev + g_i * c_bar
    dg_o, dc_from_h = hidden_output_backward(dh_t, g_o, c_t)
    dc_prev, dg_f, dg_i, dc_bar = cell_state_update_backward(
        dc_t + dc_from_h, c_prev, g_f, g_i, c_bar
    )
    parts = {
        "f": forget_gate_backward(dg_f, x_t, h_prev, g_f, p.W_xf, p.W_hf),
        "i": input_gate_backward(dg_i, x_t, h_prev, g_i, p.W_xi, p.W_hi),
        "c": candidate_cell_state_backward(dc_bar, x_t, h_prev, c_bar, p.W_xc, p.W_hc),
        "o": output_gate_backward(dg_o, x_t, h_prev, g_o, p.W_xo, p.W_ho),
    }
    grads = {}
    for gate, (_, _, dW_x, dW_h, db) in parts.items():
        grads["W_x" + gate], grads["W_h" + gate], grads["b_" + gate] = dW_x, dW_h, db
    dx_t = sum(part[0] for part in parts.values())
    dh_prev = sum(part[1] for part in parts.values())
    return [dx_t, dh_prev, dc_prev, grads]


def gru_step_backward(dh_t, x_t, h_prev, params):
    p = params
    g_r = _sigmoid(x_t @ p.W_xr + h_prev @ p.W_hr + p.b_r)
    q = g_r * h_prev
    h_bar = np.tanh(x_t @ p.W_xh + q @ p.W_hh + p.b_h)
    g_z = _sigmoid(x_t @ p.W_xz + h_prev @ p.W_hz + p.b_z)
    # h_t = h_prev + g_z (h_bar - h_prev)
    dg_z = dh_t * (h_bar - h_prev)
    dh_bar = dh_t * g_z
    dx_h, dq, dW_xh, dW_hh, db_h = _affine_backward(
        dh_bar * (1.0 - h_bar**2), x_t, q, p.W_xh, p.W_hh
    )
    dx_z, dh_z, dW_xz, dW_hz, db_z = _affine_backward(
        dg_z * g_z * (1.0 - g_z), x_t, h_prev, p.W_xz, p.W_hz
    )
    dx_r, dh_r, dW_xr, dW_hr, db_r = _affine_backward(
        dq * h_prev * g_r * (1.0 - g_r), x_t, h_prev, p.W_xr, p.W_hr
    )
    dh_prev = dh_t - dh_t * g_z + dq * g_r + dh_z + dh_r
    grads = {
        "W_xz": dW_xz, "W_hz": dW_hz, "b_z": db_z,
        "W_xr": dW_xr, "W_hr": dW_hr, "b_r": db_r,
        "W_xh": dW_xh, "W_hh": dW_hh, "b_h": db_h,
    }  # fmt: skip
    return [dx_h + dx_z + dx_r, dh_prev, grads]
