"""Property-based tests over shapes (hypothesis): what holds for every N, T, D, H.

Hypothesis draws the sizes and every array (bounded finite floats, weights included), so a
failing case shrinks to small sizes and simple values.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from random_params import arrays, params_strategy

import rnn_ref

sizes = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(1, 5))
"""(N, T, D, H)."""


@settings(max_examples=40, deadline=None)
@given(sizes, st.booleans(), st.booleans(), st.data())
def test_lstm_shapes_and_bounds(size, return_sequences, go_backwards, data):
    n, t, d, h = size
    x = data.draw(arrays((n, t, d), bound=6.0))
    y, h_T, c_T = rnn_ref.lstm(
        x,
        data.draw(params_strategy("lstm", d, h, bound=2.0)),
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
    )
    assert y.shape == ((n, t, h) if return_sequences else (n, h))
    assert h_T.shape == c_T.shape == (n, h)
    assert np.all(np.abs(y) < 1)  # h = g_o ⊙ tanh(c), both factors below 1 in size
    assert np.all(np.abs(c_T) <= t)  # |c_t| ≤ |c_{t-1}| + 1
    np.testing.assert_array_equal(y[:, -1] if return_sequences else y, h_T)


@settings(max_examples=40, deadline=None)
@given(sizes, st.data())
def test_gru_state_stays_between_old_state_and_candidate(size, data):
    """h_t is a convex combination of h_{t-1} and h̄_t, so |h| never exceeds max(|h0|, 1)."""
    n, t, d, h = size
    h0 = data.draw(arrays((n, h), bound=1.0))
    y = rnn_ref.gru(
        data.draw(arrays((n, t, d))),
        data.draw(params_strategy("gru", d, h, bound=2.0)),
        return_sequences=True,
        initial_state=h0,
    )
    assert y.shape == (n, t, h)
    assert np.all(np.abs(y) <= 1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(sizes, st.sampled_from(["sigmoid", "tanh", "relu", "linear", "hard_sigmoid"]), st.data())
def test_concatenated_equals_split_for_any_shape(size, activation, data):
    n, _, d, h = size
    x_t, h_prev = data.draw(arrays((n, d))), data.draw(arrays((n, h)))
    W_x, W_h, b = data.draw(arrays((d, h))), data.draw(arrays((h, h))), data.draw(arrays((h,)))
    split = rnn_ref.forget_gate(x_t, h_prev, W_x, W_h, b, activation=activation)
    joined = rnn_ref.concatenated_gate(h_prev, x_t, rnn_ref.concat_weights(W_h, W_x), b, activation)
    np.testing.assert_allclose(joined, split, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(sizes, st.sampled_from(["concat", "sum", "mul", "ave"]), st.data())
def test_bidirectional_output_shapes(size, merge_mode, data):
    n, t, d, h = size
    forward = rnn_ref.LSTM(params=data.draw(params_strategy("lstm", d, h)), return_sequences=True)
    backward = rnn_ref.LSTM(
        params=data.draw(params_strategy("lstm", d, h)), return_sequences=True, go_backwards=True
    )
    x = data.draw(arrays((n, t, d)))
    y = rnn_ref.bidirectional(x, forward, backward, merge_mode=merge_mode)
    assert y.shape == (n, t, 2 * h if merge_mode == "concat" else h)


@settings(max_examples=30, deadline=None)
@given(sizes, st.data())
def test_float32_and_lists_give_the_float64_answer(size, data):
    n, _, d, h = size
    args = [data.draw(arrays(shape)) for shape in [(n, d), (n, h), (d, h), (h, h)]]
    exact = rnn_ref.output_gate(*args)
    as_lists = rnn_ref.output_gate(*(a.tolist() for a in args))
    as_float32 = rnn_ref.output_gate(*(a.astype(np.float32) for a in args))
    assert exact.dtype == as_lists.dtype == as_float32.dtype == np.float64
    np.testing.assert_array_equal(exact, as_lists)
    np.testing.assert_allclose(as_float32, exact, rtol=1e-5, atol=1e-6)
