"""A correct bptt answer in another style: einsum, a BPTT that does not call the step.

Read as notebook code (the tests exec this file into a fresh namespace). Written without
gradecheck or rnn_ref: ``np.einsum`` for every product, the sigmoid's derivative through
``exp``, a BPTT that stores every step's pre-activation gradient and sums the weights' at the
end, weight gradients returned in the params' own NamedTuple type.
"""

import numpy as np


def _gate(d_out, local, x_t, h_prev, W_x, W_h):
    da = d_out * local
    return (
        np.einsum("nh,dh->nd", da, W_x),
        np.einsum("nh,kh->nk", da, W_h),
        np.einsum("nd,nh->dh", x_t, da),
        np.einsum("nk,nh->kh", h_prev, da),
        np.einsum("nh->h", da),
    )


def _sigmoid_prime(g):
    # the sigmoid's derivative at a = logit(g), written through exp(-a) = (1 - g) / g
    e = (1.0 - g) / g
    return e / (1.0 + e) ** 2


def simple_rnn_step_backward(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    return _gate(dh_t, 1.0 - np.square(h_t), x_t, h_prev, W_xh, W_hh)


def simple_rnn_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh):
    T = x.shape[1]
    h_prevs = np.concatenate([h0[:, None], h_seq[:, :-1]], axis=1)
    da = np.zeros(h_seq.shape)
    carried = np.zeros(h0.shape)
    for t in reversed(range(T)):
        da[:, t] = (dh_seq[:, t] + carried) * (1.0 - h_seq[:, t] ** 2)
        carried = np.einsum("nh,kh->nk", da[:, t], W_hh)
    dx = np.einsum("nth,dh->ntd", da, W_xh)
    dW_xh = np.einsum("ntd,nth->dh", x, da)
    dW_hh = np.einsum("ntk,nth->kh", h_prevs, da)
    return dx, carried, dW_xh, dW_hh, da.sum(axis=(0, 1))


def forget_gate_backward(dg_f, x_t, h_prev, g_f, W_xf, W_hf):
    return _gate(dg_f, _sigmoid_prime(g_f), x_t, h_prev, W_xf, W_hf)


def input_gate_backward(dg_i, x_t, h_prev, g_i, W_xi, W_hi):
    return _gate(dg_i, _sigmoid_prime(g_i), x_t, h_prev, W_xi, W_hi)


def candidate_cell_state_backward(dc_bar, x_t, h_prev, c_bar, W_xc, W_hc):
    return _gate(dc_bar, 1.0 - c_bar * c_bar, x_t, h_prev, W_xc, W_hc)


def output_gate_backward(dg_o, x_t, h_prev, g_o, W_xo, W_ho):
    return _gate(dg_o, _sigmoid_prime(g_o), x_t, h_prev, W_xo, W_ho)


def hidden_output_backward(dh_t, g_o, c_t):
    return dh_t * np.tanh(c_t), dh_t * g_o / np.cosh(c_t) ** 2


def cell_state_update_backward(dc_t, c_prev, g_f, g_i, c_bar):
    return dc_t * g_f, dc_t * c_prev, dc_t * c_bar, dc_t * g_i


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def lstm_step_backward(dh_t, dc_t, x_t, h_prev, c_prev, params):
    p = params
    a = {k: x_t @ getattr(p, "W_x" + k) + h_prev @ getattr(p, "W_h" + k) + getattr(p, "b_" + k)
         for k in "fico"}  # fmt: skip
    g = {k: np.tanh(a[k]) if k == "c" else _sigmoid(a[k]) for k in a}
    c_t = g["f"] * c_prev + g["i"] * g["c"]
    s = np.tanh(c_t)
    dc = dc_t + dh_t * g["o"] * (1.0 - s * s)
    upstream = {"f": dc * c_prev, "i": dc * g["c"], "c": dc * g["i"], "o": dh_t * s}
    local = {k: 1.0 - g[k] ** 2 if k == "c" else _sigmoid_prime(g[k]) for k in g}
    results = {
        k: _gate(upstream[k], local[k], x_t, h_prev, getattr(p, "W_x" + k), getattr(p, "W_h" + k))
        for k in "fico"
    }
    fields = {}
    for k, (_, _, dW_x, dW_h, db) in results.items():
        fields.update({"W_x" + k: dW_x, "W_h" + k: dW_h, "b_" + k: db})
    dx_t = np.sum([r[0] for r in results.values()], axis=0)
    dh_prev = np.sum([r[1] for r in results.values()], axis=0)
    return dx_t, dh_prev, dc * g["f"], p._replace(**fields)


def gru_step_backward(dh_t, x_t, h_prev, params):
    p = params
    g_r = _sigmoid(x_t @ p.W_xr + h_prev @ p.W_hr + p.b_r)
    g_z = _sigmoid(x_t @ p.W_xz + h_prev @ p.W_hz + p.b_z)
    h_bar = np.tanh(x_t @ p.W_xh + (g_r * h_prev) @ p.W_hh + p.b_h)
    dx_h, d_reset_h, dW_xh, dW_hh, db_h = _gate(
        dh_t * g_z, 1.0 - h_bar**2, x_t, g_r * h_prev, p.W_xh, p.W_hh
    )
    dx_z, dh_z, dW_xz, dW_hz, db_z = _gate(
        dh_t * (h_bar - h_prev), _sigmoid_prime(g_z), x_t, h_prev, p.W_xz, p.W_hz
    )
    dx_r, dh_r, dW_xr, dW_hr, db_r = _gate(
        d_reset_h * h_prev, _sigmoid_prime(g_r), x_t, h_prev, p.W_xr, p.W_hr
    )
    grads = type(p)(dW_xz, dW_hz, db_z, dW_xr, dW_hr, db_r, dW_xh, dW_hh, db_h)
    dh_prev = dh_t * (1.0 - g_z) + d_reset_h * g_r + dh_z + dh_r
    return dx_h + dx_z + dx_r, dh_prev, grads
