"""`make` on a machine whose Python is too old: one line naming the version needed, nothing created (SPEC
"Commands"). Each case runs the real Makefile, in a scratch copy of the project's top level, with a PATH that
holds only stand-in interpreters: the real one started with its reported `sys.version_info` changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
VENV_GOALS = ["", "venv", "test", "run", "demo", "lint", "package"]

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed (every README command needs it)")


class Machine:
    """A scratch project (the Makefile and the requirements it depends on) and a PATH of chosen interpreters."""

    def __init__(self, root: Path):
        self.project = root / "project"
        self.bin = root / "bin"
        self.home = root / "home"  # no ~/.pyenv: only PATH decides
        for folder in (self.project, self.bin, self.home):
            folder.mkdir()
        for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
            shutil.copy(ROOT / name, self.project / name)
        rm = shutil.which("rm")  # what `make clean` runs; no other tool is on this PATH
        assert rm is not None
        (self.bin / "rm").symlink_to(rm)

    def python(self, name: str, version: tuple[int, int, int]) -> Path:
        """`name` on PATH: this test's interpreter, reporting `version` as its sys.version_info."""
        site = self.bin.parent / f"site-{name}"
        site.mkdir()
        (site / "sitecustomize.py").write_text(f"import sys\nsys.version_info = {(*version, 'final', 0)!r}\n")
        return self._script(name, f'PYTHONPATH="{site}" exec "{sys.executable}" "$@"')

    def broken(self, name: str) -> Path:
        """`name` on PATH but failing, as a pyenv shim does for a version that is not selected."""
        return self._script(name, f'echo "pyenv: {name}: command not found" >&2; exit 127')

    def _script(self, name: str, body: str) -> Path:
        path = self.bin / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
        return path

    def make(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": str(self.bin), "HOME": str(self.home), "PYENV_ROOT": str(self.home / ".pyenv"), "LANG": "C"}
        assert MAKE is not None
        return subprocess.run([MAKE, "--no-print-directory", *args], cwd=self.project, env=env, capture_output=True,
                              text=True, timeout=60)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


@pytest.mark.parametrize("goal", VENV_GOALS)
def test_an_older_python_stops_every_goal_at_once_with_one_line_and_creates_nothing(machine: Machine, goal: str):
    # GIVEN a machine whose only Python is 3.11.7, and a pyenv shim for 3.13 that is not selected
    machine.python("python3", (3, 11, 7))
    machine.broken("python3.13")
    # WHEN a newcomer runs make
    done = machine.make(*([goal] if goal else []))
    # THEN make stops with one line naming the version needed and what it found; no .venv, no traceback
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0
    assert len(output.splitlines()) == 1, output
    assert "Python 3.12 or newer is needed (found 3.11.7 at " in output, output
    assert not (machine.project / ".venv").exists()


def test_no_python_at_all_is_the_same_one_line(machine: Machine):
    done = machine.make("test")
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0 and len(output.splitlines()) == 1, output
    assert "Python 3.12 or newer is needed (found none: " in output, output


def test_python_3_13_is_preferred_then_3_12_then_python3(machine: Machine):
    # GIVEN python3 (3.11) and python3.12 that run, and a python3.13 that does not
    machine.python("python3", (3, 11, 7))
    twelve = machine.python("python3.12", (3, 12, 1))
    machine.broken("python3.13")
    # THEN .venv would be made by 3.12 (make -n: what it would run)
    planned = machine.make("-n", "venv")
    assert planned.returncode == 0, planned.stderr
    assert f"creating .venv with Python 3.12.1 ({sys.executable})" in planned.stdout
    assert f"{sys.executable} -m venv .venv" in planned.stdout
    # AND once python3.13 runs, by 3.13
    twelve.unlink()
    machine.bin.joinpath("python3.13").unlink()
    machine.python("python3.13", (3, 13, 0))
    assert "creating .venv with Python 3.13.0" in machine.make("-n", "venv").stdout


def test_a_new_enough_python3_is_used_when_there_is_no_versioned_name(machine: Machine):
    machine.python("python3", (3, 14, 2))
    assert "creating .venv with Python 3.14.2" in machine.make("-n", "venv").stdout


def test_a_venv_made_by_an_older_python_is_refused_in_one_line_naming_make_clean(machine: Machine):
    # GIVEN a .venv left by an earlier Makefile that took any python3 (here: 3.11)
    old = machine.python("python3", (3, 11, 7))
    (machine.project / ".venv" / "bin").mkdir(parents=True)
    (machine.project / ".venv" / "bin" / "python").symlink_to(old)
    done = machine.make("test")
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0 and len(output.splitlines()) == 1, output
    assert "(.venv was made with 3.11.7): run `make clean`, then make again" in output, output
    # AND make clean needs no Python at all
    assert machine.make("clean").returncode == 0
    assert not (machine.project / ".venv").exists()


def test_a_real_older_interpreter_gets_the_same_line(machine: Machine):
    candidates = [shutil.which(name) for name in ("python3.11", "python3.10", "python3.9", "python3")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob("3.1[01]*/bin/python3.1[01]"))]
    found = next(filter(None, map(older_interpreter, filter(None, candidates))), None)
    if found is None:
        pytest.skip("no Python older than 3.12 on this machine (the stand-in cases above cover the refusal)")
    (machine.bin / "python3").symlink_to(found)
    done = machine.make("run")
    output = (done.stdout + done.stderr).strip()
    assert len(output.splitlines()) == 1 and "Python 3.12 or newer is needed (found 3." in output, output
    assert not (machine.project / ".venv").exists()


def older_interpreter(command: str) -> str | None:
    """The real executable behind `command` (a shim resolves to its interpreter) when it runs and is < 3.12."""
    probe = subprocess.run([command, "-c", "import sys; print(sys.version_info < (3, 12), sys.executable)"],
                           capture_output=True, text=True)
    older, _, executable = probe.stdout.strip().partition(" ")
    return executable if probe.returncode == 0 and older == "True" else None
