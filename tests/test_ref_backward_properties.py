"""The backward passes against central finite differences, over shapes drawn by hypothesis.

Every vector–Jacobian product is checked argument by argument (every weight of a params object
on its own): for a direction v, the directional derivative of the loss
L = Σ (cotangent ⊙ output) by central differences, (L(θ + εv) − L(θ − εv)) / 2ε with
ε = 1e-6, must agree with ⟨∂L/∂θ, v⟩ within 1e-6 · (1 + |⟨∂L/∂θ, v⟩|), in float64. Hypothesis
draws the sizes and every array (inputs, weights, cotangents, directions: bounded finite floats,
the direction is fixed), so a failure shrinks to small arrays. Activations that are smooth
everywhere (tanh, sigmoid, linear) take hypothesis's arrays; softsign and elu, whose second
derivative jumps at 0, where hypothesis's zeros put their pre-activations and central
differences are off by O(ε), are checked on NumPy draws, which never land there. The kinked
ones are compared with Keras in test_ref_backward_keras.py. Truncated BPTT is checked against
its definition (one full BPTT per loss term over the window of steps it reaches), clipping
against its formula, and bad input against the forward's messages.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from random_params import arrays, params_strategy, random_params

import rnn_ref
from rnn_ref import bptt, clipping, gru_backward, lstm_backward, simple_rnn_backward

EPS = 1e-6
TOL = 1e-6
SMOOTH = ["tanh", "sigmoid", "linear"]  # smooth everywhere: hypothesis may draw any point
C1_ONLY = ["softsign", "elu"]  # f'' jumps at 0: checked on NumPy's draws (test_c1_activations_*)
WEIGHT_BOUND = 1.0  # the weights' and biases' range; inputs, states and cotangents take 2

sizes = st.tuples(
    st.integers(1, 3),  # N
    st.integers(1, 5),  # T
    st.integers(1, 4),  # D
    st.integers(1, 4),  # H
)
FD_SETTINGS = settings(max_examples=15, deadline=None)


def draw(data, *shape, bound=2.0) -> np.ndarray:
    """A float64 array of ``shape`` drawn by hypothesis, finite, in [-bound, bound]."""
    return data.draw(arrays(shape, bound))


def draw_params(data, kind, d, h, use_bias=True, reset_after=False, convention="notes"):
    return data.draw(
        params_strategy(
            kind,
            d,
            h,
            use_bias=use_bias,
            reset_after=reset_after,
            convention=convention,
            bound=WEIGHT_BOUND,
        )
    )


def direction(shape) -> np.ndarray:
    """A fixed direction with no entry near 0 and no pattern a gradient could be orthogonal to.

    Fixed rather than drawn: the arrays it is applied to are drawn (and shrink), and every entry
    of the gradient is tested because every entry of the direction is at least 0.25 in size.
    """
    k = np.arange(1, int(np.prod(shape)) + 1)
    return (np.where(k % 2, 1.0, -1.0) * (0.25 + 0.75 * ((k * 0.6180339887) % 1.0))).reshape(shape)


# --- trees of arrays: arrays, lists/tuples of them, params dataclasses, None -------------------


def _leaves(tree, path=()):
    if isinstance(tree, np.ndarray):
        yield path
    elif isinstance(tree, list | tuple):
        for i, item in enumerate(tree):
            yield from _leaves(item, (*path, i))
    elif dataclasses.is_dataclass(tree):
        for field in dataclasses.fields(tree):
            yield from _leaves(getattr(tree, field.name), (*path, field.name))


def _get(tree, path):
    for key in path:
        tree = tree[key] if isinstance(key, int) else getattr(tree, key)
    return tree


def _set(tree, path, value):
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        items = list(tree)
        items[key] = _set(items[key], rest, value)
        return items
    return dataclasses.replace(tree, **{key: _set(getattr(tree, key), rest, value)})


def _loss(output, cotangent) -> float:
    return float(sum(np.sum(_get(output, p) * _get(cotangent, p)) for p in _leaves(cotangent)))


def _cotangent(output, normal):
    """An array from ``normal(*shape)`` for every array of ``output``, in its structure."""
    if isinstance(output, np.ndarray):
        return normal(*output.shape)
    return [_cotangent(o, normal) for o in output]


def assert_vjp(forward, primals: list, grads: list, cotangent) -> None:
    """Check ``grads`` (the structure of ``primals``) against central differences of
    ``L(primals) = Σ cotangent ⊙ forward(*primals)``, one array of the primals at a time."""
    paths = list(_leaves(primals))
    assert paths, "nothing to differentiate"
    for path in paths:
        gradient = _get(grads, path)
        value = _get(primals, path)
        assert gradient is not None, f"no gradient for {path}"
        assert gradient.shape == value.shape, f"{path}: gradient {gradient.shape} {value.shape}"
        v = direction(value.shape)
        plus = _loss(forward(*_set(primals, path, value + EPS * v)), cotangent)
        minus = _loss(forward(*_set(primals, path, value - EPS * v)), cotangent)
        numeric = (plus - minus) / (2 * EPS)
        exact = float(np.sum(gradient * v))
        assert abs(numeric - exact) <= TOL * (1 + abs(exact)), f"{path}: {exact} vs {numeric}"


def _gate_params(kind, rng, d, h, use_bias=True, reset_after=False, convention="notes"):
    return random_params(
        kind, rng, d, h, use_bias=use_bias, reset_after=reset_after, convention=convention
    )


def _gate_case(name, n, d, h, use_bias, activation, normal):
    """Check one gate's VJP on arrays from ``normal(*shape)``."""
    forward, backward = GATES[name]
    primals = [
        normal(n, d),
        normal(n, h),
        normal(d, h),
        normal(h, h),
        normal(h) if use_bias else None,
    ]
    cotangent = normal(n, h)
    grads = backward(cotangent, *primals, activation=activation)
    assert (grads.db is None) == (not use_bias)
    assert_vjp(lambda *a: forward(*a, activation=activation), primals, list(grads), cotangent)


# --- steps and their equations --------------------------------------------------------------

GATES = {
    "simple_rnn_step": (rnn_ref.simple_rnn_step, simple_rnn_backward.simple_rnn_step_backward),
    "forget_gate": (rnn_ref.forget_gate, lstm_backward.forget_gate_backward),
    "input_gate": (rnn_ref.input_gate, lstm_backward.input_gate_backward),
    "candidate_cell_state": (
        rnn_ref.candidate_cell_state,
        lstm_backward.candidate_cell_state_backward,
    ),
    "output_gate": (rnn_ref.output_gate, lstm_backward.output_gate_backward),
    "reset_gate": (rnn_ref.reset_gate, gru_backward.reset_gate_backward),
    "update_gate": (rnn_ref.update_gate, gru_backward.update_gate_backward),
}


@pytest.mark.parametrize("name", GATES)
@FD_SETTINGS
@given(size=sizes, use_bias=st.booleans(), activation=st.sampled_from(SMOOTH), data=st.data())
def test_gate_backward(name, size, use_bias, activation, data):
    n, _, d, h = size
    normal = lambda *shape: draw(data, *shape)  # noqa: E731
    _gate_case(name, n, d, h, use_bias, activation, normal)


@pytest.mark.parametrize("activation", C1_ONLY)
@pytest.mark.parametrize("name", GATES)
def test_c1_activations_gate_backward(name, activation, rng):
    """softsign and elu on NumPy's normal draws: no pre-activation is 0 or within ε of it."""
    for n, d, h in [(1, 1, 1), (2, 3, 4), (3, 4, 2)]:
        normal = lambda *shape: rng.normal(size=shape)  # noqa: E731
        _gate_case(name, n, d, h, True, activation, normal)


def test_activations_by_function_or_none(rng):
    """rnn_ref's activation functions and None (linear) are accepted as the forward accepts them."""
    args = [rng.normal(size=s) for s in [(2, 4), (2, 3), (2, 4), (3, 4), (4, 4)]]
    for function, name in [(rnn_ref.tanh, "tanh"), (rnn_ref.elu, "elu"), (None, "linear")]:
        by_function = simple_rnn_backward.simple_rnn_step_backward(*args, activation=function)
        by_name = simple_rnn_backward.simple_rnn_step_backward(*args, activation=name)
        for a, b in zip(by_function, by_name, strict=True):
            np.testing.assert_array_equal(a, b)


ELEMENTWISE = {
    "cell_state_update": (rnn_ref.cell_state_update, lstm_backward.cell_state_update_backward, 4),
    "hidden_output": (rnn_ref.hidden_output, lstm_backward.hidden_output_backward, 2),
    "new_state": (rnn_ref.new_state, gru_backward.new_state_backward, 3),
    "new_state_keras": (rnn_ref.new_state_keras, gru_backward.new_state_keras_backward, 3),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
@FD_SETTINGS
@given(size=sizes, data=st.data())
def test_elementwise_backward(name, size, data):
    n, _, _, h = size
    forward, backward, arity = ELEMENTWISE[name]
    primals = [draw(data, n, h) for _ in range(arity)]
    cotangent = draw(data, n, h)
    assert_vjp(forward, primals, list(backward(cotangent, *primals)), cotangent)


@FD_SETTINGS
@given(size=sizes, use_bias=st.booleans(), reset_after=st.booleans(), data=st.data())
def test_candidate_state_backward(size, use_bias, reset_after, data):
    n, _, d, h = size
    primals = [
        draw(data, n, d),
        draw(data, n, h),
        data.draw(arrays((n, h), 1.0).map(np.abs)),  # a gate's output, in [0, 1]
        draw(data, d, h, bound=WEIGHT_BOUND),
        draw(data, h, h, bound=WEIGHT_BOUND),
        draw(data, h, bound=WEIGHT_BOUND) if use_bias else None,
    ]
    cotangent = draw(data, n, h)
    if reset_after:
        primals.append(draw(data, h, bound=WEIGHT_BOUND) if use_bias else None)
        forward = rnn_ref.candidate_state_reset_after
        grads = list(gru_backward.candidate_state_reset_after_backward(cotangent, *primals))
    else:
        forward = rnn_ref.candidate_state
        grads = list(gru_backward.candidate_state_backward(cotangent, *primals))
        assert grads.pop() is None  # db_hh
    assert_vjp(forward, primals, grads, cotangent)


def _lstm_step_case(n, d, h, params, activation, normal):
    primals = [normal(n, d), normal(n, h), normal(n, h), params]
    cotangent = [normal(n, h), normal(n, h)]
    grads = lstm_backward.lstm_step_backward(*cotangent, *primals, activation=activation)
    assert isinstance(grads.params, rnn_ref.LSTMParams)

    def forward(x_t, h_prev, c_prev, params):
        return list(rnn_ref.lstm_step(x_t, h_prev, c_prev, params, activation=activation))

    assert_vjp(forward, primals, list(grads), cotangent)


@FD_SETTINGS
@given(size=sizes, use_bias=st.booleans(), activation=st.sampled_from(SMOOTH), data=st.data())
def test_lstm_step_backward(size, use_bias, activation, data):
    n, _, d, h = size
    params = draw_params(data, "lstm", d, h, use_bias)
    normal = lambda *shape: draw(data, *shape)  # noqa: E731
    _lstm_step_case(n, d, h, params, activation, normal)


@pytest.mark.parametrize("activation", C1_ONLY)
def test_c1_activations_lstm_step_backward(activation, rng):
    """softsign and elu on NumPy's normal draws: no pre-activation is 0 or within ε of it."""
    for n, d, h in [(1, 1, 1), (2, 3, 4), (3, 4, 2)]:
        params = _gate_params("lstm", rng, d, h)
        normal = lambda *shape: rng.normal(size=shape)  # noqa: E731
        _lstm_step_case(n, d, h, params, activation, normal)


@FD_SETTINGS
@given(
    size=sizes,
    use_bias=st.booleans(),
    reset_after=st.booleans(),
    convention=st.sampled_from(["notes", "keras"]),
    data=st.data(),
)
def test_gru_step_backward(size, use_bias, reset_after, convention, data):
    n, _, d, h = size
    params = draw_params(data, "gru", d, h, use_bias, reset_after, convention)
    primals = [draw(data, n, d), draw(data, n, h), params]
    cotangent = draw(data, n, h)
    grads = gru_backward.gru_step_backward(cotangent, *primals)
    assert (grads.params.reset_after, grads.params.update_convention) == (reset_after, convention)
    assert_vjp(rnn_ref.gru_step, primals, list(grads), cotangent)


def test_update_conventions_have_negated_gradients(rng):
    """The notes' and Keras's update weights are each other's negation, so are their gradients."""
    params = _gate_params("gru", rng, 3, 4, reset_after=True, convention="keras")
    x_t, h_prev, dh_t = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    keras_grads = gru_backward.gru_step_backward(dh_t, x_t, h_prev, params)
    notes = rnn_ref.convert_update_convention(params, "notes")
    notes_grads = gru_backward.gru_step_backward(dh_t, x_t, h_prev, notes)
    np.testing.assert_allclose(notes_grads.dh_prev, keras_grads.dh_prev, rtol=1e-12, atol=1e-14)
    converted = rnn_ref.convert_update_convention(keras_grads.params, "notes")
    for field in ("W_xz", "W_hz", "b_z", "W_hh", "b_hh"):
        np.testing.assert_allclose(
            getattr(notes_grads.params, field), getattr(converted, field), rtol=1e-12, atol=1e-14
        )


# --- sequences ----------------------------------------------------------------------------

FORWARD = {"simple_rnn": rnn_ref.simple_rnn, "lstm": rnn_ref.lstm, "gru": rnn_ref.gru}
BPTT = {"simple_rnn": bptt.simple_rnn_bptt, "lstm": bptt.lstm_bptt, "gru": bptt.gru_bptt}
layer_options = st.fixed_dictionaries(
    {
        "return_sequences": st.booleans(),
        "return_state": st.booleans(),
        "go_backwards": st.booleans(),
    }
)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@FD_SETTINGS
@given(
    size=sizes,
    options=layer_options,
    use_bias=st.booleans(),
    given_state=st.booleans(),
    reset_after=st.booleans(),
    convention=st.sampled_from(["notes", "keras"]),
    data=st.data(),
)
def test_layer_bptt(kind, size, options, use_bias, given_state, reset_after, convention, data):
    n, t, d, h = size
    normal = lambda *shape: draw(data, *shape)  # noqa: E731
    params = draw_params(data, kind, d, h, use_bias, reset_after, convention)
    states = [draw(data, n, h) for _ in range(2 if kind == "lstm" else 1)]
    x = draw(data, n, t, d)

    def forward(x, params, initial_state):
        return FORWARD[kind](x, params, initial_state=initial_state, **options)

    output = forward(x, params, states if given_state else None)
    cotangent = _cotangent(output, normal)
    grads = BPTT[kind](
        cotangent, x, params, initial_state=states if given_state else None, **options
    )
    assert grads.dx.shape == x.shape
    assert [g.shape for g in grads.d_initial_state] == [s.shape for s in states]
    assert type(grads.params) is type(params)
    if given_state:
        assert_vjp(
            forward,
            [x, params, states],
            [grads.dx, grads.params, grads.d_initial_state],
            cotangent,
        )
    else:  # zeros are the initial state, and its gradient is the same
        assert_vjp(forward, [x, params, None], [grads.dx, grads.params, None], cotangent)
        zeros = [np.zeros_like(s) for s in states]
        again = BPTT[kind](cotangent, x, params, initial_state=zeros, **options)
        for a, b in zip(again.d_initial_state, grads.d_initial_state, strict=True):
            np.testing.assert_array_equal(a, b)


@FD_SETTINGS
@given(
    size=sizes,
    kinds=st.tuples(*[st.sampled_from(["simple_rnn", "lstm", "gru"])] * 2),
    data=st.data(),
)
def test_stack_bptt(size, kinds, data):
    n, t, d, h = size
    normal = lambda *shape: draw(data, *shape)  # noqa: E731
    specs = {"simple_rnn": rnn_ref.SimpleRNN, "lstm": rnn_ref.LSTM, "gru": rnn_ref.GRU}
    params = [draw_params(data, kinds[0], d, h + 1), draw_params(data, kinds[1], h + 1, h)]
    x = draw(data, n, t, d)

    def layers(p0, p1):
        return [specs[kinds[0]](params=p0, return_sequences=True), specs[kinds[1]](params=p1)]

    def forward(x, p0, p1):
        return rnn_ref.stack(x, layers(p0, p1))

    cotangent = _cotangent(forward(x, *params), normal)
    grads = bptt.stack_bptt(cotangent, x, layers(*params))
    primal_grads = [grads.dx, *(g.params for g in grads.layers)]
    assert_vjp(forward, [x, *params], primal_grads, cotangent)


@FD_SETTINGS
@given(
    size=sizes,
    kind=st.sampled_from(["simple_rnn", "lstm", "gru"]),
    merge_mode=st.sampled_from(["concat", "sum", "mul", "ave", None]),
    return_sequences=st.booleans(),
    return_state=st.booleans(),
    shared=st.booleans(),
    data=st.data(),
)
def test_bidirectional_bptt(size, kind, merge_mode, return_sequences, return_state, shared, data):
    n, t, d, h = size
    normal = lambda *shape: draw(data, *shape)  # noqa: E731
    spec = {"simple_rnn": rnn_ref.SimpleRNN, "lstm": rnn_ref.LSTM, "gru": rnn_ref.GRU}[kind]
    options = {"return_sequences": return_sequences, "return_state": return_state}
    x = draw(data, n, t, d)
    states = [draw(data, n, h) for _ in range(4 if kind == "lstm" else 2)]

    def pair(p_forward, p_backward):
        forward = spec(params=p_forward, **options)
        if shared:
            return forward, None
        return forward, spec(params=p_backward, go_backwards=True, **options)

    def run(x, p_forward, p_backward, initial_state):
        return rnn_ref.bidirectional(
            x, *pair(p_forward, p_backward), merge_mode=merge_mode, initial_state=initial_state
        )

    p_forward, p_backward = draw_params(data, kind, d, h), draw_params(data, kind, d, h)
    cotangent = _cotangent(run(x, p_forward, p_backward, states), normal)
    grads = bptt.bidirectional_bptt(
        cotangent, x, *pair(p_forward, p_backward), merge_mode=merge_mode, initial_state=states
    )
    if shared:
        assert grads.backward is None
        forward = lambda x, p, s: run(x, p, None, s)  # noqa: E731
        assert_vjp(
            forward,
            [x, p_forward, states],
            [grads.dx, grads.forward, grads.d_initial_state],
            cotangent,
        )
    else:
        assert_vjp(
            run,
            [x, p_forward, p_backward, states],
            [grads.dx, grads.forward, grads.backward, grads.d_initial_state],
            cotangent,
        )


# --- truncated BPTT -----------------------------------------------------------------------


def _windowed_bptt(kind, d_seq, d_final, x, params, truncate):
    """Truncated BPTT by its definition: for each loss term, a full BPTT over the window of at
    most ``truncate`` steps that ends at its step, from the forward's state before the window
    held fixed."""
    n, t, _ = x.shape
    dx = np.zeros_like(x)
    d_initial = None
    total = None
    for s in range(t):
        d_h = d_seq[:, s] if d_seq is not None else np.zeros((n, params.hidden_size))
        d_states = [None] * (2 if kind == "lstm" else 1)
        if s == t - 1:
            d_states = list(d_final)
        start = max(s - truncate + 1, 0)
        if start == 0:
            state = None
        else:
            state = FORWARD[kind](x[:, :start], params, return_state=True)[1:]
        grads = BPTT[kind](
            [d_h, *d_states], x[:, start : s + 1], params, initial_state=state, return_state=True
        )
        dx[:, start : s + 1] += grads.dx
        if start == 0:
            d_initial = (
                grads.d_initial_state
                if d_initial is None
                else [a + b for a, b in zip(d_initial, grads.d_initial_state, strict=True)]
            )
        if total is None:
            total = grads.params
        else:
            total = bptt._add_params(total, grads.params)
    return dx, d_initial, total


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@FD_SETTINGS
@given(size=sizes, truncate=st.integers(1, 6), return_sequences=st.booleans(), data=st.data())
def test_truncated_bptt_is_a_full_bptt_per_loss_term_window(
    kind, size, truncate, return_sequences, data
):
    n, t, d, h = size
    params = draw_params(data, kind, d, h, reset_after=True, convention="keras")
    x = draw(data, n, t, d)
    d_seq = draw(data, n, t, h) if return_sequences else None
    d_final = [draw(data, n, h) for _ in range(2 if kind == "lstm" else 1)]
    d_output = [d_seq if return_sequences else None, *d_final]
    grads = BPTT[kind](
        d_output, x, params, return_sequences=return_sequences, return_state=True, truncate=truncate
    )
    dx, d_initial, params_grads = _windowed_bptt(kind, d_seq, d_final, x, params, truncate)
    close = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(grads.dx, dx, **close)
    for a, b in zip(grads.d_initial_state, d_initial or [0.0] * len(d_final), strict=True):
        np.testing.assert_allclose(a, np.broadcast_to(b, a.shape), **close)
    for path in _leaves(params_grads):
        np.testing.assert_allclose(_get(grads.params, path), _get(params_grads, path), **close)
    # go_backwards truncates in processing order: the same as running on the reversed input.
    backwards = BPTT[kind](
        d_output,
        x[:, ::-1],
        params,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=True,
        truncate=truncate,
    )
    np.testing.assert_allclose(backwards.dx[:, ::-1], grads.dx, **close)
    if truncate >= t:  # at least as long as the sequence: full BPTT, exactly
        full = BPTT[kind](d_output, x, params, return_sequences=return_sequences, return_state=True)
        np.testing.assert_array_equal(grads.dx, full.dx)


def test_truncated_bptt_forgets_far_steps(rng):
    """With a gradient on the last output only and k < T, the first T − k inputs get none."""
    params = _gate_params("lstm", rng, 3, 4)
    x = rng.normal(size=(2, 7, 3))
    grads = bptt.lstm_bptt(rng.normal(size=(2, 4)), x, params, truncate=3)
    assert np.all(grads.dx[:, :4] == 0)
    assert np.all(grads.dx[:, 4:] != 0)
    assert all(np.all(g == 0) for g in grads.d_initial_state)
    backwards = bptt.lstm_bptt(rng.normal(size=(2, 4)), x, params, truncate=3, go_backwards=True)
    assert np.all(backwards.dx[:, 3:] == 0)
    assert np.all(backwards.dx[:, :3] != 0)


# --- clipping -----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=4),
    scale=st.floats(1e-3, 1e3),
    clip_norm=st.floats(1e-2, 1e2),
    data=st.data(),
)
def test_clip_by_global_norm_formula(shapes, scale, clip_norm, data):
    # Not all zero: the norm 0 is test_clip_by_global_norm_edge_cases's.
    tensors = [draw(data, *s) * scale for s in shapes]
    tensors[0].flat[0] = data.draw(st.floats(0.5, 2.0)) * scale
    clipped, norm = clipping.clip_by_global_norm([tensors[0], None, *tensors[1:]], clip_norm)
    assert clipped[1] is None
    clipped = [clipped[0], *clipped[2:]]
    expected_norm = np.sqrt(sum(np.sum(a**2) for a in tensors))
    assert norm == pytest.approx(expected_norm, rel=1e-12)
    assert clipping.global_norm(tensors) == pytest.approx(expected_norm, rel=1e-12)
    factor = min(1.0, clip_norm / expected_norm)
    for a, c in zip(tensors, clipped, strict=True):
        np.testing.assert_allclose(c, a * factor, rtol=1e-12)
    assert clipping.global_norm(clipped) <= clip_norm * (1 + 1e-12)


def test_clip_by_global_norm_edge_cases():
    zeros, _ = clipping.clip_by_global_norm([np.zeros(3), None], 1.0)
    np.testing.assert_array_equal(zeros[0], np.zeros(3))
    assert clipping.clip_by_global_norm([], 1.0) == ([], 0.0)
    clipped, norm = clipping.clip_by_global_norm([np.array([np.inf, 1.0]), np.ones(2)], 1.0)
    assert norm == np.inf
    assert all(np.all(np.isnan(c)) for c in clipped)
    clipped, norm = clipping.clip_by_global_norm([np.array([3.0, 4.0])], 1.0, use_norm=10.0)
    assert norm == 10.0
    np.testing.assert_allclose(clipped[0], [0.3, 0.4])
    with pytest.raises(ValueError, match=r"clip_norm must be a positive finite number, got 0\.0"):
        clipping.clip_by_global_norm([np.ones(2)], 0.0)
    with pytest.raises(TypeError, match="t_list must be a sequence of arrays, got ndarray"):
        clipping.clip_by_global_norm(np.ones(2), 1.0)
    with pytest.raises(TypeError, match=r"t_list\[1\] must hold real numbers"):
        clipping.clip_by_global_norm([np.ones(2), ["a"]], 1.0)


# --- bad input ----------------------------------------------------------------------------


def test_step_backward_bad_input(rng):
    x_t, h_prev, W_x, W_h = (rng.normal(size=s) for s in [(2, 3), (2, 4), (3, 4), (4, 4)])
    with pytest.raises(ValueError, match=r"dh_t must have shape \(N, H\) = \(2, 4\), got \(2, 3\)"):
        simple_rnn_backward.simple_rnn_step_backward(np.zeros((2, 3)), x_t, h_prev, W_x, W_h)
    with pytest.raises(ValueError, match=r"W_hf must have shape \(H, H\) = \(4, 4\), got \(3, 4\)"):
        lstm_backward.forget_gate_backward(np.zeros((2, 4)), x_t, h_prev, W_x, W_x)
    with pytest.raises(ValueError, match="x_t and h_prev must have the same batch size N"):
        gru_backward.reset_gate_backward(np.zeros((2, 4)), x_t[:1], h_prev, W_x, W_h)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        gru_backward.update_gate_backward(h_prev, x_t, h_prev, W_x, W_h, activation="swish")
    with pytest.raises(ValueError, match="needs the derivative of the activation"):
        lstm_backward.output_gate_backward(h_prev, x_t, h_prev, W_x, W_h, activation=np.sin)
    with pytest.raises(ValueError, match=r"dc_t must have shape \(N, H\) like c_prev"):
        lstm_backward.cell_state_update_backward(x_t, h_prev, h_prev, h_prev, h_prev)
    with pytest.raises(ValueError, match="g_r must have shape"):
        gru_backward.candidate_state_backward(h_prev, x_t, h_prev, x_t, W_x, W_h)
    with pytest.raises(TypeError, match="params must be LSTMParams, got GRUParams"):
        lstm_backward.lstm_step_backward(
            h_prev, h_prev, x_t, h_prev, h_prev, _gate_params("gru", rng, 3, 4)
        )


def test_bptt_bad_input(rng):
    params = _gate_params("lstm", rng, 3, 4)
    x = rng.normal(size=(2, 5, 3))
    d_h = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"x must have 3 dimensions, got shape \(2, 3\)"):
        bptt.lstm_bptt(d_h, x[:, 0], params)
    with pytest.raises(ValueError, match=r"d_output must have shape \(N, T, H\) = \(2, 5, 4\)"):
        bptt.lstm_bptt(np.zeros((2, 4, 4)), x, params, return_sequences=True)
    with pytest.raises(ValueError, match="d_output must be a list of 3 gradients"):
        bptt.lstm_bptt([d_h, d_h], x, params, return_state=True)
    with pytest.raises(ValueError, match=r"d_output c_T must have shape \(N, H\)"):
        bptt.lstm_bptt([d_h, d_h, d_h[:1]], x, params, return_state=True)
    with pytest.raises(ValueError, match=r"initial_state h0 must have shape \(N, H\)"):
        bptt.lstm_bptt(d_h, x, params, initial_state=[d_h[:1], d_h])
    with pytest.raises(ValueError, match="truncate must be at least 1 step, got 0"):
        bptt.lstm_bptt(d_h, x, params, truncate=0)
    with pytest.raises(TypeError, match="truncate must be a whole number of steps or None"):
        bptt.lstm_bptt(d_h, x, params, truncate=2.5)
    with pytest.raises(TypeError, match="params must be GRUParams, got LSTMParams"):
        bptt.gru_bptt(d_h, x, params)
    with pytest.raises(TypeError, match="layer must be a SimpleRNN, LSTM, GRU or Bidirectional"):
        bptt.layer_bptt(object(), d_h, x)
    layer = rnn_ref.LSTM(params=params)
    with pytest.raises(ValueError, match="layer 0 of the stack must have return_sequences=True"):
        bptt.stack_bptt(d_h, x, [layer, layer])
    with pytest.raises(ValueError, match="d_output must have the structure of the layer's output"):
        bptt.bidirectional_bptt(d_h, x, layer, merge_mode=None)
    with pytest.raises(ValueError, match=r"1 output gradient\(s\) and then one per final state"):
        bptt.bidirectional_bptt([d_h, d_h], x, dataclasses.replace(layer, return_state=True))
    with pytest.raises(ValueError, match=r"d_output must have shape \(N, 2H\) = \(2, 8\)"):
        bptt.bidirectional_bptt(d_h, x, layer)
    with pytest.raises(ValueError, match="must have opposite go_backwards"):
        bptt.bidirectional_bptt(d_h, x, layer, layer)
