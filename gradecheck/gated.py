"""The scaffold of the gated-cell assignments, ``lstm`` and ``gru``: what their checks share.

Both notebooks define a NamedTuple of per-gate weights, ``W_x<g>, W_h<g>, b_<g>`` gate after
gate in Keras's gate order (the layout's
:attr:`~rnn_ref.keras_weights.KerasLayout.block_names`, also the leading fields of
``rnn_ref``'s parameters); then the gates, a step and a run over a sequence on that NamedTuple;
last, a forward pass from a Keras layer's three weight arrays. A :class:`GatedCell` says what
differs between the two; this module builds from it the cases, the reference results and the
mistakes every such check has.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from rnn_ref.keras_weights import KerasLayout, reorder_gate_blocks

from . import cases as c
from . import mistakes as m
from .core import Case, check_cases, compare_with_keras
from .keras_reference import FILES, load

NotebookParams = Any
"""An instance of the notebook's NamedTuple, a class made at run time (:func:`params_tuple`)."""


def params_tuple(name: str, layout: KerasLayout) -> type[Any]:
    """The notebook's NamedTuple ``name`` of per-gate weights: fields ``layout.block_names``."""
    fields = [
        (f, np.ndarray if f.startswith("W") else np.ndarray | None) for f in layout.block_names
    ]
    params = NamedTuple(name, fields)  # type: ignore[misc]  # the name is the reference's
    params.__doc__ = (
        f"The notebook's {name}: W_x? (D, H), W_h? (H, H), b_? (H,) or None for each gate "
        f"? = {', '.join(layout.gates)}."
    )
    return params


@dataclass(frozen=True)
class GatedCell:
    """What differs between the gated-cell assignments."""

    assignment: str
    """The assignment (``"lstm"``), which also seeds the cases."""
    layout: KerasLayout
    """The gates of the notebook's parameters, in their order."""
    reference: type[Any]
    """``rnn_ref``'s parameters, whose name the notebook's NamedTuple has too."""
    reference_options: Mapping[str, object]
    """The conventions of the notebook's cell, as ``reference``'s fields."""
    layer: Callable[..., Any]
    """``rnn_ref``'s run over a sequence: ``layer(x, params, return_sequences=..., ...)``."""
    states: tuple[str, ...]
    """The names of the initial states, in the notebook's order (``h0`` first)."""
    keras_name: str
    """The Keras layer the last function reproduces."""
    keras_layout: KerasLayout
    """How that layer stores its weights."""
    params_from_keras: Callable[[list[np.ndarray]], Any]
    """``rnn_ref``'s reader of that layer's ``[kernel, recurrent_kernel, bias]``."""
    Params: type[Any] = field(init=False)
    """The notebook's NamedTuple (:func:`params_tuple`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "Params", params_tuple(self.reference.__name__, self.layout))

    def reference_params(self, params: NotebookParams) -> Any:
        """The notebook's parameters as ``rnn_ref``'s."""
        fields = {name: getattr(params, name) for name in self.layout.block_names}
        return self.reference(**fields, **self.reference_options)

    def random_params(
        self, rng: np.random.Generator, D: int, H: int, bias: bool = True
    ) -> NotebookParams:
        """Random notebook parameters for input size ``D`` and ``H`` units."""
        values: list[np.ndarray | None] = []
        for _ in self.layout.gates:
            values.extend(c.weights(rng, D, H, bias=bias))
        return self.Params(*values)

    def step_cases(self, name: str) -> list[Case]:
        """Cases ``(x_t, h_prev[, c_prev], params)``; the last has no biases."""
        rng = c.generator(f"{self.assignment}.{name}")
        cases = []
        for i, (N, D, H) in enumerate(c.STEP_SHAPES):
            x_t, h_prev = c.step_inputs(rng, N, D, H)
            states = [rng.normal(0.0, 1.0, (N, H)) for _ in self.states[1:]]
            params = self.random_params(rng, D, H, bias=i != 3)
            cases.append(Case((x_t, h_prev, *states, params), c.label(N=N, D=D, H=H)))
        return cases

    def sequence_cases(self, name: str) -> list[Case]:
        """Cases ``(x, params[, *initial states])``: a state ``h0`` in (-1, 1), others in R."""

        def initial_states(rng: np.random.Generator, N: int, H: int) -> dict[str, np.ndarray]:
            first, *others = self.states
            states = {first: c.initial_state(rng, N, H)}
            return states | {state: rng.normal(0.0, 1.0, (N, H)) for state in others}

        return c.sequence_cases(
            f"{self.assignment}.{name}",
            lambda rng, D, H, i: ((self.random_params(rng, D, H),), ""),
            initial_states,
        )

    def _initial_state(
        self, x: np.ndarray, params: NotebookParams, initial: tuple[np.ndarray | None, ...]
    ) -> list[np.ndarray] | None:
        """``initial`` as ``rnn_ref``'s ``initial_state``: zeros for a missing state."""
        if all(state is None for state in initial):
            return None
        H = np.shape(getattr(params, f"W_h{self.layout.gates[0]}"))[0]
        return [np.zeros((x.shape[0], H)) if state is None else state for state in initial]

    def reference_sequence(
        self, x: np.ndarray, params: NotebookParams, *initial: np.ndarray | None
    ) -> np.ndarray:
        """The notebook's ``<cell>_sequence(x, params, *initial states)``."""
        p = self.reference_params(params)
        initial_state = self._initial_state(x, params, initial)
        return self.layer(x, p, return_sequences=True, initial_state=initial_state)

    def sequence_mistakes(
        self, x: np.ndarray, params: NotebookParams, *initial: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """A run that returns only its last step or reads the sequence backwards."""
        return {
            m.LAST_STEP_ONLY: self.reference_sequence(x, params, *initial)[:, -1],
            m.RAN_BACKWARDS: self.layer(
                x,
                self.reference_params(params),
                return_sequences=True,
                go_backwards=True,
                initial_state=self._initial_state(x, params, initial),
            ),
        }

    def keras_forward(
        self,
        x: np.ndarray,
        kernel: np.ndarray,
        recurrent_kernel: np.ndarray,
        bias: np.ndarray,
        order: tuple[str, ...] | None = None,
    ) -> np.ndarray:
        """The Keras layer's output; with ``order``, when its gate blocks are read in that order."""
        weights = [kernel, recurrent_kernel, bias]
        if order is not None:
            weights = reorder_gate_blocks(weights, self.keras_layout, order)
        return self.layer(x, self.params_from_keras(weights), return_sequences=True)

    def gate_order_mistakes(
        self, x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The Keras layer's output with its gate blocks read in every other order."""
        gates = self.keras_layout.gates
        return {
            m.gate_order_wrong(order, gates): self.keras_forward(
                x, kernel, recurrent_kernel, bias, order
            )
            for order in itertools.permutations(gates)
            if order != gates
        }


def check_gate(
    cell: GatedCell,
    name: str,
    func: object,
    reference: Callable[..., np.ndarray],
    activation: str,
) -> None:
    """Check ``func(x_t, h_prev, W_x, W_h, b=None)`` against ``rnn_ref``'s ``reference``."""
    cases = c.gate_cases(f"{cell.assignment}.{name}")
    check_cases(name, func, cases, reference, m.gate_mistakes(reference, activation))


def check_sequence(
    cell: GatedCell,
    name: str,
    func: object,
    more_mistakes: Callable[..., dict[str, np.ndarray]] | None = None,
) -> None:
    """Check ``func(x, params, *initial states) -> (N, T, H)``.

    ``more_mistakes(x, params, *initial)`` adds the cell's own mistakes to those of any run.
    """

    def mistakes(
        x: np.ndarray, params: NotebookParams, *initial: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        found = cell.sequence_mistakes(x, params, *initial)
        if more_mistakes is not None:
            found.update(more_mistakes(x, params, *initial))
        if any(state is not None for state in initial):
            found[m.initial_states_ignored(cell.states)] = cell.reference_sequence(x, params)
        return found

    check_cases(name, func, cell.sequence_cases(name), cell.reference_sequence, mistakes)


def check_keras_forward(
    cell: GatedCell, name: str, func: object, mistakes: Callable[..., dict[str, np.ndarray]]
) -> None:
    """Check ``func(x, kernel, recurrent_kernel, bias) -> (N, T, H)``, the Keras layer's output.

    First against the outputs a real Keras layer computed (the assignment's reference file), then
    on fresh random weights against ``rnn_ref``, so returning the stored outputs does not pass.
    ``mistakes(x, kernel, recurrent_kernel, bias)`` gives the known wrong outputs.
    """
    stored = load(cell.assignment)
    args = (stored["x"], stored["kernel"], stored["recurrent_kernel"], stored["bias"])
    case = Case(args, f"{FILES[cell.assignment]} 中的 Keras {cell.keras_name}")
    compare_with_keras(name, func, case, stored["output"], mistakes)
    cases = c.keras_cases(f"{cell.assignment}.{name}", cell.keras_layout)
    check_cases(name, func, cases, cell.keras_forward, mistakes)
