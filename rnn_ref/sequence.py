"""Running a step function over the time axis, with the options Keras's recurrent layers have.

This is what turns a cell into a layer: :func:`run_over_time` loops a step over
``x[:, t]`` (forwards, or backwards with ``go_backwards``) and returns what a Keras layer would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._checks import as_float_array, check_shape


def check_sequence(x) -> np.ndarray:
    """Convert an input sequence and check it is (N, T, D) with T >= 1.

    Parameters
    ----------
    x : array_like, shape (N, T, D)
        A layer's input.

    Returns
    -------
    ndarray, shape (N, T, D)
        ``x`` as float64.

    Raises
    ------
    ValueError
        For another number of dimensions, or no time step.
    """
    x = as_float_array(x, "x", ndim=3)
    if x.shape[1] == 0:
        raise ValueError(f"x must have at least one time step, got shape {x.shape}")
    return x


def initial_states(
    initial_state, batch_size: int, hidden_size: int, names: Sequence[str]
) -> list[np.ndarray]:
    """Return the states a layer starts from: zeros (N, H) each, or the given ones, checked.

    Parameters
    ----------
    initial_state : list of array_like (N, H), array_like (N, H) or None
        ``None`` for zeros, or one array per name in ``names``; a single array is accepted
        where one state is expected.
    batch_size, hidden_size : int
        N and H.
    names : sequence of str
        The states' names, as Keras orders them (``("h0",)`` for SimpleRNN and GRU,
        ``("h0", "c0")`` for LSTM); the error messages use them.

    Returns
    -------
    list of ndarray, each (N, H)
        One float64 array per name.

    Raises
    ------
    ValueError
        For the wrong number of states, or a state of the wrong shape.
    """
    if initial_state is None:
        return [np.zeros((batch_size, hidden_size)) for _ in names]
    if not isinstance(initial_state, list | tuple):
        initial_state = [initial_state]
    if len(initial_state) != len(names):
        raise ValueError(
            f"initial_state must be a list of {len(names)} array(s) {list(names)}, "
            f"got {len(initial_state)}"
        )
    states = []
    for name, state in zip(names, initial_state, strict=True):
        state = as_float_array(state, f"initial_state {name}", ndim=2)
        check_shape(state, f"initial_state {name}", (batch_size, hidden_size), "(N, H)")
        states.append(state)
    return states


def run_over_time(
    step: Callable[[list[np.ndarray], list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]],
    inputs: Sequence[np.ndarray],
    states: list[np.ndarray],
    *,
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
):
    """Apply ``step([a[t] for a in inputs], states) -> (output_t, states)`` at every step.

    Parameters
    ----------
    step : callable
        One step of the cell; each state is (N, H).
    inputs : list of ndarray, each time first
        What the steps read: step t gets ``[a[t] for a in inputs]``, e.g. a layer's
        precomputed input projections, one (T, N, H) array per gate.
    states : list of ndarray, each (N, H)
        The states before the first step processed.
    return_sequences : bool
        Return every step's output, shape (N, T, H), instead of the last one, (N, H).
    return_state : bool
        Also return the final states: ``[output, *states]``.
    go_backwards : bool
        Process the sequence from ``t = T-1`` down to ``0``. As in Keras, the returned sequence
        is then in processing order, i.e. reversed in time.

    Returns
    -------
    ndarray or list of ndarray
        ``output`` alone, or ``[output, *final_states]`` with ``return_state``.
    """
    length = len(inputs[0])
    time_steps = range(length - 1, -1, -1) if go_backwards else range(length)
    outputs = []
    for t in time_steps:
        output, states = step([a[t] for a in inputs], states)
        outputs.append(output)
    result = np.stack(outputs, axis=1) if return_sequences else outputs[-1]
    return [result, *states] if return_state else result
