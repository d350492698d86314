"""Weight conversion between Keras layouts and per-gate parameters, both ways."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from keras_parity import assert_outputs_close, randomize_weights
from random_params import random_keras_weights

import rnn_ref
from rnn_ref import keras_weights

CASES = {
    "simple_rnn": ("SimpleRNN", {}),
    "lstm": ("LSTM", {}),
    "lstm_no_bias": ("LSTM", {"use_bias": False}),
    "gru_reset_after": ("GRU", {"reset_after": True}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
    "gru_no_bias": ("GRU", {"use_bias": False}),
}


def test_lstm_blocks_follow_keras_gate_order(rng):
    """Block k of the kernel is gate i, f, c, o: the layout written down in keras_weights."""
    d, h = 3, 2
    kernel = np.concatenate([np.full((d, h), k) for k in range(4)], axis=1)
    recurrent = np.concatenate([np.full((h, h), 10 + k) for k in range(4)], axis=1)
    bias = np.repeat(np.arange(20.0, 24.0), h)
    p = rnn_ref.lstm_params_from_keras([kernel, recurrent, bias])
    for k, g in enumerate("ifco"):
        assert np.all(getattr(p, f"W_x{g}") == k)
        assert np.all(getattr(p, f"W_h{g}") == 10 + k)
        assert np.all(getattr(p, f"b_{g}") == 20 + k)


@pytest.mark.parametrize(
    ("layout", "params"),
    [
        (keras_weights.SIMPLE_RNN_LAYOUT, rnn_ref.SimpleRNNParams),
        (keras_weights.LSTM_LAYOUT, rnn_ref.LSTMParams),
        (keras_weights.GRU_LAYOUT, rnn_ref.GRUParams),
        (keras_weights.GRU_RESET_AFTER_LAYOUT, None),
    ],
)
def test_block_names_are_the_split_blocks_and_the_leading_fields_of_the_params(rng, layout, params):
    blocks = keras_weights.split_keras_weights(random_keras_weights(rng, layout, 3, 2), layout)
    assert sorted(blocks) == sorted(layout.block_names)
    if params is not None:
        fields = [f.name for f in dataclasses.fields(params)]
        assert fields[: len(layout.block_names)] == list(layout.block_names)


@pytest.mark.parametrize(
    "layout", [keras_weights.LSTM_LAYOUT, keras_weights.GRU_RESET_AFTER_LAYOUT]
)
def test_reordered_gate_blocks_are_read_as_in_the_given_order(rng, layout):
    """Block of gate g of the result = the block at position order.index(g) of the weights."""
    weights = random_keras_weights(rng, layout, 3, 2)
    blocks = keras_weights.split_keras_weights(weights, layout)
    for order in itertools.permutations(layout.gates):
        reordered = keras_weights.reorder_gate_blocks(weights, layout, order)
        read = keras_weights.split_keras_weights(reordered, layout)
        for name in layout.block_names:
            gate = name[-1]
            same_place = name[:-1] + layout.gates[order.index(gate)]
            np.testing.assert_array_equal(read[name], blocks[same_place])
    same = keras_weights.reorder_gate_blocks(weights, layout, layout.gates)
    for given, returned in zip(weights, same, strict=True):
        np.testing.assert_array_equal(given, returned)
    with pytest.raises(ValueError, match="permutation"):
        keras_weights.reorder_gate_blocks(weights, layout, layout.gates[:-1])


def test_gru_reset_after_bias_rows(rng):
    d, h = 2, 3
    kernel, recurrent = rng.normal(size=(d, 3 * h)), rng.normal(size=(h, 3 * h))
    bias = rng.normal(size=(2, 3 * h))
    p = rnn_ref.gru_params_from_keras([kernel, recurrent, bias], reset_after=True)
    np.testing.assert_allclose(p.b_z, bias[0, :h] + bias[1, :h])
    np.testing.assert_allclose(p.b_r, bias[0, h : 2 * h] + bias[1, h : 2 * h])
    np.testing.assert_allclose(p.b_h, bias[0, 2 * h :])
    np.testing.assert_allclose(p.b_hh, bias[1, 2 * h :])
    back = rnn_ref.keras_weights_from_gru_params(p)
    np.testing.assert_allclose(back[2].sum(axis=0)[: 2 * h], bias.sum(axis=0)[: 2 * h])
    np.testing.assert_allclose(back[2][:, 2 * h :], bias[:, 2 * h :])


@pytest.mark.keras
@pytest.mark.parametrize("case", CASES)
def test_round_trip_through_keras(keras, rng, case):
    """Keras -> params -> a second Keras layer gives the same outputs."""
    kind, config = CASES[case]
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    source = getattr(keras.layers, kind)(5, return_sequences=True, **config)
    source(x)
    randomize_weights(source, rng)
    params = rnn_ref.params_from_keras(source)
    target = getattr(keras.layers, kind)(5, return_sequences=True, **config)
    target(x)
    rnn_ref.set_keras_weights(target, params)
    assert_outputs_close(source(x), target(x))


@pytest.mark.keras
def test_notes_gru_loaded_into_keras(keras, rng):
    """Parameters in the notes' convention are converted on the way into Keras."""
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    layer = keras.layers.GRU(5, reset_after=False, return_sequences=True)
    layer(x)
    gates = {}
    for g in "zrh":
        gates |= {f"W_x{g}": rng.normal(size=(3, 5)), f"W_h{g}": rng.normal(size=(5, 5))}
        gates[f"b_{g}"] = rng.normal(size=5)
    notes = rnn_ref.GRUParams(reset_after=False, update_convention="notes", **gates)
    rnn_ref.set_keras_weights(layer, notes)
    assert_outputs_close(layer(x), rnn_ref.gru(x, notes, return_sequences=True))


@pytest.mark.keras
def test_set_keras_weights_refuses_wrong_shapes(keras, rng):
    layer = keras.layers.LSTM(5)
    layer(np.zeros((1, 2, 3), dtype="float32"))
    other = keras.layers.LSTM(4)
    other(np.zeros((1, 2, 3), dtype="float32"))
    with pytest.raises(ValueError, match="has weights of shapes"):
        rnn_ref.set_keras_weights(layer, rnn_ref.params_from_keras(other))


@pytest.mark.keras
def test_tensorflow_tensors_are_accepted(keras, rng):
    import tensorflow as tf

    x_t, h = tf.constant(rng.normal(size=(2, 3))), tf.constant(rng.normal(size=(2, 4)))
    W_x, W_h = tf.Variable(rng.normal(size=(3, 4))), rng.normal(size=(4, 4)).astype("float32")
    g = rnn_ref.forget_gate(x_t, h, W_x, W_h, [0.0] * 4)
    assert g.dtype == np.float64
    assert g.shape == (2, 4)


@pytest.mark.keras
def test_from_keras_refuses_other_layers(keras):
    with pytest.raises(TypeError, match="Dense"):
        rnn_ref.from_keras(keras.layers.Dense(3))
    with pytest.raises(TypeError, match="Dense"):
        rnn_ref.params_from_keras(keras.layers.Dense(3))
