"""Fabricated submissions for the assignment tests, and what grading must make of them.

Each submission fills some answer cells of the student notebook: with the solution, with a
correct answer written differently (the concatenated-weight form, float32,
other sigmoids, einsum), or with a typical mistake. ``expected_failures`` lists the grade cells
that must score 0 and a phrase their failure message must contain; every other grade cell must
score full marks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from course import solution_answers

GRADE_CELLS = {
    "rnn": {"rnn_step_no_bias": 2, "rnn_step_bias": 2, "rnn_sequence": 3},
    "lstm": {
        "lstm_forget_gate": 2,
        "lstm_input_gate": 2,
        "lstm_candidate_cell_state": 2,
        "lstm_cell_state_update": 2,
        "lstm_output_gate": 2,
        "lstm_hidden_output": 2,
        "lstm_step": 2,
        "lstm_sequence": 2,
        "lstm_keras_split": 2,
        "lstm_keras_forward": 3,
    },
    "gru": {
        "gru_reset_gate": 2,
        "gru_candidate_state": 2,
        "gru_update_gate": 2,
        "gru_new_state": 2,
        "gru_step": 2,
        "gru_sequence": 2,
        "gru_candidate_reset_after": 2,
        "gru_keras_forward": 3,
    },
    "brnn": {
        "brnn_forward_layer": 2,
        "brnn_go_backwards": 2,
        "brnn_merge_concat": 1,
        "brnn_merge_sum": 1,
        "brnn_merge_mul": 1,
        "brnn_merge_ave": 1,
        "brnn_merge_none": 1,
        "brnn_bidirectional_outputs": 3,
        "brnn_bidirectional_states": 2,
    },
    "bptt": {
        "bptt_rnn_step_backward": 3,
        "bptt_rnn_bptt": 4,
        "bptt_forget_gate": 1,
        "bptt_input_gate": 1,
        "bptt_candidate_cell_state": 1,
        "bptt_output_gate": 1,
        "bptt_hidden_output": 2,
        "bptt_cell_state_update": 2,
        "bptt_lstm_step": 3,
        "bptt_gru_step": 4,
    },
}
"""Assignment -> grade cell -> points."""

GRADED_BY = {
    "rnn_step_answer": ["rnn_step_no_bias", "rnn_step_bias"],
    "rnn_sequence_answer": ["rnn_sequence"],
    "brnn_forward_answer": ["brnn_forward_layer"],
    "brnn_backwards_answer": ["brnn_go_backwards"],
    "brnn_merge_answer": [f"brnn_merge_{m}" for m in ("concat", "sum", "mul", "ave", "none")],
    "brnn_bidirectional_answer": ["brnn_bidirectional_outputs", "brnn_bidirectional_states"],
}
"""Answer cell -> the grade cells that check it, where that is not ``<answer minus _answer>``."""

NOT_IMPLEMENTED = "NotImplementedError"


def grade_cells_of(answer_id: str) -> list[str]:
    return GRADED_BY.get(answer_id, [answer_id.removesuffix("_answer")])


@dataclass
class Submission:
    """The answers a learner typed (answer cell -> code) and the grade cells that must fail."""

    answers: dict[str, str]
    expected_failures: dict[str, str] = field(default_factory=dict)
    moved_up: list[str] = field(default_factory=list)
    """Grade cells the learner moved above the others (see ``course.move_up``)."""


def submitted_notebook(release, submission: Submission):
    """The notebook a learner hands in: ``release`` with the answers, cells moved as they were."""
    from course import fill, move_up

    notebook = fill(release, submission.answers)
    return move_up(notebook, submission.moved_up) if submission.moved_up else notebook


def solution_with(assignment: str, overrides: dict[str, str], failures: dict[str, str]):
    """The solution everywhere but in ``overrides``."""
    return Submission({**solution_answers(assignment), **overrides}, failures)


def only(assignment: str, answer_ids: list[str]) -> Submission:
    """The solution in ``answer_ids``; every other answer cell untouched (still a stub)."""
    answers = {a: code for a, code in solution_answers(assignment).items() if a in answer_ids}
    graded = {g for a in answer_ids for g in grade_cells_of(a)}
    failures = {g: NOT_IMPLEMENTED for g in GRADE_CELLS[assignment] if g not in graded}
    return Submission(answers, failures)


def moved_up(assignment: str, answer_ids: list[str]) -> Submission:
    """Only ``answer_ids`` solved, and their grade cells moved above the other grade cells.

    Their hidden tests substitute correct versions of the earlier functions; that must last only
    until the end of their own cells, so the unfinished earlier functions still score 0.
    """
    submission = only(assignment, answer_ids)
    submission.moved_up = [g for a in answer_ids for g in grade_cells_of(a)]
    return submission


def blank(assignment: str) -> Submission:
    return Submission({}, {g: NOT_IMPLEMENTED for g in GRADE_CELLS[assignment]})


def _gate(name: str, wx: str, wh: str, b: str, body: str) -> str:
    return f"def {name}(x_t, h_prev, {wx}, {wh}, {b}=None):\n{body}"


# --- rnn ---------------------------------------------------------------------------------------

RNN_ALTERNATIVE = {
    "rnn_step_answer": """
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    # The notes' form: one matrix on the concatenation [h_{t-1}, x_t]; a float32 result.
    W = np.concatenate([W_hh, W_xh], axis=0)
    z = np.concatenate([h_prev, x_t], axis=1) @ W
    if b_h is not None:
        z = z + b_h
    return np.tanh(z).astype(np.float32)
""",
    "rnn_sequence_answer": """
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    x = np.asarray(x, dtype=np.float64)
    inputs = np.einsum("ntd,dh->nth", x, W_xh)
    if b_h is not None:
        inputs = inputs + b_h
    h = np.zeros((x.shape[0], W_hh.shape[0])) if h0 is None else np.asarray(h0)
    out = np.empty_like(inputs)
    for t in range(x.shape[1]):
        h = np.tanh(inputs[:, t] + np.einsum("nh,hk->nk", h, W_hh))
        out[:, t] = h
    return out
""",
}

RNN_MISTAKES_A = {
    "rnn_step_answer": """
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    z = x_t @ W_xh + h_prev @ W_hh
    if b_h is not None:
        z = z + b_h
    return 1 / (1 + np.exp(-z))
""",
    "rnn_sequence_answer": """
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    h = np.zeros((x.shape[0], W_hh.shape[0])) if h0 is None else h0
    for t in range(x.shape[1]):
        h = simple_rnn_step(x[:, t], h, W_xh, W_hh, b_h)
    return h
""",
}

RNN_MISTAKES_B = {
    "rnn_step_answer": """
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    return np.tanh(x_t @ W_xh + h_prev @ W_hh)
""",
    "rnn_sequence_answer": """
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    h0 = np.zeros((x.shape[0], W_hh.shape[0])) if h0 is None else h0
    steps = [simple_rnn_step(x[:, t], h0, W_xh, W_hh, b_h) for t in range(x.shape[1])]
    return np.stack(steps, axis=1)
""",
}

RNN_MISTAKES_C = {
    "rnn_step_answer": """
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    z = x_t @ W_hh + h_prev @ W_xh
    return np.tanh(z if b_h is None else z + b_h)
""",
}

RNN_IN_PLACE = {
    "rnn_step_answer": """
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    # Correct, but computed in the array h_prev (it changes the caller's array).
    h_prev[...] = x_t @ W_xh + h_prev @ W_hh
    if b_h is not None:
        h_prev += b_h
    np.tanh(h_prev, out=h_prev)
    return h_prev
""",
    "rnn_sequence_answer": """
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    N, T, _ = x.shape
    h = np.zeros((N, W_hh.shape[0])) if h0 is None else h0
    x @= np.eye(x.shape[-1])  # in place, harmless to the result
    states = []
    for t in range(T):
        h = np.tanh(x[:, t] @ W_xh + h @ W_hh + (0.0 if b_h is None else b_h))
        states.append(h)
        x[:, t] = 0.0  # the step has been read
    return np.stack(states, axis=1)
""",
}

RNN_BAD_CALL = {
    "rnn_sequence_answer": """
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    N, T, D = x.shape
    h = np.zeros((N, D)) if h0 is None else h0  # (N, D): right only when D == H
    states = []
    for t in range(T):
        h = simple_rnn_step(x[:, t], h, W_xh, W_hh, b_h)
        states.append(h)
    return np.stack(states, axis=1)
""",
}

RNN_NO_BIAS_BUG = {
    "rnn_step_answer": """
def simple_rnn_step(x_t, h_prev, W_xh, W_hh, b_h=None):
    return np.tanh(x_t @ W_xh + h_prev @ W_hh + b_h)
""",
}

# --- lstm --------------------------------------------------------------------------------------

LSTM_ALTERNATIVE = {
    "lstm_forget_gate_answer": """
def forget_gate(x_t, h_prev, W_xf, W_hf, b_f=None):
    # einsum, and the naive sigmoid (it overflows for large inputs, and warns)
    z = np.einsum("nd,dh->nh", x_t, W_xf) + np.einsum("nk,kh->nh", h_prev, W_hf)
    if b_f is not None:
        z += b_f
    return 1.0 / (1.0 + np.exp(-z))
""",
    "lstm_input_gate_answer": """
def input_gate(x_t, h_prev, W_xi, W_hi, b_i=None):
    # the notes' concatenated form, and sigmoid through tanh
    z = np.hstack([h_prev, x_t]) @ np.vstack([W_hi, W_xi])
    z = z if b_i is None else z + b_i
    return 0.5 * (1.0 + np.tanh(0.5 * z))
""",
    "lstm_candidate_cell_state_answer": """
def candidate_cell_state(x_t, h_prev, W_xc, W_hc, b_c=None):
    # float32 throughout
    z = np.float32(x_t) @ np.float32(W_xc) + np.float32(h_prev) @ np.float32(W_hc)
    if b_c is not None:
        z = z + np.float32(b_c)
    return np.tanh(z)
""",
    "lstm_cell_state_update_answer": """
def cell_state_update(c_prev, g_f, g_i, c_bar):
    return np.add(np.multiply(g_f, c_prev), np.multiply(g_i, c_bar))
""",
    "lstm_output_gate_answer": """
def output_gate(x_t, h_prev, W_xo, W_ho, b_o=None):
    # a "stable" sigmoid written with np.where (both branches are evaluated and warn)
    z = x_t @ W_xo + h_prev @ W_ho + (0.0 if b_o is None else b_o)
    return np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))
""",
    "lstm_hidden_output_answer": """
def hidden_output(g_o, c_t):
    return [list(row) for row in np.multiply(g_o, np.tanh(c_t))]
""",
    "lstm_step_answer": """
def lstm_step(x_t, h_prev, c_prev, params):
    # all four gates in one product, split in Keras's order; returns a list
    p = params
    W_x = np.concatenate([p.W_xi, p.W_xf, p.W_xc, p.W_xo], axis=1)
    W_h = np.concatenate([p.W_hi, p.W_hf, p.W_hc, p.W_ho], axis=1)
    z = x_t @ W_x + h_prev @ W_h
    if p.b_i is not None:
        z = z + np.concatenate([p.b_i, p.b_f, p.b_c, p.b_o])
    i, f, c, o = np.split(z, 4, axis=1)
    c_t = sigmoid(f) * c_prev + sigmoid(i) * np.tanh(c)
    return [sigmoid(o) * np.tanh(c_t), c_t]
""",
    "lstm_sequence_answer": """
def lstm_sequence(x, params, h0=None, c0=None):
    N, T, _ = x.shape
    H = params[1].shape[0]  # W_hi, by position
    h = np.zeros((N, H)) if h0 is None else h0
    c = np.zeros((N, H)) if c0 is None else c0
    out = np.zeros((N, T, H))
    for t in range(T):
        h, c = lstm_step(x[:, t, :], h, c, params)
        out[:, t, :] = h
    return out
""",
    "lstm_keras_split_answer": """
def split_keras_lstm_weights(kernel, recurrent_kernel, bias):
    k, r, b = np.split(kernel, 4, axis=1), np.split(recurrent_kernel, 4, axis=1), np.split(bias, 4)
    return LSTMParams(k[0], r[0], b[0], k[1], r[1], b[1], k[2], r[2], b[2], k[3], r[3], b[3])
""",
    "lstm_keras_forward_answer": """
def keras_lstm_forward(x, kernel, recurrent_kernel, bias):
    N, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, c, out = np.zeros((N, H)), np.zeros((N, H)), []
    for t in range(T):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, 1)
""",
}

LSTM_MISTAKES_A = {
    "lstm_forget_gate_answer": """
def forget_gate(x_t, h_prev, W_xf, W_hf, b_f=None):
    z = x_t @ W_xf + h_prev @ W_hf
    if b_f is not None:
        z = z + b_f
    return np.tanh(z)
""",
    "lstm_candidate_cell_state_answer": """
def candidate_cell_state(x_t, h_prev, W_xc, W_hc, b_c=None):
    z = x_t @ W_xc + h_prev @ W_hc
    if b_c is not None:
        z = z + b_c
    return sigmoid(z)
""",
    "lstm_output_gate_answer": """
def output_gate(x_t, h_prev, W_xo, W_ho, b_o=None):
    z = x_t @ W_ho + h_prev @ W_xo
    if b_o is not None:
        z = z + b_o
    return sigmoid(z)
""",
    "lstm_step_answer": """
def lstm_step(x_t, h_prev, c_prev, params):
    p = params
    g_f = forget_gate(x_t, h_prev, p.W_xf, p.W_hf, p.b_f)
    g_i = input_gate(x_t, h_prev, p.W_xi, p.W_hi, p.b_i)
    c_bar = candidate_cell_state(x_t, h_prev, p.W_xc, p.W_hc, p.b_c)
    c_t = cell_state_update(c_prev, g_f, g_i, c_bar)
    g_o = output_gate(x_t, h_prev, p.W_xo, p.W_ho, p.b_o)
    return c_t, hidden_output(g_o, c_t)
""",
    "lstm_keras_split_answer": """
def split_keras_lstm_weights(kernel, recurrent_kernel, bias):
    H = recurrent_kernel.shape[0]
    weights = {}
    for k, gate in enumerate("fico"):
        columns = slice(k * H, (k + 1) * H)
        weights[f"W_x{gate}"] = kernel[:, columns]
        weights[f"W_h{gate}"] = recurrent_kernel[:, columns]
        weights[f"b_{gate}"] = bias[columns]
    return LSTMParams(**weights)
""",
}

LSTM_MISTAKES_B = {
    "lstm_input_gate_answer": """
def input_gate(x_t, h_prev, W_xi, W_hi, b_i=None):
    return sigmoid(x_t @ W_xi + h_prev @ W_hi)
""",
    "lstm_cell_state_update_answer": """
def cell_state_update(c_prev, g_f, g_i, c_bar):
    return g_i * c_prev + g_f * c_bar
""",
    "lstm_hidden_output_answer": """
def hidden_output(g_o, c_t):
    return g_o * c_t
""",
    "lstm_sequence_answer": """
def lstm_sequence(x, params, h0=None, c0=None):
    N, T, _ = np.shape(x)
    H = np.shape(params.W_hi)[0]
    h = np.zeros((N, H)) if h0 is None else h0
    c = np.zeros((N, H)) if c0 is None else c0
    for t in range(T):
        h, c = lstm_step(x[:, t], h, c, params)
    return h
""",
    "lstm_keras_forward_answer": """
def keras_lstm_forward(x, kernel, recurrent_kernel, bias):
    H = recurrent_kernel.shape[0]
    blocks = {}
    for k, gate in enumerate("ifoc"):
        cols = slice(k * H, (k + 1) * H)
        blocks[gate] = (kernel[:, cols], recurrent_kernel[:, cols], bias[cols])
    params = LSTMParams(*blocks["i"], *blocks["f"], *blocks["c"], *blocks["o"])
    return lstm_sequence(x, params)
""",
}

LSTM_NOISY = {
    "lstm_forget_gate_answer": """
import sys
import warnings


def forget_gate(x_t, h_prev, W_xf, W_hf, b_f=None):
    # Correct, but it warns and writes to stderr (nbgrader scores a cell with stderr output 0).
    warnings.warn("forget_gate: this helper is deprecated", DeprecationWarning, stacklevel=1)
    print("debug: forget_gate called", file=sys.stderr)
    z = x_t @ W_xf + h_prev @ W_hf
    return 1.0 / (1.0 + np.exp(-(z if b_f is None else z + b_f)))
""",
    "lstm_cell_state_update_answer": """
def cell_state_update(c_prev, g_f, g_i, c_bar):
    warnings.warn("cell_state_update: a user warning")
    c_prev *= g_f  # in place: the caller's c_prev changes
    c_prev += g_i * c_bar
    return c_prev
""",
}

# --- gru ---------------------------------------------------------------------------------------

GRU_ALTERNATIVE = {
    "gru_reset_gate_answer": """
def reset_gate(x_t, h_prev, W_xr, W_hr, b_r=None):
    z = x_t @ W_xr + h_prev @ W_hr
    return 1 / (1 + np.exp(-(z if b_r is None else z + b_r)))
""",
    "gru_candidate_state_answer": """
def candidate_state(x_t, h_prev, g_r, W_xh, W_hh, b_h=None):
    z = np.einsum("nd,dh->nh", x_t, W_xh) + np.einsum("nk,kh->nh", g_r * h_prev, W_hh)
    return np.tanh(z if b_h is None else z + b_h)
""",
    "gru_update_gate_answer": """
def update_gate(x_t, h_prev, W_xz, W_hz, b_z=None):
    z = np.concatenate([h_prev, x_t], axis=1) @ np.concatenate([W_hz, W_xz], axis=0)
    return sigmoid(z if b_z is None else z + b_z).astype(np.float32)
""",
    "gru_new_state_answer": """
def new_state(h_prev, h_bar, g_z):
    return h_prev + g_z * (h_bar - h_prev)
""",
    "gru_step_answer": """
def gru_step(x_t, h_prev, params):
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h = params
    bias = (lambda b: 0.0) if b_z is None else (lambda b: b)
    g_r = sigmoid(x_t @ W_xr + h_prev @ W_hr + bias(b_r))
    g_z = sigmoid(x_t @ W_xz + h_prev @ W_hz + bias(b_z))
    h_bar = np.tanh(x_t @ W_xh + (g_r * h_prev) @ W_hh + bias(b_h))
    return (1 - g_z) * h_prev + g_z * h_bar
""",
    "gru_sequence_answer": """
def gru_sequence(x, params, h0=None):
    N, T, _ = x.shape
    h = np.zeros((N, params.W_hh.shape[0])) if h0 is None else h0
    out = np.zeros((N, T, h.shape[1]))
    for t in range(T):
        h = gru_step(x[:, t], h, params)
        out[:, t] = h
    return out
""",
    "gru_candidate_reset_after_answer": """
def candidate_state_reset_after(x_t, h_prev, g_r, W_xh, W_hh, b_h=None, b_hh=None):
    a = np.einsum("nd,dh->nh", x_t, W_xh) + (0 if b_h is None else b_h)
    r = np.einsum("nk,kh->nh", h_prev, W_hh) + (0 if b_hh is None else b_hh)
    return np.tanh(a + g_r * r)
""",
    "gru_keras_forward_answer": """
def keras_gru_forward(x, kernel, recurrent_kernel, bias):
    N, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, out = np.zeros((N, H)), []
    for t in range(T):
        xz, xr, xh = np.split(x[:, t] @ kernel + bias[0], 3, axis=1)
        hz, hr, hh = np.split(h @ recurrent_kernel + bias[1], 3, axis=1)
        z, r = sigmoid(xz + hz), sigmoid(xr + hr)
        h = z * h + (1 - z) * np.tanh(xh + r * hh)
        out.append(h)
    return np.stack(out, axis=1)
""",
}

GRU_FLOAT32 = {
    "gru_reset_gate_answer": """
def reset_gate(x_t, h_prev, W_xr, W_hr, b_r=None):
    f32 = np.float32
    z = x_t.astype(f32) @ W_xr.astype(f32) + h_prev.astype(f32) @ W_hr.astype(f32)
    return 1 / (1 + np.exp(-(z if b_r is None else z + b_r.astype(f32))))
""",
    "gru_candidate_state_answer": """
def candidate_state(x_t, h_prev, g_r, W_xh, W_hh, b_h=None):
    z = np.float32(x_t) @ np.float32(W_xh) + np.float32(g_r * h_prev) @ np.float32(W_hh)
    return np.tanh(z if b_h is None else z + np.float32(b_h))
""",
    "gru_update_gate_answer": """
def update_gate(x_t, h_prev, W_xz, W_hz, b_z=None):
    z = np.matmul(x_t, W_xz, dtype=np.float32) + np.matmul(h_prev, W_hz, dtype=np.float32)
    return 0.5 * (1 + np.tanh(0.5 * (z if b_z is None else z + b_z)))
""",
    "gru_new_state_answer": """
def new_state(h_prev, h_bar, g_z):
    return (1.0 - g_z) * h_prev + g_z * np.asarray(h_bar, dtype=np.float32)
""",
}

GRU_MISTAKES_A = {
    "gru_candidate_state_answer": """
def candidate_state(x_t, h_prev, g_r, W_xh, W_hh, b_h=None):
    z = x_t @ W_xh + g_r * (h_prev @ W_hh)
    return np.tanh(z if b_h is None else z + b_h)
""",
    "gru_new_state_answer": """
def new_state(h_prev, h_bar, g_z):
    return g_z * h_prev + (1 - g_z) * h_bar
""",
    "gru_sequence_answer": """
def gru_sequence(x, params, h0=None):
    N, T, _ = np.shape(x)
    h = np.zeros((N, np.shape(params.W_hz)[0])) if h0 is None else h0
    states = []
    for t in reversed(range(T)):
        h = gru_step(x[:, t], h, params)
        states.append(h)
    return np.stack(states, axis=1)
""",
    "gru_keras_forward_answer": """
def keras_gru_forward(x, kernel, recurrent_kernel, bias):
    N, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, out = np.zeros((N, H)), []
    for t in range(T):
        xz, xr, xh = np.split(x[:, t] @ kernel + bias[0], 3, axis=1)
        hz, hr, hh = np.split(h @ recurrent_kernel + bias[1], 3, axis=1)
        g_z, r = sigmoid(xz + hz), sigmoid(xr + hr)
        h = (1 - g_z) * h + g_z * np.tanh(xh + r * hh)
        out.append(h)
    return np.stack(out, axis=1)
""",
}

GRU_MISTAKES_B = {
    "gru_reset_gate_answer": """
def reset_gate(x_t, h_prev, W_xr, W_hr, b_r=None):
    z = x_t @ W_xr + h_prev @ W_hr
    return np.tanh(z if b_r is None else z + b_r)
""",
    "gru_update_gate_answer": """
def update_gate(x_t, h_prev, W_xz, W_hz, b_z=None):
    return sigmoid(x_t @ W_xz + h_prev @ W_hz)
""",
    "gru_step_answer": """
def gru_step(x_t, h_prev, params):
    p = params
    g_r = reset_gate(x_t, h_prev, p.W_xr, p.W_hr, p.b_r)
    z = x_t @ p.W_xh + g_r * (h_prev @ p.W_hh)
    h_bar = np.tanh(z if p.b_h is None else z + p.b_h)
    g_z = update_gate(x_t, h_prev, p.W_xz, p.W_hz, p.b_z)
    return new_state(h_prev, h_bar, g_z)
""",
    "gru_candidate_reset_after_answer": """
def candidate_state_reset_after(x_t, h_prev, g_r, W_xh, W_hh, b_h=None, b_hh=None):
    z = x_t @ W_xh + (g_r * h_prev) @ W_hh
    for b in (b_h, b_hh):
        if b is not None:
            z = z + b
    return np.tanh(z)
""",
    "gru_keras_forward_answer": """
def keras_gru_forward(x, kernel, recurrent_kernel, bias):
    N, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, out = np.zeros((N, H)), []
    for t in range(T):
        xz, xr, xh = np.split(x[:, t] @ kernel + bias[0], 3, axis=1)
        hz, hr, _ = np.split(h @ recurrent_kernel + bias[1], 3, axis=1)
        z, r = sigmoid(xz + hz), sigmoid(xr + hr)
        h_bar = np.tanh(xh + (r * h) @ recurrent_kernel[:, 2 * H :] + bias[1, 2 * H :])
        h = z * h + (1 - z) * h_bar
        out.append(h)
    return np.stack(out, axis=1)
""",
}

GRU_SCIPY = {
    "gru_reset_gate_answer": """
from scipy.special import expit


def reset_gate(x_t, h_prev, W_xr, W_hr, b_r=None):
    z = x_t @ W_xr + h_prev @ W_hr
    return expit(z if b_r is None else z + b_r)
""",
    "gru_update_gate_answer": """
import scipy


def update_gate(x_t, h_prev, W_xz, W_hz, b_z=None):
    z = x_t @ W_xz + h_prev @ W_hz
    return scipy.special.expit(z if b_z is None else z + b_z)
""",
}

# --- brnn --------------------------------------------------------------------------------------

BRNN_ALTERNATIVE = {
    "brnn_forward_answer": """
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    inputs = np.einsum("ntd,dh->nth", x, W_xh) + (0.0 if b_h is None else b_h)
    h = np.zeros((inputs.shape[0], inputs.shape[2])) if h0 is None else h0
    states = []
    for inputs_t in np.moveaxis(inputs, 1, 0):
        h = np.tanh(inputs_t + h @ W_hh)
        states.append(h)
    return np.array(states).transpose(1, 0, 2)
""",
    "brnn_backwards_answer": """
def rnn_go_backwards(x, W_xh, W_hh, b_h=None):
    h = np.zeros((np.shape(x)[0], np.shape(W_hh)[0]))
    states = []
    for x_t in np.flip(np.moveaxis(np.asarray(x), 1, 0), axis=0):
        h = np.tanh(x_t @ W_xh + h @ W_hh + (0 if b_h is None else b_h))
        states.append(h)
    return np.stack(states, axis=1)
""",
    "brnn_merge_answer": """
def merge_outputs(y_forward, y_backward, merge_mode):
    pair = np.stack([y_forward, y_backward])
    return {
        "concat": lambda: np.concatenate(pair, axis=-1),
        "sum": lambda: pair.sum(axis=0),
        "mul": lambda: pair.prod(axis=0),
        "ave": lambda: pair.mean(axis=0),
        None: lambda: (y_forward, y_backward),
    }[merge_mode]()
""",
    "brnn_bidirectional_answer": """
def bidirectional_rnn(x, forward_weights, backward_weights, merge_mode="concat"):
    forward = simple_rnn_sequence(x, *forward_weights)
    backward = simple_rnn_sequence(x[:, ::-1], *backward_weights)
    outputs = merge_outputs(forward, np.flip(backward, axis=1), merge_mode)
    states = (forward[:, -1], backward[:, -1])
    return (*outputs, *states) if merge_mode is None else (outputs, *states)
""",
}

BRNN_MISTAKES_A = {
    "brnn_backwards_answer": """
def rnn_go_backwards(x, W_xh, W_hh, b_h=None):
    return simple_rnn_sequence(x[:, ::-1], W_xh, W_hh, b_h)[:, ::-1]
""",
    "brnn_merge_answer": """
def merge_outputs(y_forward, y_backward, merge_mode):
    if merge_mode == "concat":
        return np.concatenate([y_backward, y_forward], axis=-1)
    if merge_mode == "sum":
        return y_forward + y_backward
    if merge_mode == "mul":
        return y_forward * y_backward
    if merge_mode == "ave":
        return (y_forward + y_backward) / 2
    return [y_forward, y_backward]
""",
    "brnn_bidirectional_answer": """
def bidirectional_rnn(x, forward_weights, backward_weights, merge_mode="concat"):
    y_forward = simple_rnn_sequence(x, *forward_weights)
    y_backward = rnn_go_backwards(x, *backward_weights)
    merged = merge_outputs(y_forward, y_backward, merge_mode)
    states = [y_forward[:, -1], y_backward[:, -1]]
    return [*merged, *states] if merge_mode is None else [merged, *states]
""",
}

BRNN_MISTAKES_B = {
    "brnn_forward_answer": """
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    h0 = np.zeros((np.shape(x)[0], np.shape(W_hh)[0])) if h0 is None else h0
    states = [np.tanh(x[:, t] @ W_xh + h0 @ W_hh + (0 if b_h is None else b_h))
              for t in range(np.shape(x)[1])]
    return np.stack(states, axis=1)
""",
    "brnn_merge_answer": """
def merge_outputs(y_forward, y_backward, merge_mode):
    if merge_mode == "concat":
        return np.concatenate([y_forward, y_backward], axis=-1)
    if merge_mode in ("sum", "ave"):
        return y_forward + y_backward
    if merge_mode == "mul":
        return y_forward * y_backward
    return [y_forward, y_backward]
""",
    "brnn_bidirectional_answer": """
def bidirectional_rnn(x, forward_weights, backward_weights, merge_mode="concat"):
    y_forward = simple_rnn_sequence(x, *forward_weights)
    y_backward = rnn_go_backwards(x, *backward_weights)[:, ::-1]
    merged = merge_outputs(y_forward, y_backward, merge_mode)
    states = [y_forward[:, -1], y_backward[:, -1]]
    return [*merged, *states] if merge_mode is None else [merged, *states]
""",
}


BRNN_IN_PLACE = {
    "brnn_forward_answer": """
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    N, T, _ = np.shape(x)
    h = np.zeros((N, np.shape(W_hh)[0])) if h0 is None else h0
    states = []
    for t in range(T):
        h = np.tanh(x[:, t] @ W_xh + h @ W_hh + (0.0 if b_h is None else b_h))
        states.append(h)
        x[:, t] = 0.0  # in place: the caller's x is used up
    return np.stack(states, axis=1)
""",
    "brnn_merge_answer": """
def merge_outputs(y_forward, y_backward, merge_mode):
    if merge_mode is None:
        return [y_forward, y_backward]
    if merge_mode == "concat":
        return np.concatenate([y_forward, y_backward], axis=-1)
    if merge_mode == "sum":
        y_forward += y_backward
    elif merge_mode == "mul":
        y_forward *= y_backward
    else:
        y_forward += y_backward
        y_forward /= 2
    return y_forward
""",
}


# --- bptt --------------------------------------------------------------------------------------

BPTT_ALTERNATIVE = {
    "bptt_rnn_step_backward_answer": """
def simple_rnn_step_backward(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    # einsum for every product, the result in float32.
    da = np.einsum("nh,nh->nh", dh_t, 1 - np.square(h_t))
    grads = (
        np.einsum("nh,dh->nd", da, W_xh),
        np.einsum("nh,kh->nk", da, W_hh),
        np.einsum("nd,nh->dh", x_t, da),
        np.einsum("nk,nh->kh", h_prev, da),
        np.ones(da.shape[0]) @ da,
    )
    return tuple(g.astype(np.float32) for g in grads)
""",
    "bptt_rnn_bptt_answer": """
def simple_rnn_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh):
    # Only the recursion in the loop; the weight gradients of all steps at once afterwards.
    N, T, _ = x.shape
    da = np.zeros_like(h_seq)
    dh_next = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        da[:, t] = (dh_seq[:, t] + dh_next) * (1 - h_seq[:, t] ** 2)
        dh_next = da[:, t] @ W_hh.T
    h_prev = np.concatenate([h0[:, None], h_seq[:, :-1]], axis=1)
    dW_xh = np.tensordot(x, da, axes=([0, 1], [0, 1]))
    dW_hh = np.tensordot(h_prev, da, axes=([0, 1], [0, 1]))
    return da @ W_xh.T, dh_next, dW_xh, dW_hh, da.sum(axis=(0, 1))
""",
    "bptt_forget_gate_answer": """
def forget_gate_backward(dg_f, x_t, h_prev, g_f, W_xf, W_hf):
    da = dg_f * g_f * (1 - g_f)
    return [np.dot(da, W_xf.T), np.dot(da, W_hf.T), np.dot(x_t.T, da), np.dot(h_prev.T, da),
            np.sum(da, axis=0)]
""",
    "bptt_candidate_cell_state_answer": """
def candidate_cell_state_backward(dc_bar, x_t, h_prev, c_bar, W_xc, W_hc):
    # The notes' form: one matrix on the concatenation [h_prev, x_t].
    da = dc_bar * (1 - c_bar * c_bar)
    H = W_hc.shape[0]
    d_concat = da @ np.concatenate([W_hc, W_xc], axis=0).T
    dW = np.concatenate([h_prev, x_t], axis=1).T @ da
    return d_concat[:, H:], d_concat[:, :H], dW[H:], dW[:H], da.sum(axis=0)
""",
    "bptt_hidden_output_answer": """
def hidden_output_backward(dh_t, g_o, c_t):
    return dh_t * np.tanh(c_t), dh_t * g_o / np.cosh(c_t) ** 2
""",
    "bptt_cell_state_update_answer": """
def cell_state_update_backward(dc_t, c_prev, g_f, g_i, c_bar):
    return [dc_t * g for g in (g_f, c_prev, c_bar, g_i)]
""",
    "bptt_lstm_step_answer": """
def lstm_step_backward(dh_t, dc_t, x_t, h_prev, c_prev, params):
    # The forward pass written out again; the four gates' local gradients in one loop.
    p = params
    gate = {}
    for k, act in (("f", sigmoid), ("i", sigmoid), ("c", np.tanh), ("o", sigmoid)):
        W_x, W_h, b = getattr(p, "W_x" + k), getattr(p, "W_h" + k), getattr(p, "b_" + k)
        gate[k] = act(x_t @ W_x + h_prev @ W_h + b)
    c_t = gate["f"] * c_prev + gate["i"] * gate["c"]
    s = np.tanh(c_t)
    dc = dc_t + dh_t * gate["o"] * (1 - s**2)
    upstream = {"f": dc * c_prev, "i": dc * gate["c"], "c": dc * gate["i"], "o": dh_t * s}
    dx_t, dh_prev, grads = 0, 0, {}
    for k in "ifco":
        g = gate[k]
        da = upstream[k] * ((1 - g**2) if k == "c" else g * (1 - g))
        dx_t = dx_t + da @ getattr(p, "W_x" + k).T
        dh_prev = dh_prev + da @ getattr(p, "W_h" + k).T
        grads.update({"W_x" + k: x_t.T @ da, "W_h" + k: h_prev.T @ da, "b_" + k: da.sum(0)})
    return dx_t, dh_prev, dc * gate["f"], LSTMParams(**grads)
""",
    "bptt_gru_step_answer": """
def gru_step_backward(dh_t, x_t, h_prev, params):
    # Reuses the LSTM part's local gradients: a sigmoid gate is a sigmoid gate, and the
    # candidate is a tanh gate whose recurrent input is q = g_r * h_prev.
    p = params
    v = gru_step_forward(x_t, h_prev, p)
    g_r, h_bar, g_z = v["g_r"], v["h_bar"], v["g_z"]
    q = g_r * h_prev
    cand = candidate_cell_state_backward(dh_t * g_z, x_t, q, h_bar, p.W_xh, p.W_hh)
    dq = cand[1]
    reset = forget_gate_backward(dq * h_prev, x_t, h_prev, g_r, p.W_xr, p.W_hr)
    update = input_gate_backward(dh_t * (h_bar - h_prev), x_t, h_prev, g_z, p.W_xz, p.W_hz)
    dh_prev = dh_t * (1 - g_z) + dq * g_r + reset[1] + update[1]
    dx_t = cand[0] + reset[0] + update[0]
    return dx_t, dh_prev, GRUParams(*update[2:], *reset[2:], *cand[2:])
""",
}

BPTT_MISTAKES_A = {
    "bptt_rnn_step_backward_answer": """
def simple_rnn_step_backward(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t
    return da @ W_xh.T, da @ W_hh.T, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)
""",
    "bptt_rnn_bptt_answer": """
def simple_rnn_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh):
    N, T, D = x.shape
    H = W_hh.shape[0]
    dx = np.zeros((N, T, D))
    dW_xh, dW_hh, db_h = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    for t in reversed(range(T)):
        h_prev = h0 if t == 0 else h_seq[:, t - 1]
        dx[:, t], dh_prev, dWx, dWh, db = simple_rnn_step_backward(
            dh_seq[:, t], x[:, t], h_prev, h_seq[:, t], W_xh, W_hh
        )
        dW_xh, dW_hh, db_h = dW_xh + dWx, dW_hh + dWh, db_h + db
    return dx, dh_prev, dW_xh, dW_hh, db_h
""",
    "bptt_forget_gate_answer": """
def forget_gate_backward(dg_f, x_t, h_prev, g_f, W_xf, W_hf):
    da = dg_f * (1 - g_f**2)
    return da @ W_xf.T, da @ W_hf.T, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)
""",
    "bptt_hidden_output_answer": """
def hidden_output_backward(dh_t, g_o, c_t):
    return dh_t * np.tanh(c_t), dh_t * g_o
""",
    "bptt_lstm_step_answer": """
def lstm_step_backward(dh_t, dc_t, x_t, h_prev, c_prev, params):
    p = params
    v = lstm_step_forward(x_t, h_prev, c_prev, p)
    dg_o, _ = hidden_output_backward(dh_t, v["g_o"], v["c_t"])
    dc_prev, dg_f, dg_i, dc_bar = cell_state_update_backward(
        dc_t, c_prev, v["g_f"], v["g_i"], v["c_bar"]
    )
    f = forget_gate_backward(dg_f, x_t, h_prev, v["g_f"], p.W_xf, p.W_hf)
    i = input_gate_backward(dg_i, x_t, h_prev, v["g_i"], p.W_xi, p.W_hi)
    c = candidate_cell_state_backward(dc_bar, x_t, h_prev, v["c_bar"], p.W_xc, p.W_hc)
    o = output_gate_backward(dg_o, x_t, h_prev, v["g_o"], p.W_xo, p.W_ho)
    dx_t = f[0] + i[0] + c[0] + o[0]
    dh_prev = f[1] + i[1] + c[1] + o[1]
    return dx_t, dh_prev, dc_prev, LSTMParams(*i[2:], *f[2:], *c[2:], *o[2:])
""",
    "bptt_gru_step_answer": """
def gru_step_backward(dh_t, x_t, h_prev, params):
    p = params
    v = gru_step_forward(x_t, h_prev, p)
    g_r, h_bar, g_z = v["g_r"], v["h_bar"], v["g_z"]
    da_h = dh_t * g_z * (1 - h_bar**2)
    dq = da_h @ p.W_hh.T
    da_z = dh_t * (h_bar - h_prev) * g_z * (1 - g_z)
    da_r = dq * h_prev * g_r * (1 - g_r)
    dh_prev = dq * g_r + da_z @ p.W_hz.T + da_r @ p.W_hr.T
    dx_t = da_z @ p.W_xz.T + da_r @ p.W_xr.T + da_h @ p.W_xh.T
    grads = GRUParams(
        x_t.T @ da_z, h_prev.T @ da_z, da_z.sum(axis=0),
        x_t.T @ da_r, h_prev.T @ da_r, da_r.sum(axis=0),
        x_t.T @ da_h, (g_r * h_prev).T @ da_h, da_h.sum(axis=0),
    )
    return dx_t, dh_prev, grads
""",
}

BPTT_MISTAKES_B = {
    "bptt_rnn_step_backward_answer": """
def simple_rnn_step_backward(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t * (1 - h_t**2)
    return da @ W_xh.T, da @ W_hh.T, da.T @ x_t, da.T @ h_prev, da.sum(axis=0)
""",
    "bptt_rnn_bptt_answer": """
def simple_rnn_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh):
    N, T, D = x.shape
    H = W_hh.shape[0]
    dx = np.zeros((N, T, D))
    dW_xh, dW_hh, db_h = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    dh = dh_seq[:, -1]  # the loss's gradient, fed in at the last step only
    for t in reversed(range(T)):
        h_prev = h0 if t == 0 else h_seq[:, t - 1]
        dx[:, t], dh, dWx, dWh, db = simple_rnn_step_backward(
            dh, x[:, t], h_prev, h_seq[:, t], W_xh, W_hh
        )
        dW_xh, dW_hh, db_h = dW_xh + dWx, dW_hh + dWh, db_h + db
    return dx, dh, dW_xh, dW_hh, db_h
""",
    "bptt_input_gate_answer": """
def input_gate_backward(dg_i, x_t, h_prev, g_i, W_xi, W_hi):
    da = dg_i * g_i * (1 - g_i)
    N = da.shape[0]
    return da @ W_xi.T, da @ W_hi.T, x_t.T @ da / N, h_prev.T @ da / N, da.mean(axis=0)
""",
    "bptt_cell_state_update_answer": """
def cell_state_update_backward(dc_t, c_prev, g_f, g_i, c_bar):
    return dc_t * g_f, dc_t * c_bar, dc_t * c_prev, dc_t * g_i
""",
    "bptt_lstm_step_answer": """
def lstm_step_backward(dh_t, dc_t, x_t, h_prev, c_prev, params):
    p = params
    v = lstm_step_forward(x_t, h_prev, c_prev, p)
    dg_o, dc = hidden_output_backward(dh_t, v["g_o"], v["c_t"])
    dc_prev, dg_f, dg_i, dc_bar = cell_state_update_backward(
        dc, c_prev, v["g_f"], v["g_i"], v["c_bar"]
    )
    f = forget_gate_backward(dg_f, x_t, h_prev, v["g_f"], p.W_xf, p.W_hf)
    i = input_gate_backward(dg_i, x_t, h_prev, v["g_i"], p.W_xi, p.W_hi)
    c = candidate_cell_state_backward(dc_bar, x_t, h_prev, v["c_bar"], p.W_xc, p.W_hc)
    o = output_gate_backward(dg_o, x_t, h_prev, v["g_o"], p.W_xo, p.W_ho)
    dx_t = f[0] + i[0] + c[0] + o[0]
    dh_prev = f[1] + i[1] + c[1] + o[1]
    return dx_t, dh_prev, dc_prev, LSTMParams(*i[2:], *f[2:], *c[2:], *o[2:])
""",
    "bptt_gru_step_answer": """
def gru_step_backward(dh_t, x_t, h_prev, params):
    # Keras's update convention in the backward pass: h_t = g_z h_prev + (1 - g_z) h_bar.
    p = params
    v = gru_step_forward(x_t, h_prev, p)
    g_r, h_bar, g_z = v["g_r"], v["h_bar"], v["g_z"]
    da_h = dh_t * (1 - g_z) * (1 - h_bar**2)
    dq = da_h @ p.W_hh.T
    da_z = dh_t * (h_prev - h_bar) * g_z * (1 - g_z)
    da_r = dq * h_prev * g_r * (1 - g_r)
    dh_prev = dh_t * g_z + dq * g_r + da_z @ p.W_hz.T + da_r @ p.W_hr.T
    dx_t = da_z @ p.W_xz.T + da_r @ p.W_xr.T + da_h @ p.W_xh.T
    grads = GRUParams(
        x_t.T @ da_z, h_prev.T @ da_z, da_z.sum(axis=0),
        x_t.T @ da_r, h_prev.T @ da_r, da_r.sum(axis=0),
        x_t.T @ da_h, (g_r * h_prev).T @ da_h, da_h.sum(axis=0),
    )
    return dx_t, dh_prev, grads
""",
}

BPTT_MISTAKES_C = {
    "bptt_rnn_step_backward_answer": """
def simple_rnn_step_backward(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t * (1 - h_t**2)
    N = x_t.shape[0]
    return da @ W_xh.T, da @ W_hh.T, x_t.T @ da / N, h_prev.T @ da / N, da.mean(axis=0)
""",
    "bptt_rnn_bptt_answer": """
def simple_rnn_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh):
    N, T, D = x.shape
    dx = np.zeros((N, T, D))
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = h0 if t == 0 else h_seq[:, t - 1]
        dx[:, t], dh_next, dW_xh, dW_hh, db_h = simple_rnn_step_backward(
            dh_seq[:, t] + dh_next, x[:, t], h_prev, h_seq[:, t], W_xh, W_hh
        )
    return dx, dh_next, dW_xh, dW_hh, db_h
""",
    "bptt_candidate_cell_state_answer": """
def candidate_cell_state_backward(dc_bar, x_t, h_prev, c_bar, W_xc, W_hc):
    da = dc_bar * c_bar * (1 - c_bar)
    return da @ W_xc.T, da @ W_hc.T, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)
""",
    "bptt_output_gate_answer": """
def output_gate_backward(dg_o, x_t, h_prev, g_o, W_xo, W_ho):
    da = dg_o * g_o * (1 - g_o)
    return da @ W_xo.T, da @ W_ho.T, (x_t.T @ da).T, (h_prev.T @ da).T, da.sum(axis=0)
""",
    "bptt_hidden_output_answer": """
def hidden_output_backward(dh_t, g_o, c_t):
    return dh_t * np.tanh(c_t), dh_t * g_o * (1 - c_t**2)
""",
    "bptt_gru_step_answer": """
def gru_step_backward(dh_t, x_t, h_prev, params):
    p = params
    v = gru_step_forward(x_t, h_prev, p)
    g_r, h_bar, g_z = v["g_r"], v["h_bar"], v["g_z"]
    da_h = dh_t * g_z * (1 - h_bar**2)
    dq = da_h @ p.W_hh.T
    da_z = dh_t * (h_bar - h_prev) * g_z * (1 - g_z)
    da_r = dq * h_prev * g_r * (1 - g_r)
    dh_prev = dh_t * (1 - g_z) + dq * g_r + da_z @ p.W_hz.T + da_r @ p.W_hr.T
    dx_t = da_z @ p.W_xz.T + da_r @ p.W_xr.T + da_h @ p.W_xh.T
    grads = GRUParams(
        x_t.T @ da_z, h_prev.T @ da_z, da_z.sum(axis=0),
        x_t.T @ da_r, h_prev.T @ da_r, da_r.sum(axis=0),
        x_t.T @ da_h, h_prev.T @ da_h, da_h.sum(axis=0),
    )
    return dx_t, dh_prev, grads
""",
}

# Each function is scored alone: stand-ins for the learner's other functions accept what the
# learner's own accept (keywords, renamed or keyword-only parameters), and a function that
# reuses another graded function is scored with that one correct.
RNN_KEYWORD_CALLS = {
    "rnn_step_answer": """
def simple_rnn_step(x, h, Wx, Wh, b=None):
    z = x @ Wx + h @ Wh
    return np.tanh(z if b is None else z + b)
""",
    "rnn_sequence_answer": """
def simple_rnn_sequence(x, W_xh, W_hh, b_h=None, h0=None):
    h = np.zeros((x.shape[0], W_hh.shape[0])) if h0 is None else h0
    states = []
    for t in range(x.shape[1]):
        h = simple_rnn_step(x=x[:, t], h=h, Wx=W_xh, Wh=W_hh, b=b_h)
        states.append(h)
    return np.stack(states, axis=1)
""",
}

LSTM_KEYWORD_CALLS = {
    "lstm_forget_gate_answer": """
def forget_gate(x, h, Wx, Wh, b=None):
    z = x @ Wx + h @ Wh
    return sigmoid(z if b is None else z + b)
""",
    "lstm_input_gate_answer": """
def input_gate(x_t, h_prev, W_xi, W_hi, b_i=None):
    return sigmoid(x_t @ W_xi + h_prev @ W_hi)  # bias missing
""",
    "lstm_step_answer": """
def lstm_step(x_t, h_prev, c_prev, params):
    p = params
    g_f = forget_gate(x_t, h_prev, Wx=p.W_xf, Wh=p.W_hf, b=p.b_f)
    g_i = input_gate(W_xi=p.W_xi, W_hi=p.W_hi, b_i=p.b_i, x_t=x_t, h_prev=h_prev)
    c_bar = candidate_cell_state(x_t, h_prev, p.W_xc, p.W_hc, b_c=p.b_c)
    c_t = cell_state_update(c_prev=c_prev, g_f=g_f, g_i=g_i, c_bar=c_bar)
    g_o = output_gate(x_t, h_prev, p.W_xo, p.W_ho, p.b_o)
    return hidden_output(c_t=c_t, g_o=g_o), c_t
""",
}

BPTT_KEYWORD_CALLS = {
    "bptt_rnn_bptt_answer": """
def simple_rnn_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh):
    N, T, D = x.shape
    dx = np.zeros_like(x)
    dW_xh, dW_hh, db_h = 0.0, 0.0, 0.0
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dx[:, t], dh_next, dWx, dWh, db = simple_rnn_step_backward(
            dh_t=dh_seq[:, t] + dh_next,
            x_t=x[:, t],
            h_prev=h0 if t == 0 else h_seq[:, t - 1],
            h_t=h_seq[:, t],
            W_xh=W_xh,
            W_hh=W_hh,
        )
        dW_xh, dW_hh, db_h = dW_xh + dWx, dW_hh + dWh, db_h + db
    return dx, dh_next, dW_xh, dW_hh, db_h
""",
    "bptt_forget_gate_answer": """
def forget_gate_backward(grad, x, h, g, Wx, Wh):
    da = grad * g * (1 - g)
    return da @ Wx.T, da @ Wh.T, x.T @ da, h.T @ da, da.sum(axis=0)
""",
    "bptt_lstm_step_answer": """
def lstm_step_backward(dh_t, dc_t, x_t, h_prev, c_prev, params):
    p = params
    v = lstm_step_forward(x_t, h_prev, c_prev, p)
    dg_o, dc_h = hidden_output_backward(dh_t=dh_t, g_o=v["g_o"], c_t=v["c_t"])
    dc_prev, dg_f, dg_i, dc_bar = cell_state_update_backward(
        dc_t + dc_h, c_prev, g_f=v["g_f"], g_i=v["g_i"], c_bar=v["c_bar"]
    )
    f = forget_gate_backward(grad=dg_f, x=x_t, h=h_prev, g=v["g_f"], Wx=p.W_xf, Wh=p.W_hf)
    i = input_gate_backward(dg_i, x_t, h_prev, v["g_i"], W_xi=p.W_xi, W_hi=p.W_hi)
    c = candidate_cell_state_backward(dc_bar, x_t, h_prev, v["c_bar"], p.W_xc, p.W_hc)
    o = output_gate_backward(dg_o, x_t, h_prev, v["g_o"], p.W_xo, p.W_ho)
    dx_t = f[0] + i[0] + c[0] + o[0]
    dh_prev = f[1] + i[1] + c[1] + o[1]
    return dx_t, dh_prev, dc_prev, LSTMParams(*i[2:], *f[2:], *c[2:], *o[2:])
""",
}

BPTT_REUSED_GATES_WRONG = {
    "bptt_rnn_step_backward_answer": """
def simple_rnn_step_backward(dh_t, x_t, h_prev, h_t, W_xh, W_hh):
    da = dh_t  # the 1 - h_t**2 factor is missing
    return da @ W_xh.T, da @ W_hh.T, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)
""",
    "bptt_candidate_cell_state_answer": """
def candidate_cell_state_backward(dc_bar, x_t, h_prev, c_bar, W_xc, W_hc):
    # c_bar = tanh(x_t W_xc + h_prev W_hc + b_c) is a simple-RNN step: reuse its backward.
    return simple_rnn_step_backward(dc_bar, x_t, h_prev, c_bar, W_xc, W_hc)
""",
    "bptt_forget_gate_answer": """
def forget_gate_backward(dg_f, x_t, h_prev, g_f, W_xf, W_hf):
    da = dg_f * (1 - g_f**2)  # tanh's derivative, not sigmoid's
    return da @ W_xf.T, da @ W_hf.T, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)
""",
    "bptt_input_gate_answer": """
def input_gate_backward(dg_i, x_t, h_prev, g_i, W_xi, W_hi):
    return forget_gate_backward(
        dg_f=dg_i, x_t=x_t, h_prev=h_prev, g_f=g_i, W_xf=W_xi, W_hf=W_hi
    )
""",
}

BPTT_BAD_CALL = {
    "bptt_rnn_bptt_answer": """
def simple_rnn_bptt(dh_seq, x, h0, h_seq, W_xh, W_hh):
    N, T, D = x.shape
    H = W_hh.shape[0]
    dx = np.zeros((N, T, D))
    dW_xh, dW_hh, db_h = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    dh_next = np.zeros((N, H))
    for t in reversed(range(T)):
        h_prev = h0 if t == 0 else h_seq[:, t - 1]
        # x instead of x[:, t]
        dx_t, dh_next, dWx, dWh, db = simple_rnn_step_backward(
            dh_seq[:, t] + dh_next, x, h_prev, h_seq[:, t], W_xh, W_hh
        )
        dx[:, t] = dx_t
        dW_xh, dW_hh, db_h = dW_xh + dWx, dW_hh + dWh, db_h + db
    return dx, dh_next, dW_xh, dW_hh, db_h
""",
}


def submissions() -> dict[str, dict[str, Submission]]:
    """Assignment -> student -> submission."""
    swapped = "tanh and sigmoid swapped"
    return {
        "rnn": {
            "solution": solution_with("rnn", {}, {}),
            "blank": blank("rnn"),
            "partial": only("rnn", ["rnn_step_answer"]),
            "alternative": solution_with("rnn", RNN_ALTERNATIVE, {}),
            "keyword_calls": solution_with("rnn", RNN_KEYWORD_CALLS, {}),
            "mistakes_a": solution_with(
                "rnn",
                RNN_MISTAKES_A,
                {
                    "rnn_step_no_bias": swapped,
                    "rnn_step_bias": swapped,
                    "rnn_sequence": "only the last step",
                },
            ),
            "mistakes_b": solution_with(
                "rnn",
                RNN_MISTAKES_B,
                {"rnn_step_bias": "bias missing", "rnn_sequence": "not carried"},
            ),
            "mistakes_c": solution_with(
                "rnn",
                RNN_MISTAKES_C,
                {
                    "rnn_step_no_bias": "h and x weights swapped",
                    "rnn_step_bias": "h and x weights swapped",
                },
            ),
            "in_place": solution_with("rnn", RNN_IN_PLACE, {}),
            "no_bias_bug": solution_with("rnn", RNN_NO_BIAS_BUG, {"rnn_step_no_bias": "TypeError"}),
            "moved_up": moved_up("rnn", ["rnn_sequence_answer"]),
            "bad_call": solution_with(
                "rnn",
                RNN_BAD_CALL,
                {"rnn_sequence": "simple_rnn_sequence called simple_rnn_step with bad arguments"},
            ),
        },
        "lstm": {
            "solution": solution_with("lstm", {}, {}),
            "blank": blank("lstm"),
            "partial": only(
                "lstm",
                [
                    "lstm_forget_gate_answer",
                    "lstm_cell_state_update_answer",
                    "lstm_step_answer",
                    "lstm_keras_forward_answer",
                ],
            ),
            "alternative": solution_with("lstm", LSTM_ALTERNATIVE, {}),
            "keyword_calls": solution_with(
                "lstm", LSTM_KEYWORD_CALLS, {"lstm_input_gate": "bias missing"}
            ),
            "mistakes_a": solution_with(
                "lstm",
                LSTM_MISTAKES_A,
                {
                    "lstm_forget_gate": swapped,
                    "lstm_candidate_cell_state": swapped,
                    "lstm_output_gate": "h and x weights swapped",
                    "lstm_step": "returned (c_t, h_t)",
                    "lstm_keras_split": "gate order wrong",
                },
            ),
            "mistakes_b": solution_with(
                "lstm",
                LSTM_MISTAKES_B,
                {
                    "lstm_input_gate": "bias missing",
                    "lstm_cell_state_update": "forget and input gates swapped",
                    "lstm_hidden_output": "tanh missing",
                    "lstm_sequence": "only the last step",
                    "lstm_keras_forward": "gate order wrong",
                },
            ),
            "noisy": solution_with("lstm", LSTM_NOISY, {}),
            "moved_up": moved_up("lstm", ["lstm_keras_forward_answer"]),
        },
        "gru": {
            "solution": solution_with("gru", {}, {}),
            "blank": blank("gru"),
            "partial": only(
                "gru", ["gru_update_gate_answer", "gru_new_state_answer", "gru_sequence_answer"]
            ),
            "alternative": solution_with("gru", GRU_ALTERNATIVE, {}),
            "float32": solution_with("gru", GRU_FLOAT32, {}),
            "mistakes_a": solution_with(
                "gru",
                GRU_MISTAKES_A,
                {
                    "gru_candidate_state": "reset applied after the product",
                    "gru_new_state": "update-gate convention swapped",
                    "gru_sequence": "ran the sequence backwards",
                    "gru_keras_forward": "update-gate convention swapped",
                },
            ),
            "mistakes_b": solution_with(
                "gru",
                GRU_MISTAKES_B,
                {
                    "gru_reset_gate": swapped,
                    "gru_update_gate": "bias missing",
                    "gru_step": "reset applied after the product",
                    "gru_candidate_reset_after": "reset applied before the product",
                    "gru_keras_forward": "reset applied before the product",
                },
            ),
            "scipy": solution_with("gru", GRU_SCIPY, {}),
            "moved_up": moved_up("gru", ["gru_keras_forward_answer"]),
        },
        "brnn": {
            "solution": solution_with("brnn", {}, {}),
            "blank": blank("brnn"),
            "partial": only("brnn", ["brnn_merge_answer", "brnn_bidirectional_answer"]),
            "alternative": solution_with("brnn", BRNN_ALTERNATIVE, {}),
            "mistakes_a": solution_with(
                "brnn",
                BRNN_MISTAKES_A,
                {
                    "brnn_go_backwards": "flipped the output back",
                    "brnn_merge_concat": "backward first",
                    "brnn_bidirectional_outputs": "not flipped back",
                },
            ),
            "mistakes_b": solution_with(
                "brnn",
                BRNN_MISTAKES_B,
                {
                    "brnn_forward_layer": "not carried",
                    "brnn_merge_ave": "summed instead of averaged",
                    "brnn_bidirectional_states": "backward final state",
                },
            ),
            "in_place": solution_with("brnn", BRNN_IN_PLACE, {}),
            "moved_up": moved_up("brnn", ["brnn_bidirectional_answer"]),
        },
        "bptt": {
            "solution": solution_with("bptt", {}, {}),
            "blank": blank("bptt"),
            "partial": only(
                "bptt",
                ["bptt_rnn_bptt_answer", "bptt_hidden_output_answer", "bptt_lstm_step_answer"],
            ),
            "alternative": solution_with("bptt", BPTT_ALTERNATIVE, {}),
            "mistakes_a": solution_with(
                "bptt",
                BPTT_MISTAKES_A,
                {
                    "bptt_rnn_step_backward": "the missing 1 − h² factor",
                    "bptt_rnn_bptt": "gradient from the next step not carried back",
                    "bptt_forget_gate": "sigmoid and tanh derivatives swapped",
                    "bptt_hidden_output": "the missing 1 − tanh² c factor",
                    "bptt_lstm_step": "the g_o ⊙ (1 − tanh² c) path into c missing",
                    "bptt_gru_step": "the direct path into h_prev missing",
                },
            ),
            "mistakes_b": solution_with(
                "bptt",
                BPTT_MISTAKES_B,
                {
                    "bptt_rnn_step_backward": "transposed weight gradients",
                    "bptt_rnn_bptt": "the output gradient at each step forgotten",
                    "bptt_input_gate": "batch mean instead of sum",
                    "bptt_cell_state_update": "c_prev and c_bar swapped",
                    "bptt_lstm_step": "gradient from the next step not carried back",
                    "bptt_gru_step": "update-gate convention swapped",
                },
            ),
            "mistakes_c": solution_with(
                "bptt",
                BPTT_MISTAKES_C,
                {
                    "bptt_rnn_step_backward": "batch mean instead of sum",
                    "bptt_rnn_bptt": "weight gradients not accumulated over time",
                    "bptt_candidate_cell_state": "sigmoid and tanh derivatives swapped",
                    "bptt_output_gate": "transposed weight gradients",
                    "bptt_hidden_output": "1 − c² instead of 1 − tanh² c",
                    "bptt_gru_step": "dW_hh uses h_prev, not g_r ⊙ h_prev",
                },
            ),
            "moved_up": moved_up("bptt", ["bptt_gru_step_answer"]),
            "keyword_calls": solution_with("bptt", BPTT_KEYWORD_CALLS, {}),
            "reused_gates_wrong": solution_with(
                "bptt",
                BPTT_REUSED_GATES_WRONG,
                {
                    "bptt_rnn_step_backward": "the missing 1 − h² factor",
                    "bptt_forget_gate": "sigmoid and tanh derivatives swapped",
                },
            ),
            "bad_call": solution_with(
                "bptt",
                BPTT_BAD_CALL,
                {
                    "bptt_rnn_bptt": (
                        "simple_rnn_bptt called simple_rnn_step_backward with bad arguments"
                    )
                },
            ),
        },
    }
