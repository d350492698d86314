"""The protocol of the grading channel between the grader and the learner's kernel.

The grader (``trusted``, ``executor``) and the kernel's half (``_probe``) speak it; both import
the names from here. Frames themselves (lengths, JSON header, arrays) are ``codec``'s.

1. The grader sends a request frame ``{"op": <operation>, "id": n, ...}`` on the socket, then
   announces it to the kernel with a ``REQUEST_MESSAGE`` shell message ``{"id": n}``; the kernel
   answers that message with a ``REPLY_MESSAGE``.
2. While serving request ``n``, the kernel may send ``KIND_CALLBACK`` frames (a substituted
   function called by the learner's code), each answered by the grader with a ``KIND_ANSWER``
   frame (``STATUS_OK`` or ``STATUS_RAISED``).
3. The kernel ends request ``n`` with one ``KIND_FINAL`` frame carrying a status.

This file is also copied into the sandbox, where the kernel imports it as
``_classgrade_channel``: it imports nothing at all.
"""

PROBE_MODULE = "_classgrade_probe"
"""The name the kernel imports the probe (``_probe.py``) as; importing it starts the probe."""
REQUEST_MESSAGE = "classgrade_request"
"""The shell message that asks the kernel to read and serve the next request frame."""
REPLY_MESSAGE = "classgrade_reply"
"""The kernel's shell reply to a ``REQUEST_MESSAGE`` once the request is served."""

OP_FETCH = "fetch"
"""A name's value in the kernel's namespace (``name``)."""
OP_CALL = "call"
"""A call of a function the kernel handed over (``handle``, ``args``, ``kwargs``)."""
OP_SUBSTITUTE = "substitute"
"""Names bound to stubs that call the grader back (``callbacks``: name to callback number)."""
OP_RESTORE = "restore"
"""The learner's own bindings of ``names`` put back."""
OPERATIONS = (OP_FETCH, OP_CALL, OP_SUBSTITUTE, OP_RESTORE)

KIND_FINAL = "final"
"""The kernel's last frame of a request."""
KIND_CALLBACK = "callback"
"""The kernel calls one of the grader's substituted functions back."""
KIND_ANSWER = "answer"
"""The grader's answer to a callback."""
KINDS = (KIND_FINAL, KIND_CALLBACK, KIND_ANSWER)

STATUS_OK = "ok"
"""Done; a value, if any, is in ``value``."""
STATUS_MISSING = "missing"
"""A fetched name is not in the kernel's namespace."""
STATUS_RAISED = "raised"
"""The function raised (``ename``, ``evalue``; ``from_grader`` when a callback's error)."""
STATUS_INTERRUPTED = "interrupted"
"""The function was interrupted (the grader's time limit for the call)."""
STATUS_UNENCODABLE = "unencodable"
"""The value is not plain data (``what`` says what it is)."""
STATUSES = (STATUS_OK, STATUS_MISSING, STATUS_RAISED, STATUS_INTERRUPTED, STATUS_UNENCODABLE)
