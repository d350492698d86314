"""Correct functions in place of the learner's other ones, for one grade cell only.

Each graded function is scored alone: while its grade cell runs, the notebook's names of every
*other* graded function are bound to correct ones, so a wrong or unfinished gate costs that
gate's points only, whether a later function calls it (a step calling the gates) or another gate
reuses it. The substitution ends with the grade cell that made it; otherwise a learner who moves
the last grade cell above the others would have every function graded as the reference.

Under IPython (plain ``nbgrader autograde``) a one-shot ``post_run_cell`` callback puts the
learner's bindings back. The class-grading command runs grade cells in its own process with a
namespace whose ``update`` substitutes the functions in the kernel and which restores them
itself at the end of each grade cell; there this module only calls ``namespace.update``.

The correct functions are wrapped: each takes exactly the arguments the learner's own function
takes (a learner who calls an earlier function by keyword, with the names of their own
signature, is served), and when the learner's function calls one with arguments that signature
refuses, or arrays of the wrong shape (a hard-coded initial state, a transposed slice), the
error names the learner's function and what is wrong, never the correct function's own check.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np


class WrongCall(Exception):
    """The learner's function called a substituted correct function with bad arguments."""


STEP = {"x_t": "ND", "h_prev": "NH"}
PARAMS = "params"
KERAS_FORWARD = {"x": "NTD", "kernel": "", "recurrent_kernel": "", "bias": ""}

SIGNATURES: dict[str, dict[str, str]] = {
    # rnn, brnn
    "simple_rnn_step": {**STEP, "W_xh": "DH", "W_hh": "HH", "b_h": "H"},
    "simple_rnn_sequence": {"x": "NTD", "W_xh": "DH", "W_hh": "HH", "b_h": "H", "h0": "NH"},
    "rnn_go_backwards": {"x": "NTD", "W_xh": "DH", "W_hh": "HH", "b_h": "H"},
    "merge_outputs": {"y_forward": "", "y_backward": "", "merge_mode": ""},
    "bidirectional_rnn": {
        "x": "NTD",
        "forward_weights": "",
        "backward_weights": "",
        "merge_mode": "",
    },
    # lstm
    "forget_gate": {**STEP, "W_xf": "DH", "W_hf": "HH", "b_f": "H"},
    "input_gate": {**STEP, "W_xi": "DH", "W_hi": "HH", "b_i": "H"},
    "candidate_cell_state": {**STEP, "W_xc": "DH", "W_hc": "HH", "b_c": "H"},
    "output_gate": {**STEP, "W_xo": "DH", "W_ho": "HH", "b_o": "H"},
    "cell_state_update": {"c_prev": "NH", "g_f": "NH", "g_i": "NH", "c_bar": "NH"},
    "hidden_output": {"g_o": "NH", "c_t": "NH"},
    "lstm_step": {**STEP, "c_prev": "NH", PARAMS: ""},
    "lstm_sequence": {"x": "NTD", PARAMS: "", "h0": "NH", "c0": "NH"},
    "split_keras_lstm_weights": {"kernel": "", "recurrent_kernel": "", "bias": ""},
    "keras_lstm_forward": KERAS_FORWARD,
    # gru
    "reset_gate": {**STEP, "W_xr": "DH", "W_hr": "HH", "b_r": "H"},
    "update_gate": {**STEP, "W_xz": "DH", "W_hz": "HH", "b_z": "H"},
    "candidate_state": {**STEP, "g_r": "NH", "W_xh": "DH", "W_hh": "HH", "b_h": "H"},
    "new_state": {"h_prev": "NH", "h_bar": "NH", "g_z": "NH"},
    "gru_step": {**STEP, PARAMS: ""},
    "gru_sequence": {"x": "NTD", PARAMS: "", "h0": "NH"},
    "keras_gru_forward": KERAS_FORWARD,
    "candidate_state_reset_after": {
        **STEP,
        "g_r": "NH",
        "W_xh": "DH",
        "W_hh": "HH",
        "b_h": "H",
        "b_hh": "H",
    },
    # bptt
    "simple_rnn_step_backward": {"dh_t": "NH", **STEP, "h_t": "NH", "W_xh": "DH", "W_hh": "HH"},
    "simple_rnn_bptt": {
        "dh_seq": "NTH",
        "x": "NTD",
        "h0": "NH",
        "h_seq": "NTH",
        "W_xh": "DH",
        "W_hh": "HH",
    },
    **{
        f"{gate}_backward": {f"d{g}": "NH", **STEP, g: "NH", f"W_x{k}": "DH", f"W_h{k}": "HH"}
        for gate, g, k in (
            ("forget_gate", "g_f", "f"),
            ("input_gate", "g_i", "i"),
            ("candidate_cell_state", "c_bar", "c"),
            ("output_gate", "g_o", "o"),
        )
    },
    "hidden_output_backward": {"dh_t": "NH", "g_o": "NH", "c_t": "NH"},
    "cell_state_update_backward": {
        "dc_t": "NH",
        "c_prev": "NH",
        "g_f": "NH",
        "g_i": "NH",
        "c_bar": "NH",
    },
    "lstm_step_backward": {"dh_t": "NH", "dc_t": "NH", **STEP, "c_prev": "NH", PARAMS: ""},
    "gru_step_backward": {"dh_t": "NH", **STEP, PARAMS: ""},
}
"""The notebook's parameters of each graded function, in order: argument -> its dims."""

DEFAULTS: dict[str, dict[str, object]] = {
    "simple_rnn_step": {"b_h": None},
    "simple_rnn_sequence": {"b_h": None, "h0": None},
    "rnn_go_backwards": {"b_h": None},
    "bidirectional_rnn": {"merge_mode": "concat"},
    **{
        gate: {f"b_{k}": None}
        for gate, k in (
            ("forget_gate", "f"),
            ("input_gate", "i"),
            ("candidate_cell_state", "c"),
            ("output_gate", "o"),
            ("reset_gate", "r"),
            ("update_gate", "z"),
        )
    },
    "lstm_sequence": {"h0": None, "c0": None},
    "candidate_state": {"b_h": None},
    "gru_sequence": {"h0": None},
    "candidate_state_reset_after": {"b_h": None, "b_hh": None},
}
"""The notebook's default values (every parameter not named here has none)."""

OPTIONAL = {"b", "h0", "c0"}
"""Arguments (by prefix) that may be None."""


def _dims_of(
    bound: Mapping[str, object], signature: Mapping[str, str]
) -> dict[str, tuple[object, str]]:
    """Argument -> (value, dims) for every array the call passed, params fields included."""
    found = {}
    for arg, value in bound.items():
        if arg == PARAMS:
            for field in getattr(type(value), "_fields", ()):
                dims = "DH" if field.startswith("W_x") else "HH" if field.startswith("W_h") else "H"
                found[f"params.{field}"] = (getattr(value, field), dims)
        elif signature.get(arg):
            found[arg] = (value, signature[arg])
    return found


def _shape(value: Any) -> tuple[int, ...] | None:
    try:
        return tuple(np.shape(value))
    except Exception:
        return None


def _problems(name: str, bound: Mapping[str, object]) -> list[str]:
    """What is wrong with the arguments: sizes fixed by the weights, the rest must agree."""
    signature = SIGNATURES[name]
    arrays = _dims_of(bound, signature)
    problems = []
    for arg, (value, _) in arrays.items():
        if value is None and not any(arg.split(".")[-1].startswith(p) for p in OPTIONAL):
            problems.append(f"{arg} 是 None")
    if PARAMS in bound and not hasattr(type(bound[PARAMS]), "_fields"):
        problems.append(f"params 应该是参数的 NamedTuple，得到 {type(bound[PARAMS]).__name__}")
    sizes: dict[str, int] = {}
    # The weights come from the grading case: they fix D and H; N and T come from the inputs.
    weights_first = sorted(arrays, key=lambda a: not a.split(".")[-1].startswith(("W", "b")))
    for arg in weights_first:
        value, dims = arrays[arg]
        shape = _shape(value)
        if value is None or shape is None or len(shape) != len(dims):
            continue
        for dim, size in zip(dims, shape, strict=True):
            sizes.setdefault(dim, size)
    for arg, (value, dims) in arrays.items():
        shape = _shape(value)
        if value is None:
            continue
        wanted = tuple(sizes.get(d, "?") for d in dims)
        if shape is None or shape != wanted:
            named = ", ".join(dims)
            problems.append(f"{arg} 的形状是 {shape}，应为 ({named}) = {wanted}")
    return problems


def notebook_signature(name: str) -> inspect.Signature:
    """The notebook's own signature of ``name``: its parameters and their defaults."""
    defaults = DEFAULTS.get(name, {})
    return inspect.Signature(
        [
            inspect.Parameter(
                arg,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=defaults.get(arg, inspect.Parameter.empty),
            )
            for arg in SIGNATURES[name]
        ]
    )


def learner_signature(function: object) -> inspect.Signature | None:
    """What the learner's own ``function`` accepts, or None if it cannot be told.

    For a function that lives in a sandboxed kernel, the class-grading command's namespace sets
    the stand-in's signature from the kernel's answer when it installs the stand-in.
    """
    if not callable(function) or isinstance(function, type):
        return None  # a class bound to the name: not a function whose arguments count
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _in_notebook_order(
    name: str, accepts: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by the notebook's parameter names, as the learner's function reads them.

    TypeError (with the reason) when that function would refuse the call.
    """
    notebook = notebook_signature(name)
    bound = accepts.bind(*args, **kwargs)
    if any(p.kind in _VARIADIC for p in accepts.parameters.values()):
        # ``def f(*args, **kwargs)``: the learner's function passes the call on as it is.
        by_notebook = notebook.bind(*args, **kwargs)
        by_notebook.apply_defaults()
        return dict(by_notebook.arguments)
    passed = set(bound.arguments)
    bound.apply_defaults()
    own = list(accepts.parameters)
    if set(own) == set(notebook.parameters):
        values = dict(bound.arguments)  # the notebook's names, in whatever order
    else:
        # Renamed parameters: the n-th parameter of the learner's is the notebook's n-th. A
        # parameter the learner added stays out while the call leaves it at its default.
        kept = [arg for i, arg in enumerate(own) if i < len(notebook.parameters) or arg in passed]
        if len(kept) > len(notebook.parameters):
            extra = ", ".join(kept[len(notebook.parameters) :])
            raise TypeError(f"{name} of the notebook takes no parameter like {extra}")
        values = dict(zip(notebook.parameters, (bound.arguments[a] for a in kept), strict=False))
    by_notebook = notebook.bind(**values)
    by_notebook.apply_defaults()
    return dict(by_notebook.arguments)


def _describe(name: str, bound: Mapping[str, object]) -> str:
    problems = _problems(name, bound)
    if problems:
        return "；".join(problems)
    shapes = ", ".join(f"{arg} {_shape(value)}" for arg, value in bound.items() if arg != PARAMS)
    return f"参数的形状为 {shapes}"


def stand_in(
    name: str, func: Callable[..., Any], caller: str, accepts: inspect.Signature | None = None
) -> Callable[..., Any]:
    """``func`` in place of the learner's ``name``, called the way the learner's own is.

    ``accepts`` is the signature of the learner's own ``name`` (None: the notebook's): the
    stand-in takes exactly those arguments (names, defaults, keyword-only or not) and hands
    ``func`` the same values in the notebook's order. A call that the learner's own function
    would refuse, or whose arrays ``func`` refuses, is blamed on the learner's ``caller``. The
    stand-in's ``__signature__`` is read at each call: a namespace that learns the learner's
    signature only when it installs the stand-in (the class-grading command's) sets it then.
    """

    def correct(*args: Any, **kwargs: Any) -> Any:
        # Read at each call: the class-grading namespace may set it after this returns.
        accepts: inspect.Signature = correct.__signature__  # type: ignore[attr-defined]
        try:
            bound = _in_notebook_order(name, accepts, args, kwargs)
        except TypeError as error:
            raise WrongCall(
                f"你的 {caller} 调用 {name} 时，参数与 {name}{accepts} 不符（{caller} called "
                f"{name} with arguments it does not accept: {error}）。"
            ) from None
        try:
            return func(*bound.values())
        except Exception:
            detail = _describe(name, bound)
        raise WrongCall(
            f"你的 {caller} 调用 {name} 时传入的参数不对（{caller} called {name} with bad "
            f"arguments）：{detail}。"
        ) from None

    correct.__name__ = correct.__qualname__ = name
    correct.__doc__ = func.__doc__
    correct.__signature__ = accepts or notebook_signature(name)  # type: ignore[attr-defined]
    return correct


_MISSING = object()
_pending: dict[int, dict[str, object]] = {}
"""id(namespace) -> the learner's bindings to put back after the current cell."""


def _ipython_shell(namespace: object) -> Any:
    """The IPython shell whose user namespace is ``namespace``, if there is one."""
    if not isinstance(namespace, dict):
        return None
    builtins = dict.get(namespace, "__builtins__")
    get_ipython = (
        builtins.get("get_ipython")
        if isinstance(builtins, dict)
        else getattr(builtins, "get_ipython", None)
    )
    if get_ipython is None and "IPython" in sys.modules:
        get_ipython = getattr(sys.modules["IPython"], "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    if shell is None or getattr(shell, "user_ns", None) is not namespace:
        return None
    return shell


def _restore_after_cell(shell: Any, namespace: dict[str, object], names: Iterable[str]) -> None:
    key = id(namespace)
    saved = _pending.get(key)
    if saved is None:
        saved = _pending[key] = {}

        def restore(*_: object) -> None:
            shell.events.unregister("post_run_cell", restore)
            for name, value in _pending.pop(key, {}).items():
                if value is _MISSING:
                    namespace.pop(name, None)
                else:
                    namespace[name] = value

        shell.events.register("post_run_cell", restore)
    for name in names:
        saved.setdefault(name, dict.get(namespace, name, _MISSING))


def use_correct_functions(
    namespace: dict[str, object] | None, correct: Mapping[str, Callable[..., Any]], current: str
) -> None:
    """Bind every graded function but ``current`` to a correct one until the grade cell ends.

    ``namespace`` is the notebook's ``globals()`` (None: substitute nothing); ``correct`` holds a
    correct version of every graded function of the notebook. So ``current`` is scored alone:
    whatever it calls of the notebook's graded functions (an earlier gate, a later one, a gate it
    reuses) is correct while it is checked, and called with the learner's own signature. The
    visible checks after the hidden part of the grade cell see the correct ones too.
    """
    if namespace is None:
        return
    replacements = {}
    for name, function in correct.items():
        if name == current:
            continue
        # The namespace's own binding, never a lookup elsewhere (in the class-grading command
        # the learner's functions live in the kernel, which reports their signatures itself).
        own = dict.get(namespace, name)
        replacements[name] = stand_in(name, function, current, learner_signature(own))
    shell = _ipython_shell(namespace)
    if shell is not None:
        _restore_after_cell(shell, namespace, replacements)
    namespace.update(replacements)


def scored_alone(
    correct: Callable[[], Mapping[str, Callable[..., Any]]], graded: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate the check of the graded function ``graded`` (default: the check's own name).

    The decorated check takes the notebook's ``globals()`` as its second argument (None:
    substitute nothing) and runs with every other graded function of ``correct()`` in place.
    """

    def decorate(check: Callable[..., Any]) -> Callable[..., Any]:
        name = graded or check.__name__

        @functools.wraps(check)
        def checked(
            func: object, namespace: dict[str, object] | None, *args: Any, **kwargs: Any
        ) -> Any:
            use_correct_functions(namespace, correct(), name)
            return check(func, *args, **kwargs)

        return checked

    return decorate
