"""The README's shell blocks, run as written against a local stack that `make run` started.

Every fenced shell block in README.md carries a marker on the line before it:

    <!-- readme-test: local NAME -->       run, in README order, in one terminal: what a block exports or
                                           activates is there for the blocks after it, as for a reader;
    <!-- readme-test: background NAME -->  a server that runs until Ctrl-C (it names its `--port`): started,
                                           waited for, stopped when the module ends;
    <!-- readme-test: skip NAME -->        not run: NAME is in SKIPPED below, with the reason.

A shell block without a marker fails the test, so README edits stay honest. The terminal starts as a fresh
one would: no AWS variables (nor the user's ~/.aws), no stage variables, no active venv. The README's ports
(emulator 4566, API 8000, `chalice local` 8001) are replaced by free ones, since tests never take fixed
ports; `make demo` gets them the way make allows, as EMULATOR_PORT and API_PORT in the environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, LocalStackProcess, free_port

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
MAKE = shutil.which("make")
BLOCK_TIMEOUT = 180.0  # `make demo` waits up to 15 s per flow on a busy machine
SHELL_LANGUAGES = {"sh", "bash", "shell", "console", "zsh"}
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<kind>local|background|skip)\s+(?P<name>[a-z0-9][a-z0-9-]*)"
                    r"\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<language>[\w-]*)\s*$")

# Blocks that are not run, by name: why each one cannot be.
SKIPPED = {
    "two-commands": "`make run` is how this test starts the stack it runs against, and `make test` is the suite "
                    "this test runs in",
    "clone": "needs the repository's URL; this test runs in a clone already",
    "make-run": "this very command (`make run`, ports from the environment) starts the stack this test runs against",
    "deploy-prod": "creates a CloudFormation stack, IAM roles, Lambda functions and an API in a real AWS account",
    "package-prod": "uploads to an S3 bucket and deploys a CloudFormation stack in a real AWS account",
    "operate-prod": "reads and writes the prod stage's tables and queues in a real AWS account",
    "signed-call": "calls a deployed prod API (SigV4) in a real AWS account",
    "verify-split": "reads the prod stage's tables in a real AWS account, from two machines",
    "bench": "takes about 20 minutes and rewrites BENCHMARKS.md; tests/project/test_bench.py runs its --quick mode",
}

# What each block must print (stdout and stderr together), besides exiting 0.
EXPECTED = {
    "demo": ["Columbus", "REMOVE", "iPhone 15", "PROCESSED", "7.25"],
    "point-at-the-stack": ["stream-pipeline-dev-users", "stream-pipeline-dev-device-metadata",
                           "stream-pipeline-dev-ingest"],
    "chalice-local-call": ['"Code":"NotFoundError"', 'email: no user \\"nobody@example.com\\"'],
    "subscribe": ['"detail-type":"MODIFY"', '"changedAttributes":["city","updated_at"]', '"city":"Dallas"'],
    "ingest": ['"MessageId"', '"Items"'],
    "orders": ["202 Accepted", "Location: /orders/", '"status":"PENDING"'],
    "metrics": ['"Datapoints"', '"Sum": ', "replication", "fanout", "ingest", "orders"],  # a datapoint, not []
}


@dataclass(frozen=True)
class Block:
    """One fenced block of the README: where it starts, its marker (if any) and its code."""

    line: int
    language: str
    kind: str | None
    name: str | None
    code: str


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block, with the marker on the line before its fence (blank lines between are allowed)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start, fence, indent = index, opening["fence"], len(opening["indent"])
        index += 1
        body = []
        while index < len(lines) and lines[index].strip() != fence:
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index].lstrip())
            index += 1
        index += 1
        before = start - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = MARKER.match(lines[before]) if before >= 0 else None
        blocks.append(Block(start + 1, opening["language"].lower(), marker["kind"] if marker else None,
                            marker["name"] if marker else None, "\n".join(body)))
    return blocks


BLOCKS = readme_blocks(README.read_text())
SHELL_BLOCKS = [block for block in BLOCKS if block.language in SHELL_LANGUAGES or block.kind]


def test_every_shell_block_is_marked_and_named_once():
    unmarked = [f"README.md:{b.line} ({b.language or 'no language'})" for b in BLOCKS
                if (b.language in SHELL_LANGUAGES or not b.language) and b.kind is None]
    assert not unmarked, ("each shell block needs `<!-- readme-test: local|background|skip NAME -->` on the line "
                          f"before it (and every block a language): {unmarked}")
    names = [block.name for block in SHELL_BLOCKS]
    assert len(names) == len(set(names)), f"a block name is used twice: {names}"


def test_every_skipped_block_is_listed_with_its_reason_and_every_expectation_has_its_block():
    skipped = {block.name for block in SHELL_BLOCKS if block.kind == "skip"}
    assert skipped == set(SKIPPED), f"skip markers {sorted(skipped)} != SKIPPED {sorted(SKIPPED)}"
    run = {block.name for block in SHELL_BLOCKS if block.kind in ("local", "background")}
    assert set(EXPECTED) <= run, f"expectations for blocks that are not run: {sorted(set(EXPECTED) - run)}"


class Terminal:
    """A reader's terminal beside `make run`: the shell state one block leaves is the next one's."""

    def __init__(self, stack: LocalStackProcess, folder: Path):
        self.folder = folder
        self.state = folder / "state.sh"
        self.ports = {"4566": stack.emulator.rsplit(":", 1)[1], "8000": stack.api.rsplit(":", 1)[1],
                      "8001": str(free_port())}
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []
        stage_variables = set(json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]
                              ["environment_variables"])
        venv_bin = str(ROOT / ".venv" / "bin")
        self.env = {name: value for name, value in os.environ.items()
                    if not name.startswith(("AWS_", "MAKE", "PYTEST_")) and name not in stage_variables
                    and name not in ("COLUMNS", "VIRTUAL_ENV", "MFLAGS")}
        self.env["PATH"] = os.pathsep.join(p for p in self.env.get("PATH", "").split(os.pathsep) if p != venv_bin)
        self.env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                        EMULATOR_PORT=self.ports["4566"], API_PORT=self.ports["8000"])
        self.state.write_text("")

    def here(self, code: str) -> str:
        """The block with the README's ports replaced by this stack's."""
        code = re.sub(r"\b(127\.0\.0\.1|localhost):(4566|8000|8001)\b",
                      lambda m: f"{m[1]}:{self.ports[m[2]]}", code)
        return re.sub(r"(--port\s+)(4566|8000|8001)\b", lambda m: f"{m[1]}{self.ports[m[2]]}", code)

    def run(self, block: Block) -> subprocess.CompletedProcess[str]:
        script = f"source {self.state}\nset -eo pipefail\n{self.here(block.code)}\nexport -p > {self.state}\n"
        return subprocess.run(["bash", "-c", script], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT, stdin=subprocess.DEVNULL)

    def start(self, block: Block) -> None:
        code = self.here(block.code)
        port = re.search(r"--port\s+(\d+)", code)
        assert port, f"background block {block.name} must name its --port"
        log = self.folder / f"{block.name}.log"
        with log.open("wb") as out:  # the server keeps its own copy of the descriptor
            process = subprocess.Popen(["bash", "-c", f"source {self.state}\n{code}"], cwd=ROOT, env=self.env,
                                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)  # its own group: Ctrl-C reaches all of it
        self.background.append((process, log))
        deadline = time.monotonic() + 60
        while not _accepts(int(port[1])):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{block.name} did not start serving on {port[1]}:\n{log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        for process, _ in self.background:
            if process.poll() is None:
                try:  # SIGTERM: chalice local's reloader does not stop on SIGINT without a terminal
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
                except ProcessLookupError:
                    pass


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def terminal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    """`make run` (any free ports) and a reader's terminal beside it; both stopped at the end."""
    if MAKE is None:
        pytest.skip("make is not installed: the README's first command needs it")
    stack = LocalStackProcess(command=[MAKE, "--no-print-directory", "run"],
                              env={"EMULATOR_PORT": "0", "API_PORT": "0"})
    reader = None
    try:
        stack.wait_ready()
        reader = Terminal(stack, tmp_path_factory.mktemp("readme-terminal"))
        yield reader
    finally:
        if reader is not None:
            reader.stop()
        stack.stop()


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda block: block.name or f"line-{block.line}")
def test_readme_block(terminal: Terminal, block: Block):
    if block.kind == "skip":
        pytest.skip(f"{block.name}: {SKIPPED.get(block.name or '', 'not listed in SKIPPED')}")
    assert block.kind in ("local", "background"), f"README.md:{block.line} has no readme-test marker"
    if block.kind == "background":
        terminal.start(block)
        return
    done = terminal.run(block)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"README.md:{block.line} ({block.name}) exited {done.returncode}:\n{output}"
    missing = [text for text in EXPECTED.get(block.name or "", []) if text not in output]
    assert not missing, f"README.md:{block.line} ({block.name}) did not print {missing}:\n{output}"


def test_an_unmarked_shell_block_is_found_and_markers_are_read_through_blank_lines_and_indentation():
    text = ("<!-- readme-test: local one -->\n\n```sh\necho 1\n```\n\n"
            "1. a list item:\n\n   <!-- readme-test: skip two -->\n   ```bash\n   echo 2\n     indented\n   ```\n\n"
            "```json\n{}\n```\n\n```bash\necho 3\n```\n")
    blocks = readme_blocks(text)
    assert [(b.language, b.kind, b.name, b.code) for b in blocks] == [
        ("sh", "local", "one", "echo 1"), ("bash", "skip", "two", "echo 2\n  indented"), ("json", None, None, "{}"),
        ("bash", None, None, "echo 3")]
