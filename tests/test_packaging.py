"""The package metadata says what each package needs, and requirements.txt pins all of it.

pyproject.toml declares NumPy for rnn_ref and gradecheck and one extra per use (keras, grading,
book, test); requirements.txt pins the exact versions the course is tested with. These tests
fail when a pinned requirement is in no extra, when a pin falls outside its extra's range, and
when a package imports a distribution its declaration does not bring in.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from paths import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SELF = canonicalize_name(PROJECT["name"])
# What each first-party package may import, by the extras it is declared with.
# gradecheck runs in the grading kernel, beside nbgrader.
PACKAGE_EXTRAS = {"rnn_ref": (), "gradecheck": ("grading",), "classgrade": ("grading", "queue")}


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    """The core dependencies and those of ``extras`` (the project's own extras expanded)."""
    wanted = [Requirement(r) for r in PROJECT["dependencies"]]
    pending = list(extras)
    seen: set[str] = set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in PROJECT["optional-dependencies"][extra]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == SELF:
                pending.extend(requirement.extras)
            else:
                wanted.append(requirement)
    return wanted


def pins() -> dict[str, str]:
    """requirements.txt as {name: version}."""
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (version,) = (spec.version for spec in requirement.specifier if spec.operator == "==")
            found[canonicalize_name(requirement.name)] = version
    return found


def test_every_pin_is_declared_and_inside_its_declared_range():
    everything = {
        canonicalize_name(r.name): r for r in declared(tuple(PROJECT["optional-dependencies"]))
    }
    pinned = pins()
    assert sorted(set(pinned) - set(everything)) == [], "pinned but declared in no extra"
    assert sorted(set(everything) - set(pinned)) == [], "declared but not pinned (so never tested)"
    outside = {n: v for n, v in pinned.items() if not everything[n].specifier.contains(v)}
    assert outside == {}, "pins outside the range pyproject.toml declares"


def closure(requirements: list[Requirement]) -> set[str]:
    """The distributions that installing ``requirements`` brings in (per installed metadata)."""
    found: set[str] = set()
    pending = [canonicalize_name(r.name) for r in requirements]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.requires(name) or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return found


def imported_top_level_names(package: str) -> set[str]:
    names = set()
    for path in (ROOT / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(PACKAGE_EXTRAS))
def test_each_package_imports_only_what_its_declaration_installs(package):
    provided = closure(declared(PACKAGE_EXTRAS[package]))
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for name in sorted(imported_top_level_names(package)):
        # Standard library, the project's own packages, and modules it writes itself (the copy of
        # classgrade's codec that the sandbox imports is named with a leading underscore).
        if name in sys.stdlib_module_names or name in PACKAGE_EXTRAS or name.startswith("_"):
            continue
        owners = {canonicalize_name(d) for d in distributions.get(name, [])}
        if not owners & provided:
            missing[name] = sorted(owners)
    assert missing == {}, f"{package} imports distributions its declaration does not bring in"


def test_the_checker_sees_an_undeclared_import():
    # rnn_ref may import only NumPy; matplotlib comes with no declaration of it.
    provided = closure(declared(PACKAGE_EXTRAS["rnn_ref"]))
    assert "numpy" in provided
    assert "matplotlib" not in provided
    assert re.fullmatch(r"\d+\.\d+.*", pins()["numpy"])


def test_importing_nbformat_builds_no_grammar():
    """Every classgrade and nbgrader command imports nbformat, and with it jsonschema. From
    jsonschema 4.24 on, that import also imports rfc3987-syntax where it is installed (as
    jupyter-events' format-nongpl extra brings it), which builds a parser at import: about 1 s
    of CPU per command. requirements.txt pins the jsonschema before it."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, nbformat; print('rfc3987_syntax' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "False"
