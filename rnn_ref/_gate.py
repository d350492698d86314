"""The affine map every gate shares, the checks of its arguments, and what the cells share.

A gate of the notes is ``act(W[h_{t-1}, x_t] + b)``; in the row-vector form that Keras computes
it is ``act(x_t W_x + h_{t-1} W_h + b)``. The gate functions of :mod:`rnn_ref.simple_rnn`,
:mod:`rnn_ref.lstm` and :mod:`rnn_ref.gru` differ only in their names and default activation.
The three params dataclasses share :class:`GateParams`, and the three sequence functions
(``simple_rnn``, ``lstm``, ``gru``) are :func:`run_layer` with their own cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._checks import as_float_array, check_shape, optional_float_array
from .activations import get_activation
from .sequence import check_sequence, initial_states, run_over_time


def check_step_inputs(x_t, h_prev, h_name: str = "h_prev") -> tuple[np.ndarray, np.ndarray]:
    """Convert one step's input ``x_t`` (N, D) and previous state (N, H); check N agrees."""
    x_t = as_float_array(x_t, "x_t", ndim=2)
    h_prev = as_float_array(h_prev, h_name, ndim=2)
    if h_prev.shape[0] != x_t.shape[0]:
        raise ValueError(
            f"x_t and {h_name} must have the same batch size N, got x_t {x_t.shape} "
            f"and {h_name} {h_prev.shape}"
        )
    return x_t, h_prev


def check_gate_weights(W_x, W_h, b, names: tuple[str, str, str], input_size: int, hidden_size: int):
    """Convert one gate's weights and check them against D = ``input_size``, H = ``hidden_size``.

    ``W_x`` is (D, H), ``W_h`` is (H, H) and ``b`` is (H,) or ``None`` (no bias).
    """
    W_x_name, W_h_name, b_name = names
    W_x = as_float_array(W_x, W_x_name, ndim=2)
    W_h = as_float_array(W_h, W_h_name, ndim=2)
    b = optional_float_array(b, b_name, ndim=1)
    check_shape(W_x, W_x_name, (input_size, hidden_size), "(D, H)")
    check_shape(W_h, W_h_name, (hidden_size, hidden_size), "(H, H)")
    if b is not None:
        check_shape(b, b_name, (hidden_size,), "(H,)")
    return W_x, W_h, b


def affine(x_t: np.ndarray, h_prev: np.ndarray, W_x, W_h, b) -> np.ndarray:
    r""":math:`x_t W_x + h_{t-1} W_h + b`, with no bias term when ``b`` is ``None``."""
    z = x_t @ W_x + h_prev @ W_h
    return z if b is None else z + b


def input_projections(x: np.ndarray, params, gates: str) -> list[np.ndarray]:
    """``x_t W_x? + b_?`` for each gate in ``gates``, each of shape (T, N, H), time first.

    ``x`` is a sequence (N, T, D), or one step (N, D), which gives (N, H) arrays. A layer
    computes these before its loop, one matrix product per gate instead of one per step; only
    the recurrent products ``h_{t-1} W_h?`` depend on the previous step.
    """
    if x.ndim == 3:  # time first, contiguous, so that each step reads contiguous (N, H) blocks
        x = np.ascontiguousarray(np.swapaxes(x, 0, 1))
    rows = x.reshape(-1, x.shape[-1])
    projections = []
    for g in gates:
        projection = rows @ getattr(params, f"W_x{g}")
        b = getattr(params, f"b_{g}")
        if b is not None:
            projection += b  # in place: a fresh large array costs page faults
        projections.append(projection.reshape(*x.shape[:-1], -1))
    return projections


def gate(x_t, h_prev, W_x, W_h, b, activation, names: tuple[str, str, str]) -> np.ndarray:
    """Check the arguments of one gate and return ``activation(x_t W_x + b + h_prev W_h)``.

    The body of every public gate function: its checks, then :func:`gate_from_projection`,
    which the layers call at every step.
    """
    x_t, h_prev = check_step_inputs(x_t, h_prev)
    W_x, W_h, b = check_gate_weights(W_x, W_h, b, names, x_t.shape[1], h_prev.shape[1])
    projection = x_t @ W_x if b is None else x_t @ W_x + b
    return gate_from_projection(projection, h_prev, W_h, get_activation(activation))


def gate_from_projection(projection, h_prev, W_h, activation) -> np.ndarray:
    """``activation(projection + h_prev W_h)``: a gate from its input side ``x_t W_x + b``.

    The unchecked kernel of every gate: ``activation`` is a function, the arrays are float64
    of matching shapes. A layer computes ``projection`` for all steps before its loop
    (:func:`input_projections`), so that only the recurrent product is left per step.
    """
    return activation(projection + h_prev @ W_h)


def convert_gate_params(params, gates: tuple[str, ...]) -> None:
    """Convert and check the ``W_x?``, ``W_h?``, ``b_?`` fields of a frozen params dataclass."""
    first = as_float_array(getattr(params, f"W_x{gates[0]}"), f"W_x{gates[0]}", ndim=2)
    input_size, hidden_size = first.shape
    biases = []
    for g in gates:
        names = (f"W_x{g}", f"W_h{g}", f"b_{g}")
        W_x, W_h, b = check_gate_weights(
            *(getattr(params, n) for n in names), names, input_size, hidden_size
        )
        for name, value in zip(names, (W_x, W_h, b), strict=True):
            object.__setattr__(params, name, value)
        biases.append(b is None)
    if any(biases) and not all(biases):
        missing = [f"b_{g}" for g, absent in zip(gates, biases, strict=True) if absent]
        raise ValueError(f"biases must be all given or all None; missing {missing}")


def check_params(params, expected: type, input_size: int, hidden_size: int | None = None) -> None:
    """Check that ``params`` is an ``expected`` whose sizes D (and H) match the inputs."""
    if not isinstance(params, expected):
        raise TypeError(f"params must be {expected.__name__}, got {type(params).__name__}")
    if params.input_size != input_size:
        raise ValueError(
            f"the input has D = {input_size} features but params expect D = {params.input_size}"
        )
    if hidden_size is not None and params.hidden_size != hidden_size:
        raise ValueError(
            f"the state has H = {hidden_size} units but params expect H = {params.hidden_size}"
        )


def same_shapes(**arrays) -> list[np.ndarray]:
    """Convert (N, H) arrays given by name and check they all have the first one's shape."""
    names = list(arrays)
    first = as_float_array(arrays[names[0]], names[0], ndim=2)
    converted = [first]
    for name in names[1:]:
        array = as_float_array(arrays[name], name, ndim=2)
        check_shape(array, name, first.shape, f"(N, H) like {names[0]}")
        converted.append(array)
    return converted


class GateParams:
    """What the params dataclasses share: their checks, and the sizes D and H of their weights.

    A subclass is a frozen dataclass with the fields ``W_x?`` (D, H), ``W_h?`` (H, H) and
    ``b_?`` (H,) or ``None`` for each gate ``?`` of :attr:`gates`.
    """

    gates: str
    """The gates' letters, in the order in which a step computes them."""
    state_names: tuple[str, ...]
    """The cell's states, in the order of a layer's ``initial_state`` (Keras's)."""

    def __post_init__(self):
        """Convert the weights to float64 arrays and check their shapes against each other."""
        convert_gate_params(self, self.gates)

    @property
    def input_size(self) -> int:
        """D, the size of each input vector."""
        return getattr(self, f"W_x{self.gates[0]}").shape[0]

    @property
    def hidden_size(self) -> int:
        """H, the size of the states."""
        return getattr(self, f"W_x{self.gates[0]}").shape[1]

    @property
    def use_bias(self) -> bool:
        """Whether the gates have biases."""
        return getattr(self, f"b_{self.gates[0]}") is not None


def run_layer(
    cell: Callable,
    x,
    params: GateParams,
    params_type: type,
    activations: Sequence,
    *,
    return_sequences: bool,
    return_state: bool,
    go_backwards: bool,
    initial_state,
):
    """Check a layer's arguments and run ``cell`` over ``x`` (N, T, D) with Keras's options.

    ``cell(projections_t, states, params, *activations) -> (output_t, states, cache)`` is one
    step, given ``x_t W_x? + b_?`` for each gate (:func:`input_projections`, computed here for
    all steps at once) and the states, all (N, H); the cache (what the step's backward pass
    reads) is dropped here. ``activations`` are resolved with
    :func:`rnn_ref.activations.get_activation` first; the options are those of
    :func:`rnn_ref.sequence.run_over_time`, and ``initial_state`` is checked against
    ``params.state_names``.
    """
    x = check_sequence(x)
    check_params(params, params_type, x.shape[2])
    states = initial_states(initial_state, x.shape[0], params.hidden_size, params.state_names)
    activations = [get_activation(activation) for activation in activations]

    def step(projections_t, states):
        output, states, _ = cell(projections_t, states, params, *activations)
        return output, states

    return run_over_time(
        step,
        input_projections(x, params, params.gates),
        states,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
    )
