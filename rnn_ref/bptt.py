r"""Backpropagation through time (BPTT): the gradients of a loss through a whole recurrent layer.

Each function here is the vector–Jacobian product of a forward layer function: given the
gradients of a loss :math:`L` on what the layer returned (its output sequence
:math:`h_1 \dots h_T` or last output, and the final states with ``return_state``), it returns
the gradients with respect to the input sequence, the initial state(s) and every weight. The
cell's step VJP (:mod:`rnn_ref.simple_rnn_backward`, :mod:`rnn_ref.lstm_backward`,
:mod:`rnn_ref.gru_backward`) runs from the last processed step to the first, carrying
:math:`\partial L/\partial h_{t-1}` (and :math:`\partial L/\partial c_{t-1}`) back, adding at
each step the loss's own gradient on that step's output,

.. math::

    \delta h_t = \frac{\partial L}{\partial h_t}\Big|_{\text{direct}} + \delta h_{t+1}
    \frac{\partial h_{t+1}}{\partial h_t}, \qquad
    \frac{\partial L}{\partial W} = \sum_{t=1}^{T} \delta h_t
    \frac{\partial^{+} h_t}{\partial W},

where :math:`\partial^{+} h_t / \partial W` is the step's own (local) derivative, with
:math:`h_{t-1}` held fixed. Weight gradients are accumulated over time and batch.

**Truncated BPTT** (``truncate=k``), as in Williams and Peng's BPTT(k): the gradient of each
loss term flows back *at most k steps* from the step it is attached to. A loss term on step
:math:`t`'s output (or on the final states, step :math:`T`) contributes the local derivatives
of steps :math:`t, t-1, \dots, t-k+1` only (with :math:`k = 1`, only its own step's), and
reaches the initial state only if :math:`t \le k`:

.. math::

    \frac{\partial L}{\partial W} \approx \sum_{t=1}^{T} \sum_{s=\max(1, t-k+1)}^{t}
    \frac{\partial L_t}{\partial h_t} \frac{\partial h_t}{\partial h_s}
    \frac{\partial^{+} h_s}{\partial W}.

Steps are counted in processing order (reversed with ``go_backwards``); ``truncate=None`` or
:math:`k \ge T` is full BPTT. It costs O(T·k) step VJPs, against O(T) for full BPTT. The other
common scheme, per chunk (split the sequence into chunks of k steps, carry the state forwards
but not the gradient), is full BPTT on each chunk with ``initial_state`` the previous chunk's
final state, ignoring ``d_initial_state``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ._backward import Cell, rows, upstream
from ._checks import as_float_array, check_choice
from ._gate import check_params, input_projections
from .bidirectional import MERGE_MODES, Bidirectional, _split_initial_state
from .gru import GRUParams
from .gru_backward import GRUCell
from .layers import GRU, LSTM, SimpleRNN, _check_stack
from .lstm import LSTMParams
from .lstm_backward import LSTMCell
from .sequence import check_sequence, initial_states
from .simple_rnn import SimpleRNNParams
from .simple_rnn_backward import SimpleRNNCell


class BPTTGrads(NamedTuple):
    """Gradients of a loss through one recurrent layer.

    ``dx`` (N, T, D) with respect to the input sequence (in time order, whatever
    ``go_backwards``); ``d_initial_state``, a list of (N, H) arrays with respect to the initial
    states (``[dh_0]``, or ``[dh_0, dc_0]`` for an LSTM); ``params``, a params object of the
    layer's type whose every array field is the gradient with respect to that weight.
    """

    dx: np.ndarray
    d_initial_state: list[np.ndarray]
    params: SimpleRNNParams | LSTMParams | GRUParams


def _check_truncate(truncate) -> None:
    if truncate is None:
        return
    if isinstance(truncate, bool) or not isinstance(truncate, int | np.integer):
        raise TypeError(f"truncate must be a whole number of steps or None, got {truncate!r}")
    if truncate < 1:
        raise ValueError(f"truncate must be at least 1 step, got {truncate}")


def _split_upstream(d_output, shape, return_sequences, return_state, state_names):
    """``d_output`` as (gradient on the output sequence (T, N, H) or None, final-state list)."""
    n, t, h = shape
    if return_state:
        expected = 1 + len(state_names)
        if not isinstance(d_output, list | tuple) or len(d_output) != expected:
            count = len(d_output) if isinstance(d_output, list | tuple) else "not a list"
            raise ValueError(
                f"with return_state, d_output must be a list of {expected} gradients (on the "
                f"output and on the final states {[s[0] + '_T' for s in state_names]}), "
                f"got {count}"
            )
        d_out, d_states = d_output[0], list(d_output[1:])
    else:
        d_out, d_states = d_output, [None] * len(state_names)
    finals = [
        upstream(d, f"d_output {name[0]}_T", (n, h), "(N, H)")
        for d, name in zip(d_states, state_names, strict=True)
    ]
    if return_sequences:
        d_seq = upstream(d_out, "d_output", (n, t, h), "(N, T, H)")
        return np.swapaxes(d_seq, 0, 1), finals
    finals[0] = finals[0] + upstream(d_out, "d_output", (n, h), "(N, H)")
    return None, finals


def _bptt(
    cell: Cell,
    d_output,
    x,
    *,
    return_sequences,
    return_state,
    go_backwards,
    initial_state,
    truncate,
) -> BPTTGrads:
    _check_truncate(truncate)
    n, t, _ = x.shape
    h = cell.params.hidden_size
    states = initial_states(initial_state, n, h, list(cell.state_names))
    d_seq, d_final = _split_upstream(
        d_output, (n, t, h), return_sequences, return_state, cell.state_names
    )
    x_steps = x[:, ::-1] if go_backwards else x  # processing order
    projections = input_projections(x_steps, cell.params, cell.gates)
    caches = []
    for s in range(t):
        _, states, cache = cell.forward([p[s] for p in projections], states)
        caches.append(cache)

    # Per step and gate, the gradient on the input side x_t W_x? + b_? (all gates side by side,
    # so that each weight's gradient is one product over all steps), and, for the gates where
    # it differs, on the recurrent product. A truncated BPTT adds several loss terms' shares.
    gates = len(cell.gates)
    truncated = truncate is not None and truncate < t
    new = np.zeros if truncated else np.empty  # full BPTT writes each step once
    d_pre = new((t, n, gates, h))
    # gate letter -> (T, N, H), for the gates whose recurrent gradient is not their d_pre
    d_rec = {g: new((t, n, h)) for g in cell.separate_recurrent_grads}

    def backward_from(step, d_states, stop):
        """Carry ``d_states`` (on step ``step``'s new states) back to step ``stop``."""
        for s in range(step, stop - 1, -1):
            pre, rec, d_states = cell.backward(caches[s], d_states)
            for k, g in enumerate(cell.gates):
                if truncated:
                    d_pre[s, :, k] += pre[g]
                else:
                    d_pre[s, :, k] = pre[g]
            for g, d in d_rec.items():
                if truncated:
                    d[s] += rec[g]
                else:
                    d[s] = rec[g]
        return d_states

    if truncate is None or truncate >= t:
        d_states = list(d_final)
        for s in range(t - 1, -1, -1):
            if d_seq is not None:
                d_states[0] = d_states[0] + d_seq[s]
            d_states = backward_from(s, d_states, s)
        d_initial = d_states
    else:
        d_initial = [np.zeros((n, h)) for _ in cell.state_names]
        for s in range(t):  # one loss term per step with a gradient on its output
            d_states = [np.zeros((n, h)) for _ in cell.state_names]
            if d_seq is not None:
                d_states[0] = d_seq[s]
            if s == t - 1:
                d_states = [a + b for a, b in zip(d_states, d_final, strict=True)]
            if not any(np.any(d) for d in d_states):
                continue
            stop = max(s - truncate + 1, 0)
            d_states = backward_from(s, d_states, stop)
            if stop == 0:
                d_initial = [a + b for a, b in zip(d_initial, d_states, strict=True)]

    grads, dx = _sequence_grads(cell, x_steps, d_pre, d_rec, caches)
    if go_backwards:
        dx = dx[:, ::-1]
    return BPTTGrads(
        np.ascontiguousarray(dx), list(d_initial), dataclasses.replace(cell.params, **grads)
    )


def _sequence_grads(cell: Cell, x_steps, d_pre, d_rec, caches):
    """The weights' gradients summed over steps and batch, and the input's.

    From the per-step gradients on each gate's input side ``d_pre`` (T, N, G, H) and recurrent
    product ``d_rec``.
    """
    t, n, gates, h = d_pre.shape
    p = cell.params
    d_all = d_pre.reshape(t * n, gates * h)
    inputs = rows(np.swapaxes(x_steps, 0, 1))
    W_x = np.split(inputs.T @ d_all, gates, axis=1)
    W_x_all = np.concatenate([getattr(p, f"W_x{g}") for g in cell.gates], axis=1)
    dx = np.swapaxes((d_all @ W_x_all.T).reshape(t, n, -1), 0, 1)
    b = d_pre.sum(axis=(0, 1))
    d_rec_per_gate = {
        g: d_rec[g] if g in d_rec else d_pre[:, :, k] for k, g in enumerate(cell.gates)
    }

    # Gates with the same left factor r (h_{t-1}, or the GRU's g_r ⊙ h_{t-1}) share a product.
    first = cell.recurrent_inputs(caches[0])
    groups: dict[str, list[str]] = {}
    for g in cell.gates:
        groups.setdefault(next(j for j in cell.gates if first[j] is first[g]), []).append(g)
    per_step = [cell.recurrent_inputs(cache) for cache in caches]
    W_h = {}
    for j, members in groups.items():
        r = rows(np.stack([inputs_t[j] for inputs_t in per_step]))
        if len(members) == gates and not d_rec:
            d = d_all
        else:
            d = np.concatenate([rows(d_rec_per_gate[g]) for g in members], axis=1)
        for g, block in zip(members, np.split(r.T @ d, len(members), axis=1), strict=True):
            W_h[g] = block
    grads = {}
    for k, g in enumerate(cell.gates):
        grads[f"W_x{g}"], grads[f"W_h{g}"] = W_x[k], W_h[g]
        grads[f"b_{g}"] = None if getattr(p, f"b_{g}") is None else b[k]
    grads.update(cell.extra_grads(d_rec_per_gate))
    return grads, dx


def simple_rnn_bptt(
    d_output,
    x,
    params: SimpleRNNParams,
    *,
    activation="tanh",
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    initial_state=None,
    truncate: int | None = None,
) -> BPTTGrads:
    r"""BPTT through :func:`rnn_ref.simple_rnn.simple_rnn`: its vector–Jacobian product.

    Backwards over the processed steps, with :math:`\delta h_t` the total gradient on
    :math:`h_t` (the loss's own plus what step :math:`t + 1` sends back):

    .. math::

        \delta a_t = \delta h_t \odot (1 - h_t^2), \quad
        \delta h_{t-1} \mathrel{+}= \delta a_t W_{hh}^\top, \quad
        \frac{\partial L}{\partial x_t} = \delta a_t W_{xh}^\top, \\
        \frac{\partial L}{\partial W_{xh}} = \sum_t x_t^\top \delta a_t, \quad
        \frac{\partial L}{\partial W_{hh}} = \sum_t h_{t-1}^\top \delta a_t, \quad
        \frac{\partial L}{\partial b_h} = \sum_{t, n} (\delta a_t)_n

    Parameters
    ----------
    d_output : array_like or list
        The gradient of the loss on what the forward function returned, in the same structure:
        (N, T, H) with ``return_sequences`` (in the returned order, i.e. reversed in time with
        ``go_backwards``), else (N, H); with ``return_state`` a list of that followed by one
        (N, H) gradient per final state. ``None`` anywhere is a zero gradient.
    x : array_like, shape (N, T, D)
        The input sequence.
    params : SimpleRNNParams
        The layer's weights.
    activation : str or callable
        The forward's ``activation`` (``"tanh"``); one of :mod:`rnn_ref.activations`.
    return_sequences : bool
        Whether the forward returned every step's output.
    return_state : bool
        Whether the forward also returned the final states.
    go_backwards : bool
        Whether the forward processed the sequence from the last step to the first.
    initial_state : array_like (N, H) or list of one, optional
        The forward's initial state(s); zeros by default.
    truncate : int, optional
        Truncated BPTT: the gradient of each loss term flows back at most ``truncate`` steps
        (see :mod:`rnn_ref.bptt`); ``None`` (default) for full BPTT.

    Returns
    -------
    BPTTGrads
        ``(dx, d_initial_state, params)``: gradients with respect to ``x`` (N, T, D), the
        initial state(s) (``[dh_0]``) and the weights (a ``SimpleRNNParams``).
    """
    x = check_sequence(x)
    check_params(params, SimpleRNNParams, x.shape[2])
    return _bptt(
        SimpleRNNCell(params, activation),
        d_output,
        x,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        initial_state=initial_state,
        truncate=truncate,
    )


def lstm_bptt(
    d_output,
    x,
    params: LSTMParams,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    initial_state=None,
    truncate: int | None = None,
) -> BPTTGrads:
    r"""BPTT through :func:`rnn_ref.lstm.lstm`: its vector–Jacobian product.

    Backwards over the processed steps, each step is
    :func:`rnn_ref.lstm_backward.lstm_step_backward` with :math:`\partial L/\partial h_t =
    \delta h_t` (the loss's own gradient plus what step :math:`t + 1` sends back) and
    :math:`\partial L/\partial c_t = \delta c_{t+1} \odot g_{f, t+1}`, where
    :math:`\delta c_{t+1}` is the total gradient on :math:`c_{t+1}`, through
    :math:`h_{t+1}` too (at :math:`t = T`, the loss's gradient on :math:`c_T`); the weight
    gradients are summed over the steps, e.g.
    :math:`\partial L/\partial W_{xf} = \sum_t x_t^\top\, \partial L/\partial a_{f,t}`.

    Parameters
    ----------
    d_output : array_like or list
        The gradient of the loss on what the forward function returned, in the same structure:
        (N, T, H) with ``return_sequences`` (in the returned order, i.e. reversed in time with
        ``go_backwards``), else (N, H); with ``return_state`` a list of that followed by one
        (N, H) gradient per final state. ``None`` anywhere is a zero gradient.
    x : array_like, shape (N, T, D)
        The input sequence.
    params : LSTMParams
        The layer's weights.
    activation : str or callable
        The forward's ``activation`` (``"tanh"``); one of :mod:`rnn_ref.activations`.
    recurrent_activation : str or callable
        The forward's gate activation (``"sigmoid"``); one of :mod:`rnn_ref.activations`.
    return_sequences : bool
        Whether the forward returned every step's output.
    return_state : bool
        Whether the forward also returned the final states.
    go_backwards : bool
        Whether the forward processed the sequence from the last step to the first.
    initial_state : list of two array_like (N, H), optional
        The forward's initial state(s); zeros by default.
    truncate : int, optional
        Truncated BPTT: the gradient of each loss term flows back at most ``truncate`` steps
        (see :mod:`rnn_ref.bptt`); ``None`` (default) for full BPTT.

    Returns
    -------
    BPTTGrads
        ``(dx, d_initial_state, params)``: gradients with respect to ``x`` (N, T, D), the
        initial state(s) (``[dh_0, dc_0]``) and the weights (a ``LSTMParams``).
    """
    x = check_sequence(x)
    check_params(params, LSTMParams, x.shape[2])
    return _bptt(
        LSTMCell(params, activation, recurrent_activation),
        d_output,
        x,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        initial_state=initial_state,
        truncate=truncate,
    )


def gru_bptt(
    d_output,
    x,
    params: GRUParams,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    initial_state=None,
    truncate: int | None = None,
) -> BPTTGrads:
    r"""BPTT through :func:`rnn_ref.gru.gru`: its vector–Jacobian product.

    Backwards over the processed steps, each step is
    :func:`rnn_ref.gru_backward.gru_step_backward` (in the reset form and update convention of
    ``params``) with :math:`\partial L/\partial h_t = \delta h_t`, the loss's own gradient
    plus what step :math:`t + 1` sends back; the weight gradients are summed over the steps,
    e.g. :math:`\partial L/\partial W_{hh} = \sum_t (g_{r,t} \odot h_{t-1})^\top\,
    \partial L/\partial a_{h,t}` with the reset before the product.

    Parameters
    ----------
    d_output : array_like or list
        The gradient of the loss on what the forward function returned, in the same structure:
        (N, T, H) with ``return_sequences`` (in the returned order, i.e. reversed in time with
        ``go_backwards``), else (N, H); with ``return_state`` a list of that followed by one
        (N, H) gradient per final state. ``None`` anywhere is a zero gradient.
    x : array_like, shape (N, T, D)
        The input sequence.
    params : GRUParams
        The layer's weights.
    activation : str or callable
        The forward's ``activation`` (``"tanh"``); one of :mod:`rnn_ref.activations`.
    recurrent_activation : str or callable
        The forward's gate activation (``"sigmoid"``); one of :mod:`rnn_ref.activations`.
    return_sequences : bool
        Whether the forward returned every step's output.
    return_state : bool
        Whether the forward also returned the final states.
    go_backwards : bool
        Whether the forward processed the sequence from the last step to the first.
    initial_state : array_like (N, H) or list of one, optional
        The forward's initial state(s); zeros by default.
    truncate : int, optional
        Truncated BPTT: the gradient of each loss term flows back at most ``truncate`` steps
        (see :mod:`rnn_ref.bptt`); ``None`` (default) for full BPTT.

    Returns
    -------
    BPTTGrads
        ``(dx, d_initial_state, params)``: gradients with respect to ``x`` (N, T, D), the
        initial state(s) (``[dh_0]``) and the weights (a ``GRUParams``).
    """
    x = check_sequence(x)
    check_params(params, GRUParams, x.shape[2])
    return _bptt(
        GRUCell(params, activation, recurrent_activation),
        d_output,
        x,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        initial_state=initial_state,
        truncate=truncate,
    )


class BidirectionalGrads(NamedTuple):
    """Gradients of a loss through a bidirectional layer.

    ``dx`` (N, T, D); ``d_initial_state``, the forward layer's initial-state gradients followed
    by the backward layer's; ``forward`` and ``backward``, each direction's weight gradients (a
    params object). When both directions share their weights (``backward=None``), ``forward``
    is the sum of both directions' and ``backward`` is ``None``.
    """

    dx: np.ndarray
    d_initial_state: list[np.ndarray]
    forward: SimpleRNNParams | LSTMParams | GRUParams
    backward: SimpleRNNParams | LSTMParams | GRUParams | None


def _add_params(a, b):
    fields = {}
    for field in dataclasses.fields(a):
        value = getattr(a, field.name)
        if isinstance(value, np.ndarray):
            fields[field.name] = value + getattr(b, field.name)
    return dataclasses.replace(a, **fields)


def bidirectional_bptt(
    d_output,
    x,
    forward,
    backward=None,
    *,
    merge_mode="concat",
    initial_state=None,
    truncate: int | None = None,
) -> BidirectionalGrads:
    r"""BPTT through :func:`rnn_ref.bidirectional.bidirectional`: its vector–Jacobian product.

    The merge's VJP splits the gradient on :math:`y_t = \mathrm{merge}(\overrightarrow{h}_t,
    \overleftarrow{h}_t)` between the directions,

    .. math::

        \text{concat: } (\delta y_{t, :H}, \delta y_{t, H:}), \quad
        \text{sum: } (\delta y_t, \delta y_t), \quad
        \text{ave: } (\tfrac12 \delta y_t, \tfrac12 \delta y_t), \quad
        \text{mul: } (\delta y_t \odot \overleftarrow{h}_t, \delta y_t \odot
        \overrightarrow{h}_t),

    the backward direction's part is flipped back into its processing order, each direction
    runs its own BPTT (:func:`layer_bptt`), and :math:`\partial L/\partial x` is the sum of
    both directions'.

    Parameters
    ----------
    d_output : array_like or list
        The gradient of the loss on what the forward function returned, in the same
        structure: the merged output's gradient (a list of two with ``merge_mode=None``), then
        with ``return_state`` one (N, H) gradient per final state, the forward layer's then the
        backward layer's. ``None`` anywhere is a zero gradient.
    x : array_like, shape (N, T, D)
        The input sequence.
    forward : layer spec
        The forward direction (:class:`rnn_ref.layers.SimpleRNN`, ``LSTM`` or ``GRU``).
    backward : layer spec, optional
        The backward direction; by default ``forward`` with ``go_backwards`` flipped, sharing
        its weights.
    merge_mode : {"concat", "sum", "mul", "ave", None}
        As in the forward.
    initial_state : list of arrays, optional
        The forward layer's initial states followed by the backward layer's.
    truncate : int, optional
        Truncated BPTT in each direction (see :mod:`rnn_ref.bptt`); ``None`` for full BPTT.

    Returns
    -------
    BidirectionalGrads
        ``(dx, d_initial_state, forward, backward)``.
    """
    check_choice(merge_mode, "merge_mode", MERGE_MODES)
    shared = backward is None
    if shared:
        backward = dataclasses.replace(forward, go_backwards=not forward.go_backwards)
    Bidirectional(forward=forward, backward=backward, merge_mode=merge_mode)  # the pair's checks
    x = check_sequence(x)
    forward_state, backward_state = _split_initial_state(initial_state, forward, backward)
    n, t, _ = x.shape
    h = forward.params.hidden_size
    steps = (t,) if forward.return_sequences else ()
    merged_shape = (n, *steps, 2 * h if merge_mode == "concat" else h)
    dims = "(N, T, 2H)" if forward.return_sequences else "(N, 2H)"
    if merge_mode != "concat":
        dims = dims.replace("2H", "H")

    outputs = 2 if merge_mode is None else 1
    d_output = list(d_output) if forward.return_state else [d_output]
    if merge_mode is None and not forward.return_state:
        d_output = list(d_output[0]) if isinstance(d_output[0], list | tuple) else d_output
    n_forward, n_backward = len(forward.state_names), len(backward.state_names)
    if len(d_output) != outputs + (n_forward + n_backward) * forward.return_state:
        raise ValueError(
            f"d_output must have the structure of the layer's output: {outputs} output "
            f"gradient(s){' and then one per final state' if forward.return_state else ''}, "
            f"got {len(d_output)} entries"
        )
    d_states = d_output[outputs:]
    if merge_mode is None:
        per_direction = (n, *steps, h)
        d_y_forward = upstream(d_output[0], "d_output forward", per_direction, dims)
        d_y_backward = upstream(d_output[1], "d_output backward", per_direction, dims)
    else:
        d_y = upstream(d_output[0], "d_output", merged_shape, dims)
        if merge_mode == "concat":
            d_y_forward, d_y_backward = d_y[..., :h], d_y[..., h:]
        elif merge_mode == "sum":
            d_y_forward, d_y_backward = d_y, d_y
        elif merge_mode == "ave":
            d_y_forward, d_y_backward = d_y / 2.0, d_y / 2.0
        else:  # mul: each direction's gradient is scaled by the other's output
            y_forward = _output(forward(x, initial_state=forward_state))
            y_backward = _output(backward(x, initial_state=backward_state))
            if forward.return_sequences:
                y_backward = y_backward[:, ::-1]
            d_y_forward, d_y_backward = d_y * y_backward, d_y * y_forward
    if forward.return_sequences:
        d_y_backward = d_y_backward[:, ::-1]  # into the backward layer's processing order

    def direction(layer, d_y, d_layer_states, state):
        d_layer = [d_y, *d_layer_states] if layer.return_state else d_y
        return layer_bptt(layer, d_layer, x, initial_state=state, truncate=truncate)

    grads_forward = direction(forward, d_y_forward, d_states[:n_forward], forward_state)
    grads_backward = direction(backward, d_y_backward, d_states[n_forward:], backward_state)
    d_initial = [*grads_forward.d_initial_state, *grads_backward.d_initial_state]
    if shared:
        return BidirectionalGrads(
            grads_forward.dx + grads_backward.dx,
            d_initial,
            _add_params(grads_forward.params, grads_backward.params),
            None,
        )
    return BidirectionalGrads(
        grads_forward.dx + grads_backward.dx, d_initial, grads_forward.params, grads_backward.params
    )


def _output(result):
    return result[0] if isinstance(result, list) else result


def layer_bptt(layer, d_output, x, initial_state=None, truncate: int | None = None):
    """BPTT through a layer spec, with the layer's options.

    The layer's own function: :func:`simple_rnn_bptt`, :func:`lstm_bptt`, :func:`gru_bptt` or
    :func:`bidirectional_bptt`.

    Parameters
    ----------
    layer : SimpleRNN, LSTM, GRU or Bidirectional
        A layer spec of :mod:`rnn_ref.layers` or :mod:`rnn_ref.bidirectional`.
    d_output : array_like or list
        The gradient of the loss on what ``layer(x)`` returned, in the same structure.
    x : array_like, shape (N, T, D)
        The input sequence.
    initial_state : list of arrays, optional
        As for ``layer(x, initial_state)``.
    truncate : int, optional
        Truncated BPTT (see :mod:`rnn_ref.bptt`); ``None`` for full BPTT.

    Returns
    -------
    BPTTGrads or BidirectionalGrads
        :class:`BidirectionalGrads` for a ``Bidirectional`` spec, else :class:`BPTTGrads`.
    """
    if isinstance(layer, Bidirectional):
        return bidirectional_bptt(
            d_output,
            x,
            layer.forward,
            layer.backward,
            merge_mode=layer.merge_mode,
            initial_state=initial_state,
            truncate=truncate,
        )
    functions = {SimpleRNN: simple_rnn_bptt, LSTM: lstm_bptt, GRU: gru_bptt}
    function = functions.get(type(layer))
    if function is None:
        raise TypeError(
            "layer must be a SimpleRNN, LSTM, GRU or Bidirectional spec, "
            f"got {type(layer).__name__}"
        )
    options = {"activation": layer.activation}
    if not isinstance(layer, SimpleRNN):
        options["recurrent_activation"] = layer.recurrent_activation
    return function(
        d_output,
        x,
        layer.params,
        **options,
        return_sequences=layer.return_sequences,
        return_state=layer.return_state,
        go_backwards=layer.go_backwards,
        initial_state=initial_state,
        truncate=truncate,
    )


class StackGrads(NamedTuple):
    """Gradients of a loss through :func:`rnn_ref.layers.stack`.

    ``dx`` (N, T, D) with respect to the first layer's input, and ``layers``, one
    :class:`BPTTGrads` or :class:`BidirectionalGrads` per layer, in the stack's order.
    """

    dx: np.ndarray
    layers: list


def stack_bptt(d_output, x, layers: Sequence, truncate: int | None = None) -> StackGrads:
    r"""BPTT through :func:`rnn_ref.layers.stack`: its vector–Jacobian product.

    The chain rule through the layers: the gradient on layer :math:`l`'s input sequence is
    the gradient on layer :math:`l - 1`'s output sequence,
    :math:`\partial L/\partial h^{(l-1)}_{1..T} = \partial L/\partial x^{(l)}_{1..T}`, from the
    last layer down to the first.

    Parameters
    ----------
    d_output : array_like or list
        The gradient of the loss on the last layer's output, in its structure.
    x : array_like, shape (N, T, D)
        The stack's input.
    layers : sequence of layer specs
        As for :func:`rnn_ref.layers.stack`.
    truncate : int, optional
        Truncated BPTT in every layer (see :mod:`rnn_ref.bptt`); ``None`` for full BPTT.

    Returns
    -------
    StackGrads
        ``(dx, layers)``.
    """
    _check_stack(layers)
    inputs = [as_float_array(x, "x", ndim=3)]
    for layer in layers[:-1]:
        inputs.append(layer(inputs[-1]))
    grads = [None] * len(layers)
    d = d_output
    for position in range(len(layers) - 1, -1, -1):
        grads[position] = layer_bptt(layers[position], d, inputs[position], truncate=truncate)
        d = grads[position].dx
    return StackGrads(d, grads)
