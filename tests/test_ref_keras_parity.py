"""Parity of every rnn_ref layer, cell and bidirectional configuration with live Keras.

Seeded random weights (never constant initialisers, which hide swapped gates), random shapes
including N = 1, T = 1 and H != D, float32 Keras against the float64 reference, compared with
``rtol=1e-5, atol=1e-6`` (keras_parity.RTOL / ATOL).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from keras_parity import assert_outputs_close, random_sizes, randomize_weights

import rnn_ref

pytestmark = pytest.mark.keras

LAYER_KINDS = {
    "simple_rnn": ("SimpleRNN", {}),
    "lstm": ("LSTM", {}),
    "gru_reset_after": ("GRU", {"reset_after": True}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}
OPTIONS = {
    "last": {},
    "sequences": {"return_sequences": True},
    "state": {"return_state": True},
    "sequences_state": {"return_sequences": True, "return_state": True},
    "backwards": {"go_backwards": True, "return_sequences": True},
    "no_bias": {"use_bias": False, "return_state": True},
    "relu": {"activation": "relu", "return_sequences": True},
    "linear_hard_sigmoid": {"activation": "linear", "recurrent_activation": "hard_sigmoid"},
    "sigmoid_tanh": {"activation": "sigmoid", "recurrent_activation": "tanh"},
}
SHAPES = {"random": None, "N1": (1, 5, 3, 4), "T1": (3, 1, 4, 2), "one_unit": (2, 4, 3, 1)}


def _options_for(kind: str, options: dict) -> dict:
    if kind == "SimpleRNN":  # SimpleRNN has a single activation
        options = {k: v for k, v in options.items() if k != "recurrent_activation"}
    return options


def _build(keras, kind, config, sizes, rng):
    n, t, d, h = sizes
    layer = getattr(keras.layers, kind)(h, **config)
    x = rng.normal(size=(n, t, d)).astype("float32")
    layer(x)  # build
    randomize_weights(layer, rng)
    return layer, x


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize("option", OPTIONS, ids=list(OPTIONS))
@pytest.mark.parametrize("layer_kind", LAYER_KINDS, ids=list(LAYER_KINDS))
def test_layer_matches_keras(keras, rng, layer_kind, option, shape):
    kind, base = LAYER_KINDS[layer_kind]
    sizes = SHAPES[shape] or random_sizes(rng)
    layer, x = _build(keras, kind, {**base, **_options_for(kind, OPTIONS[option])}, sizes, rng)
    assert_outputs_close(layer(x), rnn_ref.from_keras(layer)(x))


@pytest.mark.parametrize("layer_kind", LAYER_KINDS, ids=list(LAYER_KINDS))
def test_initial_state_matches_keras(keras, rng, layer_kind):
    kind, base = LAYER_KINDS[layer_kind]
    n, t, d, h = random_sizes(rng)
    layer, x = _build(keras, kind, {**base, "return_state": True}, (n, t, d, h), rng)
    states = [rng.normal(size=(n, h)).astype("float32") for _ in range(2 if kind == "LSTM" else 1)]
    expected = layer(x, initial_state=states)
    assert_outputs_close(expected, rnn_ref.from_keras(layer)(x, initial_state=states))


def test_lstm_holds_over_50_steps(keras, rng):
    """The stated tolerance holds over a long sequence, where float32 error accumulates."""
    layer, x = _build(keras, "LSTM", {"return_sequences": True}, (4, 50, 8, 16), rng)
    assert_outputs_close(layer(x), rnn_ref.from_keras(layer)(x))


CELLS = {
    "simple_rnn": ("SimpleRNNCell", {}, rnn_ref.simple_rnn_step),
    "lstm": ("LSTMCell", {}, rnn_ref.lstm_step),
    "gru_reset_after": ("GRUCell", {"reset_after": True}, rnn_ref.gru_step),
    "gru_reset_before": ("GRUCell", {"reset_after": False}, rnn_ref.gru_step),
}


@pytest.mark.parametrize("cell_kind", CELLS, ids=list(CELLS))
def test_cell_step_matches_keras(keras, rng, cell_kind):
    kind, config, step = CELLS[cell_kind]
    n, _, d, h = random_sizes(rng)
    cell = getattr(keras.layers, kind)(h, **config)
    x_t = rng.normal(size=(n, d)).astype("float32")
    states = [
        rng.normal(size=(n, h)).astype("float32") for _ in range(2 if kind == "LSTMCell" else 1)
    ]
    cell(x_t, states)  # build
    randomize_weights(cell, rng)
    output, new_states = cell(x_t, states)
    params = rnn_ref.params_from_keras(cell)
    if kind == "SimpleRNNCell":
        mine = step(x_t, states[0], params.W_xh, params.W_hh, params.b_h)
        expected = [output]
    elif kind == "LSTMCell":
        mine = step(x_t, states[0], states[1], params)
        expected = list(new_states)
    else:
        mine = step(x_t, states[0], params)
        expected = [output]
    assert_outputs_close(expected, mine)


def test_lstm_gates_compose_to_keras_cell(keras, rng):
    """The six public LSTM functions, chained by hand, give Keras's new h and c."""
    n, _, d, h = random_sizes(rng)
    cell = keras.layers.LSTMCell(h)
    x_t = rng.normal(size=(n, d)).astype("float32")
    h_prev, c_prev = (rng.normal(size=(n, h)).astype("float32") for _ in range(2))
    cell(x_t, [h_prev, c_prev])
    randomize_weights(cell, rng)
    _, (h_keras, c_keras) = cell(x_t, [h_prev, c_prev])
    p = rnn_ref.params_from_keras(cell)
    g_f = rnn_ref.forget_gate(x_t, h_prev, p.W_xf, p.W_hf, p.b_f)
    g_i = rnn_ref.input_gate(x_t, h_prev, p.W_xi, p.W_hi, p.b_i)
    c_bar = rnn_ref.candidate_cell_state(x_t, h_prev, p.W_xc, p.W_hc, p.b_c)
    c_t = rnn_ref.cell_state_update(c_prev, g_f, g_i, c_bar)
    g_o = rnn_ref.output_gate(x_t, h_prev, p.W_xo, p.W_ho, p.b_o)
    h_t = rnn_ref.hidden_output(g_o, c_t)
    assert_outputs_close([h_keras, c_keras], [h_t, c_t])


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_gru_gates_compose_to_keras_cell(keras, rng, reset_after):
    """The public GRU functions, chained by hand in Keras's convention, give Keras's new h."""
    n, _, d, h = random_sizes(rng)
    cell = keras.layers.GRUCell(h, reset_after=reset_after)
    x_t = rng.normal(size=(n, d)).astype("float32")
    h_prev = rng.normal(size=(n, h)).astype("float32")
    cell(x_t, [h_prev])
    randomize_weights(cell, rng)
    h_keras, _ = cell(x_t, [h_prev])
    p = rnn_ref.params_from_keras(cell)
    g_r = rnn_ref.reset_gate(x_t, h_prev, p.W_xr, p.W_hr, p.b_r)
    if reset_after:
        h_bar = rnn_ref.candidate_state_reset_after(x_t, h_prev, g_r, p.W_xh, p.W_hh, p.b_h, p.b_hh)
    else:
        h_bar = rnn_ref.candidate_state(x_t, h_prev, g_r, p.W_xh, p.W_hh, p.b_h)
    z = rnn_ref.update_gate(x_t, h_prev, p.W_xz, p.W_hz, p.b_z)
    assert_outputs_close(h_keras, rnn_ref.new_state_keras(h_prev, h_bar, z))
    # The same step in the notes' convention: negated update weights, g_z = 1 - z.
    notes = rnn_ref.convert_update_convention(p, "notes")
    g_z = rnn_ref.update_gate(x_t, h_prev, notes.W_xz, notes.W_hz, notes.b_z)
    np.testing.assert_allclose(g_z, 1 - z, rtol=1e-12, atol=1e-12)
    assert_outputs_close(h_keras, rnn_ref.new_state(h_prev, h_bar, g_z))


BIDIRECTIONAL_LAYERS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
MERGE_MODES = {"concat": "concat", "sum": "sum", "mul": "mul", "ave": "ave", "none": None}
RETURNS = {
    "last": {},
    "sequences": {"return_sequences": True},
    "state": {"return_state": True},
    "sequences_state": {"return_sequences": True, "return_state": True},
}


@pytest.mark.parametrize(
    ("layer_kind", "merge_mode", "returns"),
    list(itertools.product(BIDIRECTIONAL_LAYERS, MERGE_MODES, RETURNS)),
    ids=[
        f"{a}-{b}-{c}" for a, b, c in itertools.product(BIDIRECTIONAL_LAYERS, MERGE_MODES, RETURNS)
    ],
)
def test_bidirectional_matches_keras(keras, rng, layer_kind, merge_mode, returns):
    n, t, d, h = random_sizes(rng)
    inner = getattr(keras.layers, BIDIRECTIONAL_LAYERS[layer_kind])(h, **RETURNS[returns])
    layer = keras.layers.Bidirectional(inner, merge_mode=MERGE_MODES[merge_mode])
    x = rng.normal(size=(n, t, d)).astype("float32")
    layer(x)
    randomize_weights(layer, rng)
    assert_outputs_close(layer(x), rnn_ref.from_keras(layer)(x))


def test_bidirectional_custom_backward_layer_matches_keras(keras, rng):
    """The notes' example: a relu LSTM reading backwards, with its own size of state."""
    x = rng.normal(size=(3, 5, 10)).astype("float32")
    forward = keras.layers.LSTM(10, return_sequences=True)
    backward = keras.layers.LSTM(10, activation="relu", return_sequences=True, go_backwards=True)
    layer = keras.layers.Bidirectional(forward, backward_layer=backward)
    layer(x)
    randomize_weights(layer, rng)
    spec = rnn_ref.from_keras(layer)
    assert spec.backward.activation == "relu"
    assert_outputs_close(layer(x), spec(x))


def test_bidirectional_initial_state_matches_keras(keras, rng):
    n, t, d, h = random_sizes(rng)
    layer = keras.layers.Bidirectional(keras.layers.LSTM(h, return_sequences=True))
    x = rng.normal(size=(n, t, d)).astype("float32")
    layer(x)
    randomize_weights(layer, rng)
    states = [rng.normal(size=(n, h)).astype("float32") for _ in range(4)]
    expected = layer(x, initial_state=states)
    assert_outputs_close(expected, rnn_ref.from_keras(layer)(x, initial_state=states))


def test_stack_matches_keras_sequential(keras, rng):
    """The notes' two-layer stack: every layer but the last returns sequences."""
    n, t, d, h = random_sizes(rng)
    model = keras.Sequential(
        [
            keras.Input(shape=(t, d)),
            keras.layers.LSTM(h, return_sequences=True),
            keras.layers.GRU(h + 1, return_sequences=True),
            keras.layers.SimpleRNN(h + 2),
        ]
    )
    for layer in model.layers:
        randomize_weights(layer, rng)
    x = rng.normal(size=(n, t, d)).astype("float32")
    specs = [rnn_ref.from_keras(layer) for layer in model.layers]
    assert_outputs_close(model(x), rnn_ref.stack(x, specs))


@pytest.mark.parametrize("name", sorted(rnn_ref.activations.ACTIVATIONS))
def test_activation_matches_keras(keras, name):
    a = np.linspace(-8, 8, 161)
    expected = np.asarray(getattr(keras.activations, name)(a.astype("float32")))
    np.testing.assert_allclose(rnn_ref.get_activation(name)(a), expected, rtol=1e-6, atol=1e-6)
