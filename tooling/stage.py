"""A stage's configuration as recorded in `.chalice/config.json`, read and written in place."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.config import Settings

PROJECT_DIR = Path(__file__).resolve().parents[1]
CONFIG_PATH = PROJECT_DIR / ".chalice" / "config.json"


class StageConfigError(Exception):
    """The config file cannot be read, or does not hold the stage (said in one line, for the operator)."""


class UnknownStage(StageConfigError, KeyError):
    """The stage is not in the config file (a KeyError too, for callers that treat it as a lookup)."""

    def __str__(self) -> str:  # KeyError's own str() would quote the message
        return str(self.args[0]) if self.args else "unknown stage"


def load_config(path: Path = CONFIG_PATH) -> dict[str, Any]:
    """The whole Chalice config file (StageConfigError when it is missing or not JSON)."""
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise StageConfigError(f"cannot read {path}: {error.strerror or error}") from error
    except ValueError as error:
        raise StageConfigError(f"cannot read {path}: not JSON ({error})") from error


def stage_variables(stage: str, path: Path = CONFIG_PATH) -> dict[str, str]:
    """`environment_variables` of `stage` (UnknownStage, a KeyError, naming the stage when it is not configured)."""
    stages = load_config(path).get("stages", {})
    if stage not in stages:
        raise UnknownStage(f"stage {stage!r} is not in {path} (stages: {', '.join(sorted(stages))})")
    return dict(stages[stage].get("environment_variables", {}))


def stage_settings(stage: str, path: Path = CONFIG_PATH) -> Settings:
    """Settings of `stage`; variables already in the process environment win (as in Lambda)."""
    merged = stage_variables(stage, path)
    merged.update({k: v for k, v in os.environ.items() if k in merged and v})
    return Settings.from_env(merged)


def record_stage_variables(stage: str, variables: Mapping[str, str], path: Path = CONFIG_PATH) -> None:
    """Write `variables` into `stage`'s environment_variables, preserving everything else in the file."""
    config = load_config(path)
    stage_config = config.setdefault("stages", {}).setdefault(stage, {})
    stage_config.setdefault("environment_variables", {}).update(variables)
    _write_config(config, path)


def record_function_settings(stage: str, settings: Mapping[str, Mapping[str, Any]],
                             path: Path = CONFIG_PATH) -> None:
    """Merge per-function `settings` (e.g. `iam_policy_file`) into `stage`'s lambda_functions, keeping the rest."""
    config = load_config(path)
    functions = config.setdefault("stages", {}).setdefault(stage, {}).setdefault("lambda_functions", {})
    for function, values in settings.items():
        functions.setdefault(function, {}).update(values)
    _write_config(config, path)


def _write_config(config: Mapping[str, Any], path: Path) -> None:
    # Write-then-rename: a reader (chalice, a teammate's tool) never sees half a file.
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)
