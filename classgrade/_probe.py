"""The learner-side half of classgrade's split execution (runs inside the sandboxed kernel).

Grade cells do not run in the learner's kernel: they run in the grader's own process, and
every name they take from the notebook (a learner's function, a variable) is fetched or called
through this module. Arguments and results cross as plain data (one file per message: JSON for
the structure, then raw numeric arrays), so nothing the learner's code returns can pretend to be
equal to the expected value, and nothing the grader computes is ever visible here.

Keras's layers are instrumented (once Keras is imported) so that a learner's function that
builds or calls one while it is being graded is reported; the reference package is simply not
installed in the sandbox. This file is copied into the sandbox on its own and imported as
``_classgrade_probe``; it must not import anything from classgrade.
"""

import functools
import json
import os
import sys
import time

import numpy as np
from IPython import get_ipython

# Keras's layers must not compute a gate in place of the learner's own code. Their classes are
# instrumented once Keras is imported (importing it here would cost seconds per notebook).
_KERAS_LAYER_MODULE = "keras.src.layers.layer"
_KERAS_RNN_PREFIX = "keras.src.layers.rnn."
_state = {"active": False, "hits": []}
_wrapped = {}  # (class, attribute) -> our wrapper, to notice when one is taken away
_MAX_ITEMS = 10_000

_handles = {}
_next_handle = [0]


class _Unencodable(TypeError):
    pass


def _handle_for(obj):
    _next_handle[0] += 1
    _handles[_next_handle[0]] = obj
    return _next_handle[0]


def _encode(obj, arrays, depth=0):
    """Plain data only: numbers, strings, None, lists, tuples, dicts and numeric arrays."""
    if depth > 20 or len(arrays) > _MAX_ITEMS:
        raise _Unencodable("the value is nested too deeply or is too large")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) is complex:
        return {"__complex__": [obj.real, obj.imag]}
    if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):
        return {
            "__namedtuple__": type(obj).__name__,
            "fields": list(type(obj)._fields),
            "values": [_encode(x, arrays, depth + 1) for x in obj],
        }
    if type(obj) in (list, tuple):
        items = [_encode(x, arrays, depth + 1) for x in obj]
        return items if type(obj) is list else {"__tuple__": items}
    if type(obj) is dict:
        if not all(type(k) is str for k in obj):
            raise _Unencodable("a dict with keys that are not strings")
        return {"__dict__": {k: _encode(v, arrays, depth + 1) for k, v in obj.items()}}
    if callable(obj) and not hasattr(obj, "__array__"):
        return {"__handle__": _handle_for(obj), "name": getattr(obj, "__name__", "")}
    if isinstance(obj, type(sys)):
        return {"__module__": obj.__name__}
    return _encode_array(obj, arrays)


def _encode_array(obj, arrays):
    try:
        arr = np.asarray(obj)
    except Exception as exc:  # an object that refuses conversion
        raise _Unencodable(f"an object of type {type(obj).__name__}") from exc
    if arr.dtype == object or arr.dtype.kind not in "biufc":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise _Unencodable(f"an object of type {type(obj).__name__}") from exc
    arr = np.array(arr, copy=True, order="C")  # a plain ndarray, never a subclass
    key = f"a{len(arrays)}"
    arrays[key] = arr
    scalar = not isinstance(obj, np.ndarray) and arr.ndim == 0
    return {"__array__": key, "scalar": scalar}


def _decode(obj, arrays):
    if isinstance(obj, list):
        return [_decode(x, arrays) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tuple__" in obj:
        return tuple(_decode(x, arrays) for x in obj["__tuple__"])
    if "__dict__" in obj:
        return {k: _decode(v, arrays) for k, v in obj["__dict__"].items()}
    if "__complex__" in obj:
        return complex(*obj["__complex__"])
    if "__array__" in obj:
        arr = arrays[obj["__array__"]]
        return arr[()] if obj.get("scalar") else arr
    if "__handle__" in obj:
        return _handles[obj["__handle__"]]
    if "__import__" in obj:
        module = __import__(obj["__import__"], fromlist=["_"])
        return getattr(module, obj["attr"])
    if "__namedtuple__" in obj:
        import collections

        cls = collections.namedtuple(obj["__namedtuple__"], obj["fields"])
        return cls(*[_decode(x, arrays) for x in obj["values"]])
    raise ValueError(f"unknown value in a grading request: {sorted(obj)}")


def _write_message(path, payload, arrays):
    """One file: a JSON header line, then the arrays' raw bytes. Renamed into place whole."""
    specs, blobs, offset = [], [], 0
    for key, arr in arrays.items():
        data = arr.tobytes()
        specs.append([key, arr.dtype.str, list(arr.shape), offset, len(data)])
        blobs.append(data)
        offset += len(data)
    header = json.dumps({"payload": payload, "arrays": specs}).encode() + b"\n"
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header)
        for data in blobs:
            f.write(data)
    os.replace(tmp, path)


def _read_message(path):
    with open(path, "rb") as f:
        blob = f.read()
    os.unlink(path)
    end = blob.index(b"\n")
    header = json.loads(blob[:end])
    body = memoryview(blob)[end + 1 :]
    arrays = {}
    for key, dtype, shape, offset, size in header["arrays"]:
        arrays[key] = np.frombuffer(body[offset : offset + size], dtype=dtype).reshape(shape).copy()
    return header["payload"], arrays


def _wrap(cls, attr):
    original = cls.__dict__.get(attr)
    if original is None or (cls, attr) in _wrapped:
        return
    label = f"{cls.__module__}.{cls.__qualname__}"

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if _state["active"]:
            _state["hits"].append(label)
        return original(*args, **kwargs)

    setattr(cls, attr, wrapper)
    _wrapped[(cls, attr)] = wrapper


def _instrument_keras():
    layer_module = sys.modules.get(_KERAS_LAYER_MODULE)
    if layer_module is None:
        return
    _wrap(layer_module.Layer, "__init__")
    _wrap(layer_module.Layer, "__call__")
    for name, module in list(sys.modules.items()):
        if name.startswith(_KERAS_RNN_PREFIX) and module is not None:
            for obj in list(vars(module).values()):
                if isinstance(obj, type) and obj.__module__ == name:
                    _wrap(obj, "call")


def _instrumentation_intact():
    return all(cls.__dict__.get(attr) is w for (cls, attr), w in _wrapped.items())


def serve(path):
    """Answer the grader's request ``path + ".req"``; the answer goes to ``path + ".res"``."""
    request, arrays = _read_message(path + ".req")
    out_arrays = {}
    try:
        op = request["op"]
        if op == "fetch":
            payload = _fetch(request["name"], out_arrays)
        elif op == "substitute":
            payload = _substitute(request["name"], request["callback"], path)
        elif op == "restore":
            payload = _restore(request["name"])
        else:
            payload = _call(request, arrays, out_arrays)
    except _Unencodable as exc:
        out_arrays = {}
        payload = {"status": "unencodable", "what": str(exc)}
    _write_message(path + ".res", payload, out_arrays)
    return "ok"


def _fetch(name, out_arrays):
    user_ns = get_ipython().user_ns
    if name not in user_ns:
        return {"status": "missing"}
    return {"status": "ok", "value": _encode(user_ns[name], out_arrays)}


def _call(request, arrays, out_arrays):
    function = _handles[request["handle"]]
    keras_before = _KERAS_LAYER_MODULE in sys.modules
    _instrument_keras()
    if not _instrumentation_intact():
        return {"status": "forbidden", "where": ["a change of the grader's instrumentation"]}
    outcome = _run(function, request, arrays)
    if not keras_before and _KERAS_LAYER_MODULE in sys.modules:
        # Keras was imported during the call, so its layers were not watched: run it again.
        _instrument_keras()
        outcome = _run(function, request, arrays)
    hits, result = outcome
    if hits:
        return {"status": "forbidden", "where": sorted(set(hits))[:3]}
    if isinstance(result, BaseException):
        return {"status": "raised", "ename": type(result).__name__, "evalue": str(result)[:2000]}
    return {"status": "ok", "value": _encode(result, out_arrays)}


def _run(function, request, arrays):
    arrays = {k: v.copy() for k, v in arrays.items()}  # a learner may write into its inputs
    args = _decode(request["args"], arrays)
    kwargs = _decode(request["kwargs"], arrays)
    _state["hits"] = []
    _state["active"] = True
    try:
        result = function(*args, **kwargs)
    except BaseException as exc:  # reported to the grader as the learner's error
        result = exc
    finally:
        _state["active"] = False
    return list(_state["hits"]), result


_MISSING = object()
_saved = {}
_callback_counter = [0]


def _substitute(name, callback, path):
    user_ns = get_ipython().user_ns
    if name not in _saved:
        _saved[name] = user_ns.get(name, _MISSING)
    rpc_dir = os.path.dirname(path)

    def substituted(*args, **kwargs):
        """Runs the grader's correct version of this function (during a hidden test)."""
        _callback_counter[0] += 1
        base = os.path.join(rpc_dir, f"cb{_callback_counter[0]}")
        arrays = {}
        payload = {
            "callback": callback,
            "args": _encode(list(args), arrays),
            "kwargs": _encode(kwargs, arrays),
        }
        _write_message(base + ".req", payload, arrays)
        deadline = time.monotonic() + 30
        wait = 0.0001
        while not os.path.exists(base + ".res"):
            if time.monotonic() > deadline:
                raise TimeoutError("the grader did not answer")
            time.sleep(wait)
            wait = min(wait * 2, 0.005)
        answer, result_arrays = _read_message(base + ".res")
        if answer["status"] != "ok":
            raise RuntimeError(f"{answer['ename']}: {answer['evalue']}")
        return _decode(answer["value"], result_arrays)

    substituted.__name__ = name
    user_ns[name] = substituted
    return {"status": "ok"}


def _restore(name):
    user_ns = get_ipython().user_ns
    saved = _saved.pop(name, _MISSING)
    if saved is _MISSING:
        user_ns.pop(name, None)
    else:
        user_ns[name] = saved
    return {"status": "ok"}


def _handle_request(stream, idents, parent):
    """Shell-channel handler for ``classgrade_request`` messages: no cell, no IPython hooks."""
    kernel = get_ipython().kernel
    try:
        status = serve(parent["content"]["path"])
    except BaseException as exc:  # the grader must always get an answer
        status = f"{type(exc).__name__}: {exc}"[:500]
    kernel.session.send(stream, "classgrade_reply", {"status": status}, parent, idents)


def _register():
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        kernel.shell_handlers["classgrade_request"] = _handle_request


_register()
