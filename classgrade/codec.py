"""Framed plain-data messages between the grader and the learner's kernel, over a socket.

A frame is ``MAGIC``, the header's length and the body's length (8 bytes each, big-endian),
a JSON header, then the raw bytes of the numeric arrays the header lists. Decoding trusts
nothing: lengths are capped before anything is allocated, dtypes must be numeric, every array
must fit the body exactly. Only JSON data and numeric arrays come out: nothing is imported,
unpickled, evaluated or looked up by a name the other side chose.

Values (a fetched name, a call's arguments and result) travel in a header as JSON: None,
booleans, numbers, strings and lists as they are; tuples, dicts with string keys, complex
numbers and named tuples as tagged objects; arrays as references to the frame's arrays. Both
sides encode and decode them here (:func:`encode_value`, :func:`decode_value`); what each side
makes of anything else (a function) is its own hook.

This file is also copied into the sandbox, where the kernel imports it as
``_classgrade_codec``: it imports nothing but the standard library and NumPy.
"""

from __future__ import annotations

import collections
import functools
import json
import keyword
import re
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np

MAGIC = b"CGF1"
_PREFIX = struct.Struct(">4sQQ")
MAX_HEADER_BYTES = 4 * 1024 * 1024
MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_ARRAYS = 10_000
FRAME_SECONDS = 10.0
"""How long either side waits for the rest of a frame it knows is coming."""
NUMERIC_KINDS = "biufc"

Arrays = dict[str, np.ndarray]
"""A frame's arrays by the names its header refers to them by."""
Encoder = Callable[[Any, Arrays, int], Any]
"""A side's own encoding of what is not plain data: ``(obj, arrays, depth)`` to JSON data."""
FunctionMaker = Callable[[dict[str, Any]], Any]
"""A side's own making (or refusal) of a function sent as ``{"__handle__": ...}`` or
``{"__import__": ...}``."""


_SURROGATES = re.compile("[\ud800-\udfff]")
MAX_CLEAN_DEPTH = 64


def clean_string(text: str) -> str:
    """``text`` with every unpaired surrogate (no UTF-8 file can hold one) replaced by U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


def clean_strings(value: Any, depth: int = 0) -> Any:
    """JSON data with every string (keys too) cleaned by :func:`clean_string`.

    Anything nested deeper than ``MAX_CLEAN_DEPTH`` becomes None.
    """
    if isinstance(value, str):
        return clean_string(value)
    if depth > MAX_CLEAN_DEPTH:
        return None
    if isinstance(value, dict):
        return {clean_string(str(k)): clean_strings(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_strings(v, depth + 1) for v in value]
    return value


class FrameError(Exception):
    """The other side sent something that is not a well-formed frame within the limits."""


class FrameTimeout(FrameError):
    """No complete frame arrived before the deadline."""


class Unencodable(TypeError):
    """A value that is not plain data, or too deep or too large to send."""


class Undecodable(TypeError):
    """A value in a frame that this codec does not make: never turned into anything."""


def encode_frame(header: dict, arrays: dict) -> bytes:
    """One frame: ``header`` (JSON-serialisable) and ``arrays`` (name -> numeric ndarray)."""
    specs, blobs, offset = [], [], 0
    for key, arr in arrays.items():
        arr = np.asarray(arr)
        data = arr.tobytes(order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
        specs.append([key, arr.dtype.str, list(arr.shape), offset, len(data)])
        blobs.append(data)
        offset += len(data)
    head = json.dumps({"payload": header, "arrays": specs}, allow_nan=True).encode()
    if len(head) > MAX_HEADER_BYTES or offset > MAX_FRAME_BYTES:
        raise FrameError(
            f"the message is larger than the channel carries ({(len(head) + offset) / 1e6:.1f} MB)"
        )
    return _PREFIX.pack(MAGIC, len(head), offset) + head + b"".join(blobs)


def send_frame(sock: socket.socket, header: dict, arrays: dict, deadline: float) -> None:
    """Send ``header`` and ``arrays`` as one frame on ``sock``, by ``deadline``."""
    data = memoryview(encode_frame(header, arrays))
    while data:
        _wait(sock, deadline, write=True)
        try:
            sent = sock.send(data)
        except BlockingIOError:
            continue
        data = data[sent:]


def _wait(sock: socket.socket, deadline: float, write: bool = False) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FrameTimeout("no answer before the deadline")
    readable, writable, _ = select.select(
        [] if write else [sock], [sock] if write else [], [], remaining
    )
    if not (readable or writable):
        raise FrameTimeout("no answer before the deadline")


def _recv_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        _wait(sock, deadline)
        try:
            n = sock.recv_into(view[got:], size - got)
        except BlockingIOError:
            continue
        if n == 0:
            raise FrameError("the channel was closed")
        got += n
    return bytes(buffer)


def recv_frame(sock: socket.socket, deadline: float) -> tuple[dict, dict]:
    """Read one frame before ``deadline`` (a ``time.monotonic()`` value): (header, arrays)."""
    magic, head_len, body_len = _PREFIX.unpack(_recv_exactly(sock, _PREFIX.size, deadline))
    if magic != MAGIC:
        raise FrameError("the channel carried bytes that are not a frame")
    if head_len > MAX_HEADER_BYTES or body_len > MAX_FRAME_BYTES:
        raise FrameError(
            f"a message of {(head_len + body_len) / 1e6:.1f} MB is over the channel's limit "
            f"of {MAX_FRAME_BYTES / 1e6:.0f} MB"
        )
    head = _recv_exactly(sock, head_len, deadline)
    body = memoryview(_recv_exactly(sock, body_len, deadline))
    return _decode_frame(head, body)


def _decode_frame(head: bytes, body: memoryview) -> tuple[dict, dict]:
    try:
        parsed = json.loads(head.decode("utf-8"))
        # Text from the other side leaves here writable: no unpaired surrogate in any string.
        payload, specs = clean_strings(parsed["payload"]), parsed["arrays"]
        if not isinstance(payload, dict) or not isinstance(specs, list):
            raise TypeError("wrong header types")
        if len(specs) > MAX_ARRAYS:
            raise ValueError("too many arrays")
        arrays = {}
        for key, dtype, shape, offset, size in specs:
            dt = np.dtype(str(dtype))
            if dt.kind not in NUMERIC_KINDS or dt.hasobject or dt.fields is not None:
                raise ValueError("an array that is not numeric")
            shape = tuple(int(n) for n in shape)
            if any(n < 0 for n in shape) or len(shape) > 32:
                raise ValueError("a bad array shape")
            offset, size = int(offset), int(size)
            count = 1
            for n in shape:
                count *= n
            if size != count * dt.itemsize or offset < 0 or offset + size > len(body):
                raise ValueError("inconsistent array sizes")
            arrays[str(key)] = (
                np.frombuffer(body[offset : offset + size], dtype=dt).reshape(shape).copy()
            )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise FrameError(f"a malformed message ({type(exc).__name__})") from None
    return payload, arrays


# -- Values ------------------------------------------------------------------------------------

MAX_ENCODE_DEPTH = 20
MAX_DECODE_DEPTH = 40
MAX_FIELDS = 64
MAX_IDENTIFIER_CHARS = 60
MAX_MESSAGE_CHARS = 2000
"""The longest exception message either side passes on (an error raised in a call)."""


def encode_value(obj: Any, arrays: Arrays, other: Encoder, depth: int = 0) -> Any:
    """``obj`` as JSON data, its arrays added to ``arrays``.

    Plain types are recognised by their exact type (a subclass may redefine anything); the rest
    is ``other(obj, arrays, depth)``'s to encode or refuse (raise :class:`Unencodable`).
    """
    if depth > MAX_ENCODE_DEPTH or len(arrays) > MAX_ARRAYS:
        raise Unencodable("the value is nested too deeply or is too large")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) is complex:
        return {"__complex__": [obj.real, obj.imag]}
    if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):
        named: Any = type(obj)  # a named tuple's class: ``_fields`` is no attribute of tuple
        return {
            "__namedtuple__": named.__name__,
            "fields": [str(f) for f in named._fields],
            "values": [encode_value(x, arrays, other, depth + 1) for x in obj],
        }
    if type(obj) in (list, tuple):
        items = [encode_value(x, arrays, other, depth + 1) for x in obj]
        return items if type(obj) is list else {"__tuple__": items}
    if type(obj) is dict:
        if not all(type(k) is str for k in obj):
            raise Unencodable("a dict with keys that are not strings")
        return {"__dict__": {k: encode_value(v, arrays, other, depth + 1) for k, v in obj.items()}}
    return other(obj, arrays, depth)


def array_reference(arr: np.ndarray, arrays: Arrays, scalar: bool) -> dict[str, Any]:
    """A numeric array sent with the frame (``scalar``: it stands for a NumPy scalar)."""
    key = f"a{len(arrays)}"
    arrays[key] = arr
    return {"__array__": key, "scalar": scalar}


def valid_field(name: object) -> bool:
    """A named tuple's field name that can be nothing but a plain attribute."""
    return (
        isinstance(name, str)
        and name.isidentifier()
        and not keyword.iskeyword(name)
        and not name.startswith("_")
        and len(name) <= MAX_IDENTIFIER_CHARS
    )


@functools.lru_cache(maxsize=64)
def record_class(name: str, fields: tuple[str, ...]) -> type[tuple[Any, ...]]:
    """A named tuple with the other side's field names (checked identifiers): plain data."""
    return collections.namedtuple(name if valid_field(name) else "Record", fields)


def decode_value(obj: Any, arrays: Arrays, function: FunctionMaker, depth: int = 0) -> Any:
    """Plain data only, whatever the other side sent.

    A function (``{"__handle__": ...}``, ``{"__import__": ...}``) is ``function(obj)``'s to make
    or refuse; anything else that is not plain data raises :class:`Undecodable`.
    """
    if depth > MAX_DECODE_DEPTH:
        raise Undecodable("a value nested too deeply")
    if isinstance(obj, list):
        return [decode_value(x, arrays, function, depth + 1) for x in obj]
    if not isinstance(obj, dict):
        if obj is None or type(obj) in (bool, int, float, str):
            return obj
        raise Undecodable(f"unexpected value {type(obj).__name__}")
    if len(obj) == 1 and "__tuple__" in obj and isinstance(obj["__tuple__"], list):
        return tuple(decode_value(x, arrays, function, depth + 1) for x in obj["__tuple__"])
    if len(obj) == 1 and "__dict__" in obj and isinstance(obj["__dict__"], dict):
        return {
            str(k): decode_value(v, arrays, function, depth + 1) for k, v in obj["__dict__"].items()
        }
    if "__complex__" in obj:
        re, im = obj["__complex__"]
        return complex(float(re), float(im))
    if "__array__" in obj:
        key = obj["__array__"]
        if not isinstance(key, str) or key not in arrays:
            raise Undecodable("a reference to an array that was not sent")
        arr = arrays[key]
        return arr[()] if obj.get("scalar") is True else arr
    if "__handle__" in obj or "__import__" in obj:
        return function(obj)
    if "__namedtuple__" in obj:
        fields, values = obj.get("fields"), obj.get("values")
        if (
            not isinstance(fields, list)
            or not isinstance(values, list)
            or len(fields) != len(values)
            or len(fields) > MAX_FIELDS
            or not all(valid_field(f) for f in fields)
            or len(set(fields)) != len(fields)
        ):
            raise Undecodable("a named tuple with invalid fields")
        cls = record_class(str(obj["__namedtuple__"])[:MAX_IDENTIFIER_CHARS], tuple(fields))
        return cls(*[decode_value(x, arrays, function, depth + 1) for x in values])
    raise Undecodable(f"an unexpected value: {str(sorted(map(str, obj))[:3])[:MAX_MESSAGE_CHARS]}")
