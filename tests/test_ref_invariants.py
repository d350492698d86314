"""Invariants that follow from the equations, checked without Keras."""

from __future__ import annotations

import dataclasses
import decimal

import numpy as np
import pytest
from random_params import random_params

import rnn_ref

BIG = 50.0  # sigmoid(±50) is 1 or 0 to within 2e-22


def _lstm_params(rng, d, h, **bias):
    return random_params("lstm", rng, d, h, scales=(1.0, 1.0), recurrent_scale=0.1, biases=bias)


def _gru_params(rng, d, h, *, reset_after=False, update_convention="notes", **bias):
    return random_params(
        "gru",
        rng,
        d,
        h,
        reset_after=reset_after,
        convention=update_convention,
        scales=(1.0, 1.0),
        biases=bias,
    )


def test_closed_forget_gate_forgets(rng):
    """g_f = 0: the new cell state does not depend on c_{t-1} at all."""
    p = _lstm_params(rng, 3, 4, f=-BIG)
    x_t, h_prev = rng.normal(size=(2, 3)), rng.normal(size=(2, 4))
    _, c_a = rnn_ref.lstm_step(x_t, h_prev, rng.normal(size=(2, 4)) * 10, p)
    _, c_b = rnn_ref.lstm_step(x_t, h_prev, np.zeros((2, 4)), p)
    np.testing.assert_allclose(c_a, c_b, atol=1e-15)


def test_open_forget_gate_with_closed_input_gate_keeps_the_cell_state(rng):
    """g_f = 1, g_i = 0: c_t = c_{t-1}, over a whole sequence."""
    p = _lstm_params(rng, 3, 4, f=BIG, i=-BIG)
    x = rng.normal(size=(2, 20, 3))
    c0 = rng.normal(size=(2, 4))
    _, _, c_T = rnn_ref.lstm(x, p, return_state=True, initial_state=[np.zeros((2, 4)), c0])
    np.testing.assert_allclose(c_T, c0, atol=1e-12)


def test_closed_output_gate_outputs_zeros(rng):
    p = _lstm_params(rng, 3, 4, o=-BIG)
    h = rnn_ref.lstm(rng.normal(size=(2, 6, 3)), p, return_sequences=True)
    np.testing.assert_allclose(h, 0.0, atol=1e-15)


def test_gru_update_gate_at_zero_keeps_the_old_state(rng):
    """Notes' convention: g_z = 0 gives h_t = h_{t-1}."""
    p = _gru_params(rng, 3, 4, z=-BIG)
    h0 = rng.normal(size=(2, 4))
    h_T = rnn_ref.gru(rng.normal(size=(2, 9, 3)), p, initial_state=h0)
    np.testing.assert_allclose(h_T, h0, atol=1e-12)


def test_gru_update_gate_at_one_takes_the_candidate(rng):
    """Notes' convention: g_z = 1 gives h_t = h̄_t."""
    p = _gru_params(rng, 3, 4, z=BIG)
    x_t, h_prev = rng.normal(size=(2, 3)), rng.normal(size=(2, 4))
    g_r = rnn_ref.reset_gate(x_t, h_prev, p.W_xr, p.W_hr, p.b_r)
    h_bar = rnn_ref.candidate_state(x_t, h_prev, g_r, p.W_xh, p.W_hh, p.b_h)
    np.testing.assert_allclose(rnn_ref.gru_step(x_t, h_prev, p), h_bar, atol=1e-15)


def test_gru_closed_reset_gate_hides_the_old_state_from_the_candidate(rng):
    x_t = rng.normal(size=(2, 3))
    W_xh, W_hh, b_h = rng.normal(size=(3, 4)), rng.normal(size=(4, 4)), rng.normal(size=4)
    closed = np.zeros((2, 4))
    a = rnn_ref.candidate_state(x_t, rng.normal(size=(2, 4)), closed, W_xh, W_hh, b_h)
    b = rnn_ref.candidate_state(x_t, rng.normal(size=(2, 4)), closed, W_xh, W_hh, b_h)
    np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("reset_after", [False, True], ids=["reset_before", "reset_after"])
def test_gru_update_conventions_are_the_same_model(rng, reset_after):
    """Notes' GRU == Keras-convention GRU after negating the update weights."""
    notes = _gru_params(rng, 3, 5, reset_after=reset_after)
    keras_form = rnn_ref.convert_update_convention(notes, "keras")
    assert keras_form.update_convention == "keras"
    np.testing.assert_array_equal(keras_form.W_xz, -notes.W_xz)
    x = rng.normal(size=(2, 7, 3))
    np.testing.assert_allclose(
        rnn_ref.gru(x, notes, return_sequences=True),
        rnn_ref.gru(x, keras_form, return_sequences=True),
        rtol=1e-12,
        atol=1e-12,
    )
    back = rnn_ref.convert_update_convention(keras_form, "notes")
    np.testing.assert_array_equal(back.b_z, notes.b_z)


def test_gru_mixing_update_conventions_gives_a_different_model(rng):
    """The trap: reading Keras weights as the notes' g_z gives plausible but wrong outputs."""
    p = _gru_params(rng, 3, 5, update_convention="keras")
    mixed = dataclasses.replace(p, update_convention="notes")
    x = rng.normal(size=(2, 7, 3))
    assert np.max(np.abs(rnn_ref.gru(x, p) - rnn_ref.gru(x, mixed))) > 1e-2


def test_gru_reset_before_and_after_are_different_models(rng):
    after = _gru_params(rng, 3, 5, reset_after=True)
    before = dataclasses.replace(after, reset_after=False, b_hh=None)
    x = rng.normal(size=(2, 7, 3))
    assert np.max(np.abs(rnn_ref.gru(x, after) - rnn_ref.gru(x, before))) > 1e-2


def test_convention_change_refused_for_asymmetric_gate_activation(rng):
    p = _gru_params(rng, 2, 3)
    with pytest.raises(ValueError, match="recurrent_activation"):
        rnn_ref.convert_update_convention(p, "keras", recurrent_activation="tanh")


@pytest.mark.parametrize(
    "name", ["forget_gate", "input_gate", "output_gate", "candidate_cell_state"]
)
def test_concatenated_form_equals_split_form(rng, name):
    x_t, h_prev = rng.normal(size=(3, 5)), rng.normal(size=(3, 4))
    W_x, W_h, b = rng.normal(size=(5, 4)), rng.normal(size=(4, 4)), rng.normal(size=4)
    activation = "tanh" if name == "candidate_cell_state" else "sigmoid"
    W = rnn_ref.concat_weights(W_h, W_x)
    assert W.shape == (4 + 5, 4)
    split = getattr(rnn_ref, name)(x_t, h_prev, W_x, W_h, b)
    np.testing.assert_allclose(rnn_ref.concatenated_gate(h_prev, x_t, W, b, activation), split)
    W_h_back, W_x_back = rnn_ref.split_weights(W, hidden_size=4)
    np.testing.assert_array_equal(W_h_back, W_h)
    np.testing.assert_array_equal(W_x_back, W_x)


def test_notes_matrix_is_the_transpose(rng):
    """The notes' column form W [h; x] equals ([h, x] W_row)ᵀ with W_notes = W_rowᵀ."""
    x_t, h_prev = rng.normal(size=(1, 5)), rng.normal(size=(1, 4))
    W = rnn_ref.concat_weights(rng.normal(size=(4, 4)), rng.normal(size=(5, 4)))
    column = W.T @ np.concatenate([h_prev[0], x_t[0]])
    np.testing.assert_allclose(column, (np.concatenate([h_prev, x_t], axis=1) @ W)[0])


LAYERS = {
    "simple_rnn": lambda rng, d, h: rnn_ref.SimpleRNN(
        params=rnn_ref.SimpleRNNParams(
            W_xh=rng.normal(size=(d, h)), W_hh=rng.normal(size=(h, h)), b_h=rng.normal(size=h)
        ),
        return_sequences=True,
    ),
    "lstm": lambda rng, d, h: rnn_ref.LSTM(params=_lstm_params(rng, d, h), return_sequences=True),
    "gru": lambda rng, d, h: rnn_ref.GRU(params=_gru_params(rng, d, h), return_sequences=True),
}


@pytest.mark.parametrize("kind", LAYERS)
def test_go_backwards_is_running_the_flipped_sequence(rng, kind):
    """go_backwards(x) == run(flip(x)), in processing order; flipping back aligns it in time."""
    layer = LAYERS[kind](rng, 3, 4)
    x = rng.normal(size=(2, 6, 3))
    backwards = dataclasses.replace(layer, go_backwards=True)
    np.testing.assert_allclose(backwards(x), layer(x[:, ::-1]))
    bi = rnn_ref.bidirectional(x, layer, backwards, merge_mode=None)
    np.testing.assert_allclose(bi[1], layer(x[:, ::-1])[:, ::-1])


def test_bidirectional_step_t_sees_the_past_and_the_future(rng):
    """Output at step t: forward half depends on x[:t+1] only, backward half on x[t:] only."""
    layer = LAYERS["lstm"](rng, 3, 4)
    x = rng.normal(size=(1, 7, 3))
    t = 3
    changed_future = x.copy()
    changed_future[:, t + 1 :] += 1.0
    y, y_future = (rnn_ref.bidirectional(v, layer, merge_mode=None) for v in (x, changed_future))
    np.testing.assert_allclose(y[0][:, : t + 1], y_future[0][:, : t + 1])  # forward unaffected
    assert not np.allclose(y[1][:, t], y_future[1][:, t])  # backward sees the future
    changed_past = x.copy()
    changed_past[:, :t] += 1.0
    y_past = rnn_ref.bidirectional(changed_past, layer, merge_mode=None)
    np.testing.assert_allclose(y[1][:, t:], y_past[1][:, t:])  # backward unaffected


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
def test_merge_modes(rng, mode):
    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    expected = {
        "concat": np.concatenate([a, b], axis=-1),
        "sum": a + b,
        "mul": a * b,
        "ave": (a + b) / 2,
        None: [a, b],
    }[mode]
    np.testing.assert_allclose(rnn_ref.merge(a, b, mode), expected)


def test_layer_equals_its_step_in_a_loop(rng):
    p = _lstm_params(rng, 3, 4)
    x = rng.normal(size=(2, 5, 3))
    h, c = np.zeros((2, 4)), np.zeros((2, 4))
    outputs = []
    for t in range(5):
        h, c = rnn_ref.lstm_step(x[:, t], h, c, p)
        outputs.append(h)
    np.testing.assert_allclose(rnn_ref.lstm(x, p, return_sequences=True), np.stack(outputs, 1))


def test_sigmoid_is_stable_and_silent():
    with np.errstate(all="raise"):
        values = rnn_ref.sigmoid(np.array([-1e4, -800.0, 0.0, 800.0, 1e4]))
    np.testing.assert_allclose(values, [0, 0, 0.5, 1, 1])


def _exact_sigmoid(a: float) -> float:
    """sigma(a) from 40 significant digits (the decimal module), rounded to float64."""
    with decimal.localcontext() as context:
        context.prec = 40
        return float(1 / (1 + (-decimal.Decimal(a)).exp()))


def test_sigmoid_has_full_relative_precision():
    # Down to -700 the result is a normal float64: a few units in the last place at most.
    a = np.concatenate([np.linspace(-700.0, 40.0, 1481), [-40.0, -37.5, -20.0, 36.0]])
    exact = np.array([_exact_sigmoid(v) for v in a])
    relative_error = np.abs(rnn_ref.sigmoid(a) - exact) / exact
    assert relative_error.max() < 4 * np.finfo(np.float64).eps
    # tanh's form is exactly 0 here; the closed gates of the LSTM chapter live here.
    assert rnn_ref.sigmoid(-40.0) > 0
    assert rnn_ref.sigmoid(-40.0) == pytest.approx(4.248354255291589e-18, rel=1e-15)


def test_sigmoid_is_0_or_1_only_where_the_true_value_rounds_there():
    # sigma(-745) ~ 5e-324 is the smallest subnormal; below it the true value rounds to 0.
    assert rnn_ref.sigmoid(-745.0) > 0
    assert rnn_ref.sigmoid(-746.0) == 0
    # 1 - sigma(36) ~ 2.3e-16 is above the spacing below 1 (2^-53 ~ 1.1e-16): not 1.
    assert rnn_ref.sigmoid(36.0) < 1
    assert 1 - rnn_ref.sigmoid(37.0) == 0  # 1 - sigma(37) ~ 8.5e-17 < 2^-53
    below_one = np.linspace(-745.0, 36.0, 7811)
    values = rnn_ref.sigmoid(below_one)
    assert np.all((values > 0) & (values < 1))


def test_sigmoid_keeps_scalars_and_shapes():
    assert np.ndim(rnn_ref.sigmoid(0.5)) == 0
    assert rnn_ref.sigmoid(np.zeros((2, 3, 4))).shape == (2, 3, 4)
    np.testing.assert_array_equal(rnn_ref.sigmoid([[0.0]]), [[0.5]])


def test_activation_name_is_the_inverse_of_get_activation():
    for name in rnn_ref.ACTIVATIONS:
        assert rnn_ref.activation_name(rnn_ref.get_activation(name)) == name
        assert rnn_ref.activation_name(name) == name
    assert rnn_ref.activation_name(None) == "linear"
    assert rnn_ref.activation_name(np.tanh) is None
    assert rnn_ref.activation_name("swish") is None


def test_reset_before_equals_reset_after_where_w_vanishes_between_unequal_gates(rng):
    """(g_r * h) W == g_r * (h W) for every h iff W_ij = 0 wherever g_r,i != g_r,j.

    The GRU chapter's second question: a diagonal W_hh and equal gates are two cases, a
    block-diagonal W_hh with equal gates within each block is a third.
    """
    x_t, h_prev = rng.normal(size=(3, 2)), rng.normal(size=(3, 4))
    W_xh = rng.normal(size=(2, 4))

    def gap(g_r, W_hh):
        g_r = np.broadcast_to(g_r, (3, 4))
        before = rnn_ref.candidate_state(x_t, h_prev, g_r, W_xh, W_hh)
        after = rnn_ref.candidate_state_reset_after(x_t, h_prev, g_r, W_xh, W_hh)
        return np.abs(before - after).max()

    W = rng.normal(size=(4, 4))
    blocks = np.kron(np.eye(2), np.ones((2, 2)))  # two 2x2 blocks on the diagonal
    per_block = np.array([0.2, 0.2, 0.9, 0.9])
    assert gap(per_block, W * blocks) < 1e-15  # neither diagonal nor one gate value
    assert gap(np.full(4, 0.3), W) < 1e-15
    assert gap(rng.uniform(size=4), np.diag(np.diag(W))) < 1e-15
    assert gap(per_block, W) > 1e-3  # W_ij != 0 between the blocks' unequal gates
    assert gap(np.array([0.2, 0.5, 0.9, 0.9]), W * blocks) > 1e-3
