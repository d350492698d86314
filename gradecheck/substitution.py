"""Correct earlier functions in place of the learner's, for one grade cell only.

A later function that calls the learner's earlier ones (a step calling the gates) is graded on
its own: while its grade cell runs, the notebook's names of the earlier functions are bound to
correct ones, so a wrong or unfinished gate costs that gate's points only. The substitution
ends with the grade cell that made it; otherwise a learner who moves the last grade cell above
the others would have every earlier function graded as the reference.

Under IPython (plain ``nbgrader autograde``) a one-shot ``post_run_cell`` callback puts the
learner's bindings back. The class-grading command runs grade cells in its own process with a
namespace whose ``update`` substitutes the functions in the kernel and which restores them
itself at the end of each grade cell; there this module only calls ``namespace.update``.

The correct functions are wrapped: when the learner's function calls one with arguments of the
wrong shape (a hard-coded initial state, a transposed slice), the error names the learner's
function and the argument that is wrong, never the correct function's own argument check.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence

import numpy as np


class WrongCall(Exception):
    """The learner's function called a substituted correct function with bad arguments."""


STEP = {"x_t": "ND", "h_prev": "NH"}
PARAMS = "params"

SIGNATURES: dict[str, dict[str, str]] = {
    # rnn, brnn
    "simple_rnn_step": {**STEP, "W_xh": "DH", "W_hh": "HH", "b_h": "H"},
    "simple_rnn_sequence": {"x": "NTD", "W_xh": "DH", "W_hh": "HH", "b_h": "H", "h0": "NH"},
    "rnn_go_backwards": {"x": "NTD", "W_xh": "DH", "W_hh": "HH", "b_h": "H"},
    "merge_outputs": {"y_forward": "", "y_backward": "", "merge_mode": ""},
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
    # gru
    "reset_gate": {**STEP, "W_xr": "DH", "W_hr": "HH", "b_r": "H"},
    "update_gate": {**STEP, "W_xz": "DH", "W_hz": "HH", "b_z": "H"},
    "candidate_state": {**STEP, "g_r": "NH", "W_xh": "DH", "W_hh": "HH", "b_h": "H"},
    "new_state": {"h_prev": "NH", "h_bar": "NH", "g_z": "NH"},
    "gru_step": {**STEP, PARAMS: ""},
    "gru_sequence": {"x": "NTD", PARAMS: "", "h0": "NH"},
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
}
"""The notebook's signature of each function that may be substituted: argument -> its dims."""

OPTIONAL = {"b", "h0", "c0"}
"""Arguments (by prefix) that may be None."""


def _bind(name: str, args: tuple, kwargs: dict) -> dict | None:
    """The call's arguments by the notebook's parameter names, or None if they do not fit."""
    names = list(SIGNATURES[name])
    if len(args) > len(names) or set(kwargs) - set(names):
        return None
    bound = dict(zip(names, args, strict=False))
    if set(kwargs) & set(bound):
        return None
    bound.update(kwargs)
    return bound


def _dims_of(bound: Mapping, signature: Mapping[str, str]) -> dict[str, object]:
    """Argument -> dims for every array the call passed, params fields included."""
    found = {}
    for arg, value in bound.items():
        if arg == PARAMS:
            for field in getattr(type(value), "_fields", ()):
                dims = "DH" if field.startswith("W_x") else "HH" if field.startswith("W_h") else "H"
                found[f"params.{field}"] = (getattr(value, field), dims)
        elif signature.get(arg):
            found[arg] = (value, signature[arg])
    return found


def _shape(value) -> tuple | None:
    try:
        return tuple(np.shape(value))
    except Exception:
        return None


def _problems(name: str, bound: Mapping) -> list[str]:
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


def _describe(name: str, args: tuple, kwargs: dict) -> str:
    bound = _bind(name, args, kwargs) if name in SIGNATURES else None
    if bound is None:
        count = len(args) + len(kwargs)
        return f"传了 {count} 个参数，与 {name} 的参数不符（wrong number or names of arguments）"
    problems = _problems(name, bound)
    if problems:
        return "；".join(problems)
    shapes = ", ".join(f"{arg} {_shape(value)}" for arg, value in bound.items() if arg != PARAMS)
    return f"参数的形状为 {shapes}"


def reworded(name: str, func: Callable, caller: str) -> Callable:
    """``func`` in place of the learner's ``name``; its errors blame the learner's ``caller``."""

    @functools.wraps(func)
    def correct(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception:
            detail = _describe(name, args, kwargs)
        raise WrongCall(
            f"你的 {caller} 调用 {name} 时传入的参数不对（{caller} called {name} with bad "
            f"arguments）：{detail}。"
        ) from None

    correct.__name__ = name
    correct.__qualname__ = name
    return correct


_MISSING = object()
_pending: dict[int, dict[str, object]] = {}
"""id(namespace) -> the learner's bindings to put back after the current cell."""


def _ipython_shell(namespace):
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


def _restore_after_cell(shell, namespace: dict, names) -> None:
    key = id(namespace)
    saved = _pending.get(key)
    if saved is None:
        saved = _pending[key] = {}

        def restore(*_):
            shell.events.unregister("post_run_cell", restore)
            for name, value in _pending.pop(key, {}).items():
                if value is _MISSING:
                    namespace.pop(name, None)
                else:
                    namespace[name] = value

        shell.events.register("post_run_cell", restore)
    for name in names:
        saved.setdefault(name, dict.get(namespace, name, _MISSING))


def use_correct_earlier_functions(
    namespace: dict | None, correct: Mapping[str, Callable], order: Sequence[str], current: str
) -> None:
    """Bind the functions defined before ``current`` to correct ones until the cell ends.

    ``namespace`` is the notebook's ``globals()`` (None: substitute nothing). The learner's
    functions have each been graded in their own cell; the visible checks after the hidden part
    of this grade cell still see the correct ones.
    """
    if namespace is None:
        return
    earlier = order[: order.index(current)]
    replacements = {
        name: reworded(name, correct[name], current) for name in earlier if name in correct
    }
    shell = _ipython_shell(namespace)
    if shell is not None:
        _restore_after_cell(shell, namespace, replacements)
    namespace.update(replacements)
