"""Calling a learner's function and comparing its result with the reference, with clear messages.

Every hidden test goes through :func:`check_cases`: it calls the learner's function on seeded
cases with warnings and stderr captured (nbgrader scores a grade cell that writes to stderr 0, and
a correct naive sigmoid warns about overflow), converts the result to a float64 array, checks its
shape, then its values, and when the values are wrong, looks for a known mistake that explains
them.
"""

from __future__ import annotations

import contextlib
import io
import numbers
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np

from rnn_ref.keras_weights import KERAS_FLOAT32_TOLERANCE

from .substitution import WrongCall

FLOAT64_TOLERANCE = {"rtol": 1e-6, "atol": 1e-8}
"""Tolerance for float64 results: the learner's arithmetic may differ in order, not in meaning."""


class GradeFailure(AssertionError):
    """A check failed; the message is what the learner reads in the feedback."""


def fail(message: str) -> NoReturn:
    """Fail the check with ``message``, the only text the learner's feedback shows."""
    # "from None": the feedback shows only this message, never the checking code's context.
    raise GradeFailure(message) from None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep warnings and stderr writes of the learner's code out of the grade cell's output."""
    with (
        warnings.catch_warnings(),
        np.errstate(all="ignore"),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


@dataclass
class Case:
    """One call of the function under test: positional arguments and a label for messages."""

    args: tuple[Any, ...]
    label: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def fresh_args(self) -> tuple[Any, ...]:
        """Copies of the positional arguments, for one call."""
        # A learner may update arrays in place (h_prev *= ...); give each call its own copies.
        return tuple(_copy(a) for a in self.args)

    def fresh_kwargs(self) -> dict[str, Any]:
        """Copies of the keyword arguments, for one call."""
        return {k: _copy(v) for k, v in self.kwargs.items()}


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_copy(v) for v in value))
    if isinstance(value, list | tuple):
        return type(value)(_copy(v) for v in value)
    return value


FRAMEWORKS = ("tensorflow", "keras", "tf_keras", "torch", "jax")
"""Packages the grading kernel does not have (the class-grading sandbox cannot see them)."""


def frameworks_used(func: object, imported_during_call: Iterable[str] = frozenset()) -> list[str]:
    """The frameworks the learner's ``func`` computes with, as far as the kernel can tell.

    Under plain ``nbgrader autograde`` the checks run in the learner's kernel, where the
    instructor's environment may have TensorFlow. A function is not scored there when it refers
    to a framework's module or objects (by the names its code uses, nested functions included)
    or when calling it imported one: in the class-grading sandbox the import itself fails. In the
    class-grading command's grading process ``func`` is a handle with no code: nothing is found.
    """
    found = {name.split(".")[0] for name in imported_during_call} & set(FRAMEWORKS)
    code, scope = getattr(func, "__code__", None), getattr(func, "__globals__", None)
    if isinstance(code, types.CodeType) and isinstance(scope, dict):
        names: set[str] = set()
        stack = [code]
        while stack:
            current = stack.pop()
            names.update(current.co_names)
            stack.extend(k for k in current.co_consts if isinstance(k, types.CodeType))
        values = [dict.get(scope, n) for n in names]
        values += [cell.cell_contents for cell in (getattr(func, "__closure__", None) or ())]
        values += list(getattr(func, "__defaults__", None) or ())
        values += list((getattr(func, "__kwdefaults__", None) or {}).values())
        for value in values:
            module = value.__name__ if isinstance(value, types.ModuleType) else None
            module = module or getattr(type(value), "__module__", None)
            if isinstance(value, type | types.FunctionType | types.BuiltinFunctionType):
                module = getattr(value, "__module__", None)
            if isinstance(module, str) and module.split(".")[0] in FRAMEWORKS:
                found.add(module.split(".")[0])
    return sorted(found)


def call(name: str, func: object, case: Case) -> Any:
    """Call the learner's ``func`` on ``case``; turn any exception into a message naming it."""
    if not callable(func):
        fail(f"{name} 不是函数（is not a function）：得到 {type(func).__name__}。")
    _refuse_frameworks(name, frameworks_used(func))
    modules_before = set(sys.modules)
    try:
        with quiet():
            result = func(*case.fresh_args(), **case.fresh_kwargs())
    except WrongCall as error:
        fail(f"{name} 在 {case.label} 时出错：{error}")
    except NotImplementedError:
        fail(f"{name} 还没有实现（raise NotImplementedError）：请把 YOUR CODE HERE 换成你的代码。")
    except Exception as error:
        fail(f"{name} 在 {case.label} 时出错（raised）{type(error).__name__}: {error}")
    _refuse_frameworks(name, frameworks_used(None, set(sys.modules) - modules_before))
    return result


def _refuse_frameworks(name: str, frameworks: list[str]) -> None:
    if frameworks:
        fail(
            f"{name} 用到了 {', '.join(frameworks)}：评分内核里只有 NumPy、SciPy 和 Matplotlib"
            f"（the grading kernel has no {frameworks[0]}），请用 NumPy 实现。"
        )


def as_float_array(result: object, what: str) -> tuple[np.ndarray, Mapping[str, float]]:
    """The learner's result as a plain float64 array, and the tolerance its precision allows.

    Accepts NumPy arrays, numbers, nested lists and tensors (anything with ``__array__``), never
    objects whose conversion yields object, string or complex dtypes. The conversion drops
    ndarray subclasses, so no overridden comparison takes part in the check.
    """
    if result is None:
        fail(f"{what} 返回了 None：函数需要 return 结果（return the result）。")
    if isinstance(result, str | bytes | Mapping | set):
        fail(f"{what} 应该返回数组（an array），得到 {type(result).__name__}。")
    if not (
        isinstance(result, np.ndarray | numbers.Real | list | tuple) or hasattr(result, "__array__")
    ):
        fail(f"{what} 应该返回数组（an array），得到 {type(result).__name__}。")
    try:
        with quiet():
            array = np.asarray(result)
    except Exception as error:
        fail(f"{what} 的返回值无法转换成数组（could not be converted to an array）：{error}")
    if array.dtype.kind not in "fiub":
        fail(f"{what} 应该返回实数数组，得到 dtype {array.dtype} 的数组。")
    # A float32 result earns the tolerance of Keras's own float32 computation.
    float32 = array.dtype.kind == "f" and array.itemsize < 8
    precision = KERAS_FLOAT32_TOLERANCE if float32 else None
    return np.array(array, dtype=np.float64), precision or FLOAT64_TOLERANCE


Mistakes = Mapping[str, np.ndarray]
"""Known wrong answers for one case: what the mistake is (learner-facing) -> its result."""


def compare(
    what: str,
    result: object,
    expected: np.ndarray,
    case: Case,
    mistakes: Mistakes | Callable[[], Mistakes] | None = None,
    tolerance: Mapping[str, float] | None = None,
) -> None:
    """Fail unless ``result`` has ``expected``'s shape and values; name a known mistake if any.

    ``mistakes`` may be a function returning them, called only when the answer is wrong.
    """
    actual, precision = as_float_array(result, what)
    expected = np.asarray(expected, dtype=np.float64)
    tol = tolerance or precision
    if actual.shape != expected.shape:
        _name_mistake(what, actual, case, mistakes, tol)
        hint = ""
        if actual.shape == expected.shape[::-1] and actual.ndim == 2:
            hint = "（行列颠倒了？looks transposed）"
        fail(
            f"{what} 的形状不对（wrong shape）：{case.label} 时应为 {expected.shape}，"
            f"得到 {actual.shape}{hint}。"
        )
    if _close(actual, expected, tol):
        return
    _name_mistake(what, actual, case, mistakes, tol)
    error = np.nanmax(np.abs(actual - expected)) if not np.isnan(actual).all() else np.nan
    nan = "，结果含 NaN" if np.isnan(actual).any() else ""
    fail(
        f"{what} 的数值不对（wrong values）：{case.label} 时最大误差 {error:.3g}{nan}"
        f"（容差 tolerance rtol={tol['rtol']:g}, atol={tol['atol']:g}）。"
    )


def _name_mistake(
    what: str,
    actual: np.ndarray,
    case: Case,
    mistakes: Mistakes | Callable[[], Mistakes] | None,
    tol: Mapping[str, float],
) -> None:
    if callable(mistakes):  # computed only when an answer is wrong
        mistakes = mistakes()
    for mistake, wrong in (mistakes or {}).items():
        wrong = np.asarray(wrong, dtype=np.float64)
        if wrong.shape == actual.shape and _close(actual, wrong, tol):
            fail(f"{what} 不对（{case.label}）：看起来你{mistake}。")


def _close(actual: np.ndarray, expected: np.ndarray, tol: Mapping[str, float]) -> bool:
    return bool(np.allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"], equal_nan=False))


def check_cases(
    name: str,
    func: object,
    cases: Iterable[Case],
    reference: Callable[..., np.ndarray],
    mistakes: Callable[..., Mistakes] | None = None,
) -> None:
    """Check ``func`` against ``reference`` on every case; stop at the first failure."""
    for case in cases:
        expected = reference(*case.args, **case.kwargs)
        result = call(name, func, case)
        known = (lambda case=case: mistakes(*case.args, **case.kwargs)) if mistakes else None
        compare(name, result, expected, case, known)


def compare_with_keras(
    name: str, func: object, case: Case, expected: np.ndarray, mistakes: Callable[..., Mistakes]
) -> None:
    """Check ``func`` on the stored Keras case against what the Keras layer computed.

    Keras ran in float32, hence ``KERAS_FLOAT32_TOLERANCE``; ``mistakes`` gets the case's
    arguments as float64 arrays, and is called only when the answer is wrong.
    """
    compare(
        name,
        call(name, func, case),
        expected,
        case,
        lambda: mistakes(*(np.asarray(a, np.float64) for a in case.args)),
        tolerance=KERAS_FLOAT32_TOLERANCE,
    )


def expect_pair(what: str, result: object, names: tuple[str, str]) -> tuple[Any, ...] | list[Any]:
    """Unpack a function's two results (e.g. ``(h_t, c_t)``) or fail saying what was expected."""
    if not isinstance(result, tuple | list) or len(result) != 2:
        kind = type(result).__name__
        fail(f"{what} 应该返回两个数组 ({names[0]}, {names[1]})（a tuple of two），得到 {kind}。")
    return result
