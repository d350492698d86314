"""Framed plain-data messages between the grader and the learner's kernel, over a socket.

A frame is ``MAGIC``, the header's length and the body's length (8 bytes each, big-endian),
a JSON header, then the raw bytes of the numeric arrays the header lists. Decoding trusts
nothing: lengths are capped before anything is allocated, dtypes must be numeric, every array
must fit the body exactly. Only JSON data and numeric arrays come out: nothing is imported,
unpickled, evaluated or looked up by a name the other side chose.

This file is also copied into the sandbox, where the kernel imports it as
``_classgrade_codec``: it imports nothing but the standard library and NumPy.
"""

import json
import select
import socket
import struct
import time

import numpy as np

MAGIC = b"CGF1"
_PREFIX = struct.Struct(">4sQQ")
MAX_HEADER_BYTES = 4 * 1024 * 1024
MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_ARRAYS = 10_000
FRAME_SECONDS = 10.0
"""How long either side waits for the rest of a frame it knows is coming."""
NUMERIC_KINDS = "biufc"


class FrameError(Exception):
    """The other side sent something that is not a well-formed frame within the limits."""


class FrameTimeout(FrameError):
    """No complete frame arrived before the deadline."""


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
        payload, specs = parsed["payload"], parsed["arrays"]
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
