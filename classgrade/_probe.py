"""The learner-side half of classgrade's split execution (runs inside the sandboxed kernel).

Grade cells do not run in the learner's kernel: they run in the grader, and every name they
take from the notebook (a learner's function, a variable) is fetched or called through this
module. Requests and answers are frames of plain data (``_classgrade_codec``), in the protocol
of ``_classgrade_channel``, on a socket the grader handed to the sandbox when it started: the
kernel cannot redirect it, and nothing the learner's code returns can pretend to be equal to
the expected value.

The grader asks for a request to be served with a ``REQUEST_MESSAGE`` shell message, which
bypasses the cell machinery (no input transformers, no execution hooks); the request itself and
its answer travel on the socket. While a learner's function runs, the grader's correct version
of an earlier function (substituted for one check) is called back over the same socket.

A function handed to the grader goes as an opaque handle. When the grader substitutes its
correct stand-ins, the answer carries the signature of each learner function it replaced
(parameter names, kinds and defaults, as plain data), so that the stand-ins accept exactly what
the learner's own accept. Nothing here watches which libraries the learner's
code calls: the sandbox holds no TensorFlow or Keras to call. This file is copied into the
sandbox with ``codec.py`` and ``channel.py`` and imported as ``_classgrade_probe``; it must not
import anything from classgrade.
"""

from __future__ import annotations

import inspect
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from IPython import get_ipython

if TYPE_CHECKING:  # the modules as classgrade holds them; the kernel imports its copies
    from classgrade import channel, codec
else:
    import _classgrade_channel as channel
    import _classgrade_codec as codec

_MAX_PARAMETERS = 64  # of a signature sent to the grader
_CALLBACK_SECONDS = 60.0  # for the grader's answer to a callback

_state: dict[str, int | None] = {"serving": None}
_handles: dict[int, Callable[..., Any]] = {}
_next_handle = [0]
_MISSING = object()
_saved: dict[str, Any] = {}

_channel = socket.socket(fileno=int(os.environ.pop("CLASSGRADE_CHANNEL_FD")))
_channel.setblocking(False)


class _FromGrader(RuntimeError):
    """The grader's correct version of a function raised (the learner's call was wrong)."""


def _handle_for(obj: Callable[..., Any]) -> int:
    _next_handle[0] += 1
    _handles[_next_handle[0]] = obj
    return _next_handle[0]


def _encode(obj: Any, arrays: codec.Arrays) -> Any:
    """Plain data only: numbers, strings, None, lists, tuples, dicts and numeric arrays."""
    return codec.encode_value(obj, arrays, _encode_other)


def _encode_other(obj: Any, arrays: codec.Arrays, depth: int) -> Any:
    if isinstance(obj, type(sys)):
        raise codec.Unencodable(f"a module ({obj.__name__})")
    if isinstance(obj, type):
        raise codec.Unencodable(f"a class ({obj.__name__})")
    if callable(obj) and not hasattr(obj, "__array__"):
        name = getattr(obj, "__name__", "")
        return {"__handle__": _handle_for(obj), "name": name if isinstance(name, str) else ""}
    return _encode_array(obj, arrays)


def _signature_of(obj: Any, arrays: codec.Arrays) -> list[dict[str, Any]] | None:
    """What ``obj`` accepts, as plain data; None when Python cannot tell (or it is too long)."""
    try:
        parameters = list(inspect.signature(obj).parameters.values())
    except Exception:  # a builtin, a class, a callable object whose signature raises
        return None
    if len(parameters) > _MAX_PARAMETERS:
        return None
    described = []
    for p in parameters:
        entry: dict[str, Any] = {"name": str(p.name), "kind": p.kind.name}
        if p.default is not p.empty:
            try:
                entry["default"] = codec.encode_value(p.default, arrays, _encode_default)
            except codec.Unencodable:
                entry["default_unavailable"] = True
        described.append(entry)
    return described


def _encode_default(obj: Any, arrays: codec.Arrays, depth: int) -> Any:
    if callable(obj) or isinstance(obj, type(sys)):
        raise codec.Unencodable("a function as a default value")
    return _encode_array(obj, arrays)


def _encode_array(obj: Any, arrays: codec.Arrays) -> dict[str, Any]:
    try:
        arr = np.asarray(obj)
    except Exception as exc:  # an object that refuses conversion
        raise codec.Unencodable(f"an object of type {type(obj).__name__}") from exc
    if arr.dtype == object or arr.dtype.kind not in codec.NUMERIC_KINDS:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise codec.Unencodable(f"an object of type {type(obj).__name__}") from exc
    arr = np.array(arr, copy=True, order="C")  # a plain ndarray, never a subclass
    scalar = not isinstance(obj, np.ndarray) and arr.ndim == 0
    return codec.array_reference(arr, arrays, scalar)


def _decode(obj: Any, arrays: codec.Arrays) -> Any:
    """Arguments from the grader, decoded.

    Plain data, handles of this kernel's functions, and library functions (``np.tanh``) the
    grader's own code passes, imported here by name.
    """
    return codec.decode_value(obj, arrays, _function)


def _function(obj: dict[str, Any]) -> Any:
    if "__handle__" in obj:
        return _handles[obj["__handle__"]]
    module = __import__(obj["__import__"], fromlist=["_"])
    return getattr(module, obj["attr"])


def _send(header: dict[str, Any], arrays: codec.Arrays, seconds: float = 30.0) -> None:
    codec.send_frame(_channel, header, arrays, time.monotonic() + seconds)


def _serve(request_id: int) -> None:
    request, arrays = codec.recv_frame(_channel, time.monotonic() + codec.FRAME_SECONDS)
    if request.get("id") != request_id:
        raise ValueError("the grader's request and its announcement disagree")
    out_arrays: codec.Arrays = {}
    payload: dict[str, Any] | None = None
    _state["serving"] = request_id
    try:
        op = request["op"]
        if op == channel.OP_FETCH:
            payload = _fetch(request["name"], out_arrays)
        elif op == channel.OP_SUBSTITUTE:
            payload = _substitute(request["callbacks"], out_arrays)
        elif op == channel.OP_RESTORE:
            payload = _restore(request["names"])
        elif op == channel.OP_CALL:
            payload = _call(request, arrays, out_arrays)
        else:
            raise ValueError("an unknown operation")
    except codec.Unencodable as exc:
        payload = {"status": channel.STATUS_UNENCODABLE, "what": str(exc)[:300]}
    except BaseException as exc:  # the learner's object raised while it was being sent
        payload = {
            "status": channel.STATUS_UNENCODABLE,
            "what": f"an object whose conversion raised {type(exc).__name__}",
        }
    finally:
        _state["serving"] = None
        if payload is None or payload.get("status") == channel.STATUS_UNENCODABLE:
            out_arrays = {}
        # Whatever happened, the grader gets its final frame.
        nothing = {"status": channel.STATUS_UNENCODABLE, "what": "nothing"}
        payload = {**(payload or nothing), "kind": channel.KIND_FINAL}
        payload["id"] = request_id
        try:
            _send(payload, out_arrays)
        except codec.FrameError as exc:
            _send(
                {
                    "kind": channel.KIND_FINAL,
                    "id": request_id,
                    "status": channel.STATUS_UNENCODABLE,
                    "what": str(exc),
                },
                {},
            )


def _fetch(name: str, out_arrays: codec.Arrays) -> dict[str, Any]:
    user_ns = get_ipython().user_ns
    if name not in user_ns:
        return {"status": channel.STATUS_MISSING}
    return {"status": channel.STATUS_OK, "value": _encode(user_ns[name], out_arrays)}


def _call(
    request: dict[str, Any], arrays: codec.Arrays, out_arrays: codec.Arrays
) -> dict[str, Any]:
    function = _handles[request["handle"]]
    result, interrupted = _run(function, request, arrays)
    if interrupted is not None:
        return {"status": channel.STATUS_INTERRUPTED}
    if isinstance(result, BaseException):
        return {
            "status": channel.STATUS_RAISED,
            "ename": type(result).__name__,
            "from_grader": isinstance(result, _FromGrader),
            "evalue": str(result)[: codec.MAX_MESSAGE_CHARS],
        }
    return {"status": channel.STATUS_OK, "value": _encode(result, out_arrays)}


def _run(
    function: Callable[..., Any], request: dict[str, Any], arrays: codec.Arrays
) -> tuple[Any, KeyboardInterrupt | None]:
    arrays = {k: v.copy() for k, v in arrays.items()}  # a learner may write into its inputs
    args = _decode(request["args"], arrays)
    kwargs = _decode(request["kwargs"], arrays)
    modules_before = set(sys.modules)
    interrupted = None
    try:
        result = function(*args, **kwargs)
    except KeyboardInterrupt as exc:  # the grader's time limit for this call
        result = interrupted = exc
    except BaseException as exc:  # reported to the grader as the learner's error
        result = exc
    if interrupted is not None:
        # An import cut short leaves half-initialised modules behind (matplotlib, Keras):
        # forget the Python modules the call added, so that a later import starts afresh.
        # Extension modules stay: their C state cannot be initialised twice in one process.
        for name in set(sys.modules) - modules_before:
            origin = getattr(sys.modules.get(name), "__file__", None) or ""
            if not origin.endswith((".so", ".pyd")):
                sys.modules.pop(name, None)
    return result, interrupted


def _substitute(callbacks: dict[str, int], out_arrays: codec.Arrays) -> dict[str, Any]:
    """Bind each name to a stub that calls the grader's function back; one request for all.

    The answer carries the signature of each name's current binding (the learner's own
    function), which the grader's stand-in adopts.
    """
    user_ns = get_ipython().user_ns
    signatures = {}
    for name, callback in callbacks.items():
        if name not in _saved:
            _saved[name] = user_ns.get(name, _MISSING)
        own = _saved[name]
        # A class or a module bound to the name is no function whose arguments count.
        function = own is not _MISSING and callable(own) and not isinstance(own, type)
        signatures[name] = _signature_of(own, out_arrays) if function else None
        user_ns[name] = _stub(name, callback)
    return {"status": channel.STATUS_OK, "signatures": signatures}


def _stub(name: str, callback: int) -> Callable[..., Any]:
    def substituted(*args: Any, **kwargs: Any) -> Any:
        """Runs the grader's correct version of this function (during one hidden test)."""
        request_id = _state["serving"]
        if request_id is None:
            raise RuntimeError(f"the grader's {name} can only be called while it grades")
        arrays: codec.Arrays = {}
        try:
            payload = {
                "kind": channel.KIND_CALLBACK,
                "id": request_id,
                "callback": callback,
                "args": _encode(list(args), arrays),
                "kwargs": _encode(kwargs, arrays),
            }
        except codec.Unencodable as exc:
            # What the correct function would have refused as well.
            raise TypeError(f"{name} got {exc}, not an array or a number") from None
        _send(payload, arrays)
        answer, result_arrays = codec.recv_frame(_channel, time.monotonic() + _CALLBACK_SECONDS)
        if answer.get("status") != channel.STATUS_OK:
            raise _FromGrader(str(answer.get("evalue", "the grader's function failed")))
        return _decode(answer["value"], result_arrays)

    substituted.__name__ = name
    return substituted


def _restore(names: list[str]) -> dict[str, Any]:
    user_ns = get_ipython().user_ns
    for name in names:
        saved = _saved.pop(name, _MISSING)
        if saved is _MISSING:
            user_ns.pop(name, None)
        else:
            user_ns[name] = saved
    return {"status": channel.STATUS_OK}


def _handle_request(stream: Any, idents: list[bytes], parent: dict[str, Any]) -> None:
    """Shell-channel handler for ``REQUEST_MESSAGE`` messages: no cell, no IPython hooks."""
    kernel = get_ipython().kernel
    try:
        _serve(int(parent["content"]["id"]))
        status = channel.STATUS_OK
    except BaseException as exc:  # the grader must always get an answer
        status = f"{type(exc).__name__}: {exc}"[:500]
    kernel.session.send(stream, channel.REPLY_MESSAGE, {"status": status}, parent, idents)


def _register() -> None:
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        kernel.shell_handlers[channel.REQUEST_MESSAGE] = _handle_request


_register()
