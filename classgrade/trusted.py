"""The grader-side half of split execution: grade cells run here, not in the learner's kernel.

A grade cell's code (restored from the gradebook by nbgrader's OverwriteCells) is executed in
the grading process, in a namespace where every name it does not define itself is looked up
in the learner's kernel: functions come back as proxies that call into the kernel, data comes
back as plain numbers and arrays. So the learner cannot patch the test's functions
(``np.testing``, ``np.allclose``), cannot rewrite the test with IPython hooks, cannot return an
object that compares equal to anything, cannot read the hidden test, and noise the learner's
code writes to stderr does not land in the grade cell.

What the kernel sends is decoded to plain data only (numbers, strings, numeric arrays, and
lists, tuples and dicts of them, plus opaque handles to its own functions): never an import, an
unpickle, an eval or a lookup of a name the kernel chose.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import inspect
import io
import itertools
import keyword
import socket
import time
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from . import channel, codec
from .grade_outcome import KERNEL_DIED, OUT_OF_TIME, clean_name, clean_text, timings

MAX_TEXT_OUTPUT = 20_000
_POLL_SECONDS = 0.25
_INTERRUPT_GRACE = 5.0
_NEVER_FROM_KERNEL = frozenset({"get_ipython", "In", "Out", "exit", "quit", "display"})
"""Names a grade cell never takes from the kernel, even when the grader has no such name."""


class LearnerError(Exception):
    """The learner's function raised an exception that is not one of Python's own."""


class KernelUnavailable(BaseException):
    """The learner's kernel died, stopped answering or broke the channel's rules.

    A BaseException, so that a test's ``except Exception`` cannot turn the end of the kernel
    into an ordinary failed check: the notebook as a whole has failed.
    """


class NotTransferable(TypeError):
    """The learner's code produced something that is not plain data."""


_BUILTIN_ERRORS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception) and not name.startswith("_")
}


@functools.lru_cache(maxsize=256)
def _learner_error_class(name: str) -> type[Exception]:
    """An exception class named like the learner's own (a plain subclass, no lookup)."""
    if name in _BUILTIN_ERRORS:
        return _BUILTIN_ERRORS[name]
    if not name.isidentifier() or len(name) > codec.MAX_IDENTIFIER_CHARS:
        name = "LearnerError"
    return type(name, (LearnerError,), {})


class KernelLink(Protocol):
    """What the channel needs from the executor that owns the kernel client."""

    def announce(self, request_id: int) -> None:
        """Ask the kernel (shell message) to read request ``request_id`` from the socket."""

    def alive(self) -> bool:
        """Whether the kernel is still running."""

    def interrupt(self) -> None:
        """Interrupt the kernel."""


class LearnerFunction:
    """Stands for a callable that lives in the learner's kernel."""

    def __init__(self, channel: KernelChannel, handle: int, name: str):
        self.channel = channel
        self.handle = handle
        self.__name__ = name or "learner_function"
        self.__qualname__ = self.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The result of the function called in the learner's kernel."""
        return self.channel.call(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<learner function {self.__name__}>"


# Checks that name the type of what they got ("得到 function") read as they would if the
# learner's function had been called in one process: the proxy is named as what it stands for.
LearnerFunction.__name__ = LearnerFunction.__qualname__ = "function"


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Arguments for the kernel: plain data, handles of its own functions, library functions."""
    return codec.encode_value(obj, arrays, _encode_other)


def _encode_other(obj: Any, arrays: dict[str, np.ndarray], depth: int) -> Any:
    if isinstance(obj, LearnerFunction):
        return {"__handle__": obj.handle}
    # The grader's own subclasses of plain types (an OrderedDict, a NumPy complex) go as plain.
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, complex):
        return {"__complex__": [obj.real, obj.imag]}
    if isinstance(obj, tuple | list):
        plain = tuple(obj) if isinstance(obj, tuple) else list(obj)
        return codec.encode_value(plain, arrays, _encode_other, depth)
    if isinstance(obj, dict):
        entries = {str(k): v for k, v in obj.items()}
        return codec.encode_value(entries, arrays, _encode_other, depth)
    if callable(obj) and getattr(obj, "__module__", None) and getattr(obj, "__name__", None):
        # A library function (np.tanh): the kernel imports the same one itself.
        module = obj.__module__
        if module == "numpy.core" or module.startswith("numpy"):
            module = "numpy"
        return {"__import__": module, "attr": obj.__name__}
    arr = np.asarray(obj)
    if arr.dtype.kind not in codec.NUMERIC_KINDS:
        raise TypeError(f"cannot pass a {type(obj).__name__} to the learner's code")
    return codec.array_reference(arr, arrays, scalar=not isinstance(obj, np.ndarray))


class KernelChannel:
    """Requests to the learner's kernel and their answers, as frames on the sandbox's socket.

    Every read has a deadline: the call's own (``timeout``) and the notebook's (``deadline``,
    a ``time.monotonic()`` value). Calls the kernel makes back to substituted functions while
    a request is served are answered here, inside the same deadline.
    """

    def __init__(
        self,
        sock: socket.socket,
        link: KernelLink,
        timeout: float,
        deadline: float = float("inf"),
    ):
        self.sock = sock
        self.link = link
        self.timeout = timeout
        self.deadline = deadline
        self._ids = itertools.count(1)
        self.callbacks: dict[int, Callable] = {}
        self._callback_errors: list[Exception] = []

    def _request(self, payload: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
        with timings.adding("channel_requests"):  # benchmark only: the kernel's share
            return self._request_untimed(payload, arrays)

    def _request_untimed(self, payload: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
        now = time.monotonic()
        if now >= self.deadline:
            raise KernelUnavailable(OUT_OF_TIME)
        request_id = next(self._ids)
        call_deadline = min(now + self.timeout, self.deadline)
        try:
            codec.send_frame(self.sock, {**payload, "id": request_id}, arrays, call_deadline)
        except (codec.FrameError, OSError) as exc:  # OSError: the kernel's end is closed
            raise KernelUnavailable(
                f"the kernel did not take the grader's request ({exc})"
            ) from None
        self.link.announce(request_id)
        interrupted = False
        while True:
            frame = self._next_frame(call_deadline)
            if frame is None:
                if interrupted:
                    raise KernelUnavailable(
                        f"the kernel did not answer within {self.timeout:.0f} s and ignored "
                        "an interrupt"
                    )
                if call_deadline >= self.deadline:
                    raise KernelUnavailable(OUT_OF_TIME)
                self.link.interrupt()
                interrupted = True
                call_deadline = time.monotonic() + _INTERRUPT_GRACE
                continue
            header, frame_arrays = frame
            if header.get("id") != request_id:
                continue  # left over from an earlier, abandoned request
            kind = header.get("kind")
            if kind == channel.KIND_CALLBACK:
                self._answer_callback(header, frame_arrays, call_deadline)
            elif kind == channel.KIND_FINAL:
                if interrupted and header.get("status") == channel.STATUS_INTERRUPTED:
                    raise LearnerError(f"the function did not return within {self.timeout:.0f} s")
                if not isinstance(header.get("status"), str):
                    raise KernelUnavailable("the kernel sent an answer without a status")
                return header, frame_arrays
            else:
                raise KernelUnavailable("the kernel sent a message of an unknown kind")

    def _next_frame(self, deadline: float) -> tuple[dict, dict] | None:
        """The next frame, or None when ``deadline`` passes; the kernel's death is noticed."""
        import select

        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.sock], [], [], min(remaining, _POLL_SECONDS))
            if readable:
                break
            if not self.link.alive():
                raise KernelUnavailable(KERNEL_DIED)
        try:
            return codec.recv_frame(self.sock, time.monotonic() + codec.FRAME_SECONDS)
        except codec.FrameError as exc:
            # A kernel that dies closes the channel an instant before its process is reaped.
            settle = time.monotonic() + 2.0
            while time.monotonic() < settle:
                if not self.link.alive():
                    raise KernelUnavailable(KERNEL_DIED) from None
                time.sleep(0.05)
            raise KernelUnavailable(f"the kernel broke the grading channel: {exc}") from None

    def _answer_callback(self, header: dict, arrays: dict, deadline: float) -> None:
        out: dict[str, np.ndarray] = {}
        try:
            function = self.callbacks[int(header["callback"])]
            args = self._decode(header["args"], arrays)
            kwargs = self._decode(header["kwargs"], arrays)
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise NotTransferable("a call with malformed arguments")
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                value = function(*args, **kwargs)
            answer = {"status": channel.STATUS_OK, "value": _encode(value, out)}
        except KernelUnavailable:
            raise
        except Exception as exc:
            self._callback_errors.append(exc)
            out = {}
            answer = {
                "status": channel.STATUS_RAISED,
                "ename": type(exc).__name__,
                "evalue": clean_text(exc, codec.MAX_MESSAGE_CHARS),
            }
        try:
            codec.send_frame(self.sock, {**answer, "kind": channel.KIND_ANSWER}, out, deadline)
        except (codec.FrameError, OSError) as exc:
            raise KernelUnavailable(
                f"the kernel did not take the grader's answer ({exc})"
            ) from None

    def substitute(self, functions: dict[str, Callable]) -> dict[str, inspect.Signature | None]:
        """Bind each name in the kernel to its function, which runs here when called there.

        The hidden tests replace the learner's other graded functions by correct ones while one
        is checked (so one wrong gate costs that gate's points only); the namespace restores the
        learner's own at the end of the grade cell. One request for all of them; the answer
        tells what each learner's function accepted (None: unknown or not a function).
        """
        callbacks = {}
        for name, function in functions.items():
            callback = len(self.callbacks) + 1
            self.callbacks[callback] = function
            callbacks[name] = callback
        payload, arrays = self._request({"op": channel.OP_SUBSTITUTE, "callbacks": callbacks}, {})
        self._expect_ok(payload)
        described = payload.get("signatures")
        if not isinstance(described, dict):
            return dict.fromkeys(functions)
        return {name: learner_signature(described.get(name), arrays) for name in functions}

    def restore(self, names: list[str]) -> None:
        """Put the learner's own ``names`` back in the kernel's namespace."""
        payload, _ = self._request({"op": channel.OP_RESTORE, "names": list(names)}, {})
        self._expect_ok(payload)

    def _expect_ok(self, payload: dict) -> None:
        if payload.get("status") != channel.STATUS_OK:
            raise KernelUnavailable(
                f"the kernel refused the grader's request ({clean_text(payload.get('status'))})"
            )

    def fetch(self, name: str) -> tuple[bool, Any]:
        """Whether the kernel has ``name``, and its value."""
        payload, arrays = self._request({"op": channel.OP_FETCH, "name": name}, {})
        status = payload["status"]
        if status == channel.STATUS_MISSING:
            return False, None
        if status == channel.STATUS_UNENCODABLE:
            raise NotTransferable(
                f"`{name}` in the notebook is {clean_text(payload.get('what'), 200)}, "
                "not a function or plain data"
            )
        if status != channel.STATUS_OK:
            raise KernelUnavailable(f"unexpected answer from the kernel: {clean_text(status)}")
        return True, self._decode(payload.get("value"), arrays)

    def call(self, function: LearnerFunction, args: tuple, kwargs: dict) -> Any:
        """The result of ``function`` called in the kernel with ``args`` and ``kwargs``."""
        arrays: dict[str, np.ndarray] = {}
        request = {
            "op": channel.OP_CALL,
            "handle": function.handle,
            "args": _encode(list(args), arrays),
            "kwargs": _encode(kwargs, arrays),
        }
        self._callback_errors.clear()
        payload, out = self._request(request, arrays)
        status = payload["status"]
        name = function.__name__
        from_grader = payload.get("from_grader") is True
        if status == channel.STATUS_RAISED and from_grader and self._callback_errors:
            # The learner's function let the grader's own error through: raise that one, as
            # it would have been raised had everything run in one process.
            raise self._callback_errors[-1]
        if status == channel.STATUS_OK:
            return self._decode(payload.get("value"), out)
        if status == channel.STATUS_RAISED:
            ename = clean_name(payload.get("ename", "Exception"))
            evalue = clean_text(payload.get("evalue", ""), codec.MAX_MESSAGE_CHARS)
            raise _learner_error_class(ename)(evalue)
        if status == channel.STATUS_UNENCODABLE:
            raise NotTransferable(
                f"{name} returned {clean_text(payload.get('what'), 200)}; expected an array "
                "or a number (or a tuple of them)"
            )
        if status == channel.STATUS_INTERRUPTED:
            raise LearnerError(f"{name} was interrupted")
        raise KernelUnavailable(f"unexpected answer from the kernel: {clean_text(status)}")

    def _decode(self, obj: Any, arrays: dict[str, np.ndarray]) -> Any:
        """Plain data only, whatever the kernel sent: see the module's docstring."""
        try:
            return codec.decode_value(obj, arrays, self._function)
        except codec.Undecodable as exc:
            raise NotTransferable(clean_text(exc)) from None

    def _function(self, obj: dict) -> LearnerFunction:
        """A handle to one of the kernel's functions (never an import: the kernel has none)."""
        handle = obj.get("__handle__")
        if "__handle__" not in obj:
            raise codec.Undecodable("a function the kernel cannot send")
        if type(handle) is not int:
            raise codec.Undecodable("a function handle that is not a number")
        return LearnerFunction(self, handle, clean_name(obj.get("name") or ""))


_KINDS = {
    kind.name: kind
    for kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.VAR_KEYWORD,
    )
}
MAX_PARAMETERS = 64


class UnavailableDefault:
    """A default value of the learner's that the kernel could not send as plain data."""

    def __repr__(self) -> str:
        return "<a default value the grader could not receive>"


def _refuse_function(obj: dict) -> Any:
    raise codec.Undecodable("a function as a default value")


def learner_signature(described: Any, arrays: dict[str, np.ndarray]) -> inspect.Signature | None:
    """The signature the kernel described, rebuilt from checked plain data; None if invalid.

    Each parameter: a name that is a Python identifier, one of Python's five kinds, and a
    default that is plain data (or marked as one the kernel could not send). Python's own
    rules (order of kinds, defaults) are checked by building the ``inspect.Signature``.
    """
    if not isinstance(described, list) or len(described) > MAX_PARAMETERS:
        return None
    parameters = []
    for entry in described:
        if not isinstance(entry, dict):
            return None
        name, kind = entry.get("name"), entry.get("kind")
        if type(name) is not str or not valid_identifier(name) or kind not in _KINDS:
            return None
        default: Any = inspect.Parameter.empty
        if "default" in entry:
            try:
                default = codec.decode_value(entry["default"], arrays, _refuse_function)
            except codec.Undecodable:
                default = UnavailableDefault()
        elif entry.get("default_unavailable") is True:
            default = UnavailableDefault()
        parameters.append(inspect.Parameter(name, _KINDS[kind], default=default))
    variadic = [p.kind for p in parameters if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(variadic) != len(set(variadic)):
        return None  # Python allows one *args and one **kwargs; inspect does not check it
    try:
        return inspect.Signature(parameters)
    except (TypeError, ValueError):
        return None


def valid_identifier(name: str) -> bool:
    """Whether ``name`` is a short identifier that is not a keyword."""
    return len(name) <= 100 and name.isidentifier() and not keyword.iskeyword(name)


class GradingNamespace(dict):
    """Globals for grade cells: the test's own names first, then the learner's kernel.

    Names that are builtins are never taken from the kernel. The instructor's read-only cells
    (imports, test data) run here too, so ``np`` is the grader's numpy, whatever the learner
    did to theirs. Substitutions made by a grade cell last until the end of that cell.
    """

    def __init__(self, channel: KernelChannel):
        super().__init__()
        self.channel = channel
        self._asked: set[str] = set()
        self._substituted: set[str] = set()
        self._fetched: dict[str, tuple[bool, Any]] = {}
        dict.__setitem__(self, "__name__", "__main__")
        dict.__setitem__(self, "__builtins__", builtins)

    # ``namespace.get`` / ``update`` / item assignment / ``pop``: the protocol the hidden tests
    # use to substitute functions in the notebook's namespace (see ``KernelChannel.substitute``).
    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default``; ``name`` is noted as asked for."""
        self._asked.add(name)
        try:
            return self[name]
        except KeyError:
            return default

    def __setitem__(self, name: str, value: Any) -> None:
        dict.__setitem__(self, name, value)
        if name in self._asked:
            self._propagate(name, value)

    def _propagate(self, name: str, value: Any) -> None:
        self._propagate_all({name: value})

    def _propagate_all(self, bindings: dict[str, Any]) -> None:
        restored = [
            name
            for name, value in bindings.items()
            if isinstance(value, LearnerFunction) and name in self._substituted
        ]
        if restored:
            self.channel.restore(restored)
            self._substituted.difference_update(restored)
        substitutes = {
            name: value
            for name, value in bindings.items()
            if callable(value) and not isinstance(value, type | LearnerFunction)
        }
        if substitutes:
            signatures = self.channel.substitute(substitutes)
            self._substituted.update(substitutes)
            for name, value in substitutes.items():
                # A stand-in takes what the learner's own function takes (gradecheck reads it).
                if signatures.get(name) is not None and hasattr(value, "__signature__"):
                    with contextlib.suppress(AttributeError, TypeError):
                        value.__signature__ = signatures[name]

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Bind the names given, substituted in the notebook's namespace too."""
        # An explicit ``globals().update(...)`` is a substitution in the notebook's namespace.
        bindings = dict(*args, **kwargs)
        for key, value in bindings.items():
            dict.__setitem__(self, key, value)
        self._propagate_all(bindings)

    def pop(self, name: str, *default: Any) -> Any:
        """Remove ``name`` (the learner's own is restored if it was substituted); its value."""
        if name in self._substituted:
            self.channel.restore([name])
            self._substituted.discard(name)
        return dict.pop(self, name, *default)

    def __getitem__(self, name: str) -> Any:
        try:
            return dict.__getitem__(self, name)
        except KeyError:
            pass
        if hasattr(builtins, name) or name.startswith("__") or name in _NEVER_FROM_KERNEL:
            raise KeyError(name)
        if name not in self._fetched:
            self._fetched[name] = self.channel.fetch(name)
        found, value = self._fetched[name]
        if not found:
            raise KeyError(name)
        return value

    def forget_fetched(self) -> None:
        """The notebook ran more of the learner's code: names may be bound differently now."""
        self._fetched.clear()

    def end_of_cell(self) -> None:
        """Undo the cell's substitutions: later cells see the learner's own functions again."""
        if self._substituted:
            self.channel.restore(sorted(self._substituted))
        for name in self._substituted:
            dict.pop(self, name, None)
        self._substituted.clear()
        self._fetched.clear()


def _short_error(exc: BaseException) -> dict:
    ename = type(exc).__name__
    evalue = str(exc)[:MAX_TEXT_OUTPUT]
    # No source lines: the traceback of a hidden test would show the hidden test.
    return {
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": [f"{ename}: {evalue}"],
    }


def run_trusted_code(source: str, namespace: GradingNamespace, cell_name: str) -> list[dict]:
    """Run a grade cell's code like IPython would and return its outputs (nbformat dicts).

    Whatever the test code writes to stderr (warnings included) is reported on stdout: a grade
    cell with stderr output would score 0 in nbgrader.
    """
    outputs: list[dict] = []
    buffer = io.StringIO()
    try:
        tree = ast.parse(source, filename=f"<grade cell {cell_name}>")
    except SyntaxError as exc:
        return [_short_error(exc)]
    last_expr = None
    if tree.body and isinstance(last := tree.body[-1], ast.Expr):
        tree.body.pop()
        last_expr = ast.Expression(last.value)
    error: BaseException | None = None
    result = None
    with (
        contextlib.redirect_stdout(buffer),
        contextlib.redirect_stderr(buffer),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("default")
        warnings.showwarning = _warning_printer(buffer)
        try:
            exec(compile(tree, f"<grade cell {cell_name}>", "exec"), namespace)
            if last_expr is not None:
                result = eval(compile(last_expr, f"<grade cell {cell_name}>", "eval"), namespace)
        except KernelUnavailable:
            raise  # the notebook has failed: nothing to restore in a kernel that is gone
        except NameError as exc:
            error = NameError(f"{exc} (is it defined in the notebook, and did its cell run?)")
        except Exception as exc:  # the test failed: that is the grade cell's outcome
            error = exc
        except SystemExit as exc:
            error = RuntimeError(f"the test called sys.exit({clean_text(exc.code, 80)})")
        namespace.end_of_cell()
    text = buffer.getvalue()
    if text:
        if len(text) > MAX_TEXT_OUTPUT:
            text = text[:MAX_TEXT_OUTPUT] + "\n[output truncated]\n"
        outputs.append({"output_type": "stream", "name": "stdout", "text": text})
    if error is not None:
        outputs.append(_short_error(error))
    elif result is not None:
        outputs.append(
            {
                "output_type": "execute_result",
                "execution_count": None,
                "metadata": {},
                "data": {"text/plain": repr(result)[:MAX_TEXT_OUTPUT]},
            }
        )
    return outputs


def _warning_printer(buffer: io.StringIO) -> Callable[..., None]:
    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: io.TextIOBase | None = None,
        line: str | None = None,
    ) -> None:
        buffer.write(f"{category.__name__}: {message}\n")

    return show


def run_setup_code(source: str, namespace: GradingNamespace) -> None:
    """Run an instructor's read-only cell in the grading namespace (imports, test data).

    Its outputs are not kept (the learner's kernel ran it too, and that run's outputs are the
    ones shown); a failure is ignored, as a later grade cell that needs its names will fail.
    """
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        try:
            exec(compile(source, "<read-only cell>", "exec"), namespace)
        except KernelUnavailable:
            raise
        except Exception:
            pass
