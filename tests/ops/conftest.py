"""Operator verbs run in-process against moto: a config file naming the `test` stage's resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.__main__ import main
from tests.ops.ops_support import RunOps
from tests.support.resources import StageResources


@pytest.fixture
def stage_config(aws: StageResources, tmp_path: Path) -> Path:
    """A Chalice config whose `test` stage names the moto resources."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"version": "2.0", "app_name": "stream-pipeline",
                                "stages": {"test": {"environment_variables": aws.env()}}}))
    return path


@pytest.fixture
def run_ops(stage_config: Path, tmp_path: Path) -> RunOps:
    """`run_ops("verify", "--fix")` = `python -m ops verify --stage test --config <tmp> --fix`."""

    def run(verb: str, *options: str) -> int:
        argv = [verb, "--stage", "test", "--config", str(stage_config), *options]
        if verb in ("redrive", "status"):
            argv += ["--wait-seconds", "0"]
        if verb == "backfill" and "--checkpoint" not in options:
            argv += ["--checkpoint", str(tmp_path / "backfill.json")]
        return main(argv)

    return run
