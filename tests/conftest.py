"""Shared fixtures. TensorFlow is imported only by tests that ask for ``keras``.

Only fixtures and hooks live here, the file pytest loads as a plugin; what tests import is in
plain modules beside it (``paths`` for the checkout's ``ROOT``, ``random_params`` for random
weights).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from paths import RUN_FOLDER_VARIABLE

# Before any TensorFlow import, and inherited by every kernel and subprocess the tests start (the
# suite's one place for them): TensorFlow's C++ log lines on stderr are noise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


@pytest.fixture(scope="session")
def keras():
    """The Keras 3 module, on the TensorFlow backend, imported once per test session."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras as keras_module

    return keras_module


@pytest.fixture(scope="session", autouse=True)
def run_folder(tmp_path_factory) -> None:
    """Name the folder every process of this run shares, for what course.py makes once per run.

    Under pytest-xdist each worker's temporary folder is one of the run's; pytest removes old
    runs' folders.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    os.environ[RUN_FOLDER_VARIABLE] = str(shared / "shared")


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's id, so each case has its own reproducible draws."""
    seed = int.from_bytes(request.node.nodeid.encode(), "little") % (2**32)
    return np.random.default_rng(seed)


# ---- Spreading the run over pytest-xdist's workers (scripts/test.sh: -n auto --dist loadgroup).
#
# An expensive artefact a test shares is made once per pytest process: a session- or
# module-scoped fixture defined in the tests' own modules (not here: ``keras`` is cheap), or a
# function of a test helper module cached with functools.cache (e.g. the site's clean build,
# which also writes to a fixed folder). Every test that reaches the same such artefact, through
# its fixtures or the functions of the test modules it calls, is put in one xdist group, so one
# worker makes it once. Tests already in an explicit xdist_group keep it.

_TESTS = os.path.dirname(os.path.abspath(__file__))


def _in_tests(obj) -> bool:
    """Whether ``obj`` is a function defined in a module of this folder."""
    code = getattr(getattr(obj, "__wrapped__", obj), "__code__", None)
    return code is not None and os.path.dirname(os.path.abspath(code.co_filename)) == _TESTS


def _cached_helpers(functions) -> set[str]:
    """The functools-cached functions of the test modules that ``functions`` reach by calling
    the test modules' functions (names looked up in each function's globals)."""
    found: set[str] = set()
    seen: set[int] = set()
    stack = list(functions)
    while stack:
        function = stack.pop()
        if id(function) in seen or not _in_tests(function):
            continue
        seen.add(id(function))
        if hasattr(function, "cache_info"):
            found.add(f"{function.__module__}.{function.__qualname__}")
            function = function.__wrapped__
        codes = [function.__code__]
        while codes:
            code = codes.pop()
            codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
            for name in code.co_names:
                value = function.__globals__.get(name)
                if callable(value):
                    stack.append(value)
    return found


def _shared_artefacts(item) -> set[str]:
    """Keys of the expensive artefacts ``item`` shares with other tests (see above)."""
    keys: set[str] = set()
    functions = [getattr(item, "function", None)]
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    for definitions in fixtureinfo.name2fixturedefs.values() if fixtureinfo else ():
        for definition in definitions:
            function = definition.func
            if not _in_tests(function) or function.__module__ == __name__:
                continue
            functions.append(function)
            name = f"{function.__module__}.{function.__qualname__}"
            if definition.scope == "session":
                keys.add(name)
            elif definition.scope in ("module", "package"):
                keys.add(f"{name} in {item.module.__name__}")
    return keys | _cached_helpers(f for f in functions if f is not None)


def pytest_configure(config) -> None:
    """Declare xdist's marker also when pytest-xdist is not loaded (``-p no:xdist``)."""
    config.addinivalue_line("markers", "xdist_group(name): run on one pytest-xdist worker")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Put the tests that share an expensive artefact in one xdist group (see above).

    First: a pytest-xdist worker's own hook reads the groups to name each test's group in its id.
    """
    _group_tests(items)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session) -> None:
    """On a pytest-xdist worker with --dist loadgroup, each grouped test's id ends in
    ``@<group>``, the suffix by which the controller keeps a group on one worker.

    pytest-xdist 3.8 writes it to ``item._nodeid``, which pytest 9.2 no longer reads (the id is
    ``item._id``, a ``NodeId``): it is written here where it is missing, in the same form, before
    the worker sends its tests' ids to the controller.
    """
    if not getattr(session.config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in session.items:
        names = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


def _group_tests(items) -> None:
    """The union of the tests' shared artefacts, as xdist groups (see above)."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    artefacts = {}
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            artefacts[item] = sorted(_shared_artefacts(item))
            for key in artefacts[item][1:]:
                parent[root(key)] = root(artefacts[item][0])
    for item, keys in artefacts.items():
        if keys:
            item.add_marker(pytest.mark.xdist_group(root(keys[0])))
