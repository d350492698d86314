"""The grader-side half of split execution: grade cells run here, not in the learner's kernel.

A grade cell's code (restored from the gradebook by nbgrader's OverwriteCells) is executed in
the grader's process, in a namespace where every name it does not define itself is looked up
in the learner's kernel: functions come back as proxies that call into the kernel, data comes
back as plain numbers and arrays. So the learner cannot patch the test's functions
(``np.testing``, ``np.allclose``), cannot rewrite the test with IPython hooks, cannot return an
object that compares equal to anything, cannot read the hidden test, and noise the learner's
code writes to stderr does not land in the grade cell.
"""

from __future__ import annotations

import ast
import builtins
import collections
import contextlib
import functools
import importlib
import io
import itertools
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MAX_RESULT_BYTES = 64 * 1024 * 1024
MAX_TEXT_OUTPUT = 20_000


class LearnerError(Exception):
    """The learner's function raised; the name and message are the learner's."""


class KernelUnavailable(BaseException):
    """The learner's kernel died or stopped answering.

    A BaseException, so that a test's ``except Exception`` cannot turn the end of the kernel
    into an ordinary failed check: the notebook as a whole has failed.
    """


class ForbiddenCall(RuntimeError):
    """The learner's function computed its result with Keras's layers or the reference."""


class NotTransferable(TypeError):
    """The learner's code produced something that is not plain data."""


def _encode(obj: Any, arrays: dict[str, np.ndarray], depth: int = 0) -> Any:
    if depth > 20:
        raise TypeError("arguments nested too deeply")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, LearnerFunction):
        return {"__handle__": obj.handle}
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, complex):
        return {"__complex__": [obj.real, obj.imag]}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return {
            "__namedtuple__": type(obj).__name__,
            "fields": list(obj._fields),
            "values": [_encode(x, arrays, depth + 1) for x in obj],
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(x, arrays, depth + 1) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x, arrays, depth + 1) for x in obj]
    if isinstance(obj, dict):
        return {"__dict__": {str(k): _encode(v, arrays, depth + 1) for k, v in obj.items()}}
    if callable(obj) and getattr(obj, "__module__", None) and getattr(obj, "__name__", None):
        # A library function (np.tanh): the kernel imports the same one itself.
        module = obj.__module__
        if module == "numpy.core" or module.startswith("numpy"):
            module = "numpy"
        return {"__import__": module, "attr": obj.__name__}
    arr = np.asarray(obj)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"cannot pass a {type(obj).__name__} to the learner's code")
    key = f"a{len(arrays)}"
    arrays[key] = np.ascontiguousarray(arr)
    return {"__array__": key, "scalar": not isinstance(obj, np.ndarray)}


class LearnerFunction:
    """Stands for a callable that lives in the learner's kernel."""

    def __init__(self, channel: KernelChannel, handle: int, name: str):
        self.channel = channel
        self.handle = handle
        self.__name__ = name or "learner_function"
        self.__qualname__ = self.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.channel.call(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<learner function {self.__name__}>"


class KernelChannel:
    """Requests to the learner's kernel, carried by ``user_expressions`` of silent executes.

    ``send`` is a callable (request path, timeout) -> status string supplied by the executor,
    which owns the kernel client.
    """

    def __init__(self, rpc_dir: Path, send: Callable[[str, float], str], timeout: float):
        self.rpc_dir = rpc_dir
        self.send = send
        self.timeout = timeout
        self.deadline = float("inf")
        self._counter = itertools.count()
        self.forbidden: list[str] = []
        self.callbacks: dict[int, Callable] = {}

    def _request(self, payload: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
        base = str(self.rpc_dir / f"r{next(self._counter)}")
        write_message(base + ".req", payload, arrays)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise KernelUnavailable("the notebook ran out of time")
        status = self.send(base, min(self.timeout, remaining))
        if status != "ok":
            raise KernelUnavailable(status)
        if not os.path.exists(base + ".res"):
            raise KernelUnavailable("the kernel did not answer the grader's request")
        return read_message(base + ".res")

    def substitute(self, name: str, function: Callable) -> None:
        """Bind ``name`` in the kernel to ``function``, which runs here when called there.

        The hidden tests replace a learner's earlier functions by correct ones while a later
        function is checked (so one wrong gate costs that gate's points only).
        """
        callback = next(self._counter)
        self.callbacks[callback] = function
        payload, _ = self._request({"op": "substitute", "name": name, "callback": callback}, {})
        self._expect_ok(payload)

    def restore(self, name: str) -> None:
        payload, _ = self._request({"op": "restore", "name": name}, {})
        self._expect_ok(payload)

    def _expect_ok(self, payload: dict) -> None:
        if payload.get("status") != "ok":
            raise KernelUnavailable(f"the kernel refused the grader's request: {payload}")

    def serve_callbacks(self) -> int:
        """Answer calls the kernel made to substituted functions; return how many."""
        served = 0
        if not self.callbacks:
            return served
        for entry in os.scandir(self.rpc_dir):
            if not (entry.name.startswith("cb") and entry.name.endswith(".req")):
                continue
            base = entry.path[: -len(".req")]
            try:
                request, arrays = read_message(entry.path, answer=False)
                function = self.callbacks[int(request["callback"])]
                args = self._decode(request["args"], arrays)
                kwargs = self._decode(request["kwargs"], arrays)
                out: dict[str, np.ndarray] = {}
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    value = function(*args, **kwargs)
                payload = {"status": "ok", "value": _encode(value, out)}
            except Exception as exc:
                out = {}
                payload = {"status": "raised", "ename": type(exc).__name__, "evalue": str(exc)}
            write_message(base + ".res", payload, out)
            served += 1
        return served

    def fetch(self, name: str) -> tuple[bool, Any]:
        payload, arrays = self._request({"op": "fetch", "name": name}, {})
        if payload["status"] == "missing":
            return False, None
        if payload["status"] == "unencodable":
            raise NotTransferable(
                f"`{name}` in the notebook is {payload['what']}, not a function or plain data"
            )
        return True, self._decode(payload["value"], arrays)

    def call(self, function: LearnerFunction, args: tuple, kwargs: dict) -> Any:
        arrays: dict[str, np.ndarray] = {}
        request = {
            "op": "call",
            "handle": function.handle,
            "args": _encode(list(args), arrays),
            "kwargs": _encode(kwargs, arrays),
        }
        payload, out = self._request(request, arrays)
        status = payload["status"]
        if status == "ok":
            return self._decode(payload["value"], out)
        if status == "raised":
            raise LearnerError(
                f"{function.__name__} raised {payload['ename']}: {payload['evalue']}"
            )
        if status == "forbidden":
            where = ", ".join(payload["where"])
            self.forbidden.append(function.__name__)
            raise ForbiddenCall(
                f"{function.__name__} computed its result with code that must not be used "
                f"in place of your own ({where}). Implement it with array operations."
            )
        if status == "unencodable":
            raise NotTransferable(
                f"{function.__name__} returned {payload['what']}; expected an array or a "
                "number (or a tuple of them)"
            )
        raise KernelUnavailable(f"unexpected answer from the kernel: {status}")

    def _decode(self, obj: Any, arrays: dict[str, np.ndarray]) -> Any:
        if isinstance(obj, list):
            return [self._decode(x, arrays) for x in obj]
        if not isinstance(obj, dict):
            if obj is None or type(obj) in (bool, int, float, str):
                return obj
            raise NotTransferable(f"unexpected value {type(obj).__name__}")
        if "__tuple__" in obj:
            return tuple(self._decode(x, arrays) for x in obj["__tuple__"])
        if "__dict__" in obj:
            return {str(k): self._decode(v, arrays) for k, v in obj["__dict__"].items()}
        if "__complex__" in obj:
            re, im = obj["__complex__"]
            return complex(float(re), float(im))
        if "__array__" in obj:
            arr = arrays[str(obj["__array__"])]
            return arr[()] if obj.get("scalar") else arr
        if "__handle__" in obj:
            return LearnerFunction(self, int(obj["__handle__"]), str(obj.get("name", "")))
        if "__module__" in obj:
            return importlib.import_module(str(obj["__module__"]))
        if "__namedtuple__" in obj:
            cls = _namedtuple_class(str(obj["__namedtuple__"]), tuple(map(str, obj["fields"])))
            return cls(*[self._decode(x, arrays) for x in obj["values"]])
        raise NotTransferable(f"unexpected value in the kernel's answer: {sorted(obj)[:3]}")


@functools.lru_cache(maxsize=64)
def _namedtuple_class(name: str, fields: tuple[str, ...]):
    return collections.namedtuple(name, fields)


def write_message(path: str, payload: dict, arrays: dict[str, np.ndarray]) -> None:
    """A JSON header line and the arrays' raw bytes, in one file renamed into place."""
    specs, blobs, offset = [], [], 0
    for key, arr in arrays.items():
        data = np.ascontiguousarray(arr).tobytes()
        specs.append([key, arr.dtype.str, list(arr.shape), offset, len(data)])
        blobs.append(data)
        offset += len(data)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(json.dumps({"payload": payload, "arrays": specs}).encode() + b"\n")
        for data in blobs:
            f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_message(path: str, answer: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """Read what the kernel wrote, trusting nothing: numeric arrays of declared size only."""
    if os.path.getsize(path) > MAX_RESULT_BYTES:
        os.unlink(path)
        raise NotTransferable("the result is larger than the grader accepts")
    with open(path, "rb") as f:
        blob = f.read()
    os.unlink(path)
    try:
        end = blob.index(b"\n")
        header = json.loads(blob[:end])
        payload, specs = header["payload"], header["arrays"]
        body = memoryview(blob)[end + 1 :]
        arrays: dict[str, np.ndarray] = {}
        for key, dtype, shape, offset, size in specs:
            dt = np.dtype(str(dtype))
            if dt.kind not in "biufc" or dt.hasobject:
                raise NotTransferable("the result holds non-numeric data")
            shape = tuple(int(n) for n in shape)
            offset, size = int(offset), int(size)
            count = int(np.prod(shape)) if shape else 1
            if size != count * dt.itemsize or offset < 0 or offset + size > len(body):
                raise ValueError("inconsistent array sizes")
            arrays[str(key)] = (
                np.frombuffer(body[offset : offset + size], dtype=dt).reshape(shape).copy()
            )
    except NotTransferable:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise KernelUnavailable(f"malformed answer from the kernel ({exc})") from None
    if not isinstance(payload, dict) or (answer and "status" not in payload):
        raise KernelUnavailable("malformed answer from the kernel")
    return payload, arrays


class GradingNamespace(dict):
    """Globals for grade cells: the test's own names first, then the learner's kernel.

    Names that are builtins are never taken from the kernel, and a name the kernel binds to
    a module is imported afresh here (``np`` is the grader's numpy, whatever the learner did
    to theirs).
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
        if isinstance(value, LearnerFunction):
            if name in self._substituted:
                self.channel.restore(name)
                self._substituted.discard(name)
        elif callable(value) and not isinstance(value, type):
            self.channel.substitute(name, value)
            self._substituted.add(name)

    def update(self, *args: Any, **kwargs: Any) -> None:
        # An explicit ``globals().update(...)`` is a substitution in the notebook's namespace.
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, key, value)
            self._propagate(key, value)

    def pop(self, name: str, *default: Any) -> Any:
        if name in self._substituted:
            self.channel.restore(name)
            self._substituted.discard(name)
        return dict.pop(self, name, *default)

    def __getitem__(self, name: str) -> Any:
        try:
            return dict.__getitem__(self, name)
        except KeyError:
            pass
        if hasattr(builtins, name) or name.startswith("__"):
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
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last_expr = ast.Expression(tree.body.pop().value)
    error = None
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
            raise
        except NameError as exc:
            error = NameError(f"{exc} (is it defined in the notebook, and did its cell run?)")
        except Exception as exc:  # the test failed: that is the grade cell's outcome
            error = exc
        except SystemExit as exc:
            error = RuntimeError(f"the test called sys.exit({exc.code})")
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


def _warning_printer(buffer: io.StringIO):
    def show(message, category, filename, lineno, file=None, line=None):
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
