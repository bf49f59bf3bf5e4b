"""Layers point one way: each package, with every one of its modules imported in a fresh interpreter, has not
imported a package it must not know (`sys.modules` is the truth: it catches imports made inside functions
that ran at import time, and imports a module makes through another)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package → the project packages it must never import (directly or through another module)
FORBIDDEN = {
    "chalicelib": {"ops", "local_stack", "tooling", "app"},  # ships to Lambda: knows nothing of the tooling
    "tooling": {"ops", "local_stack", "app"},  # shared by ops and local_stack: imports neither
    "ops": {"local_stack"},
    "local_stack": {"ops"},
}

# ... and the point of the tooling layer: what both need is one copy, imported by each
SHARED = {"ops": {"tooling"}, "local_stack": {"tooling"}}

PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module({package!r})
for module in pkgutil.walk_packages(package.__path__, {package!r} + "."):
    importlib.import_module(module.name)
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def imported_by(package: str) -> set[str]:
    """The top-level packages in `sys.modules` once every module of `package` is imported, in a new process."""
    result = subprocess.run([sys.executable, "-c", PROBE.format(package=package)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_no_layer_it_must_not_know(package: str) -> None:
    loaded = imported_by(package)
    assert package in loaded
    assert not loaded & FORBIDDEN[package], f"{package} imports {sorted(loaded & FORBIDDEN[package])}"
    assert SHARED.get(package, set()) <= loaded
