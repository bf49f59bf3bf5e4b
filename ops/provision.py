"""`python -m ops provision --stage STAGE`: deploy the infrastructure stack, record what it made.

1. Create or update the CloudFormation stack `stream-pipeline-<stage>` from infra/template.yaml (against
   AWS, or the emulator when AWS_ENDPOINT_URL is set).
2. Record the resulting names and ARNs in the stage's `environment_variables` in .chalice/config.json
   (everything else in the file is kept; settings an operator chose — EVENT_SOURCE, FANOUT_MAX_ATTEMPTS,
   API_AUTH — are only filled in when missing).
3. Regenerate the stage's least-privilege IAM policies (.chalice/policies/<stage>/<function>.json) from
   those ARNs and point each function's `iam_policy_file` at its file.

Then `chalice deploy --stage STAGE` (or `chalice package`) works with no hand edits.
`--policies-only` skips AWS and regenerates step 3 from what config.json already records.
`--event-sources`, run after `chalice deploy`, gives the deployed event source mappings the failure settings
of infra/merge-template.yaml (what the `chalice package` path merges in), and changes nothing else.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ops import policies
from tooling.infrastructure import OUTPUT_VARIABLES, deploy_stack, stack_name, stage_environment
from tooling.stage import CONFIG_PATH, record_function_settings, record_stage_variables, stage_variables

HELP = "create or update the stage's resources and record their names, ARNs and IAM policies"

# Chosen by an operator, not by the stack: written only when the stage has no value yet.
OPERATOR_SETTINGS = ("EVENT_SOURCE", "FANOUT_MAX_ATTEMPTS", "API_AUTH")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--policies-only", action="store_true",
                      help="make no AWS call: regenerate the stage's IAM policy files from config.json")
    mode.add_argument("--event-sources", action="store_true",
                      help="after `chalice deploy`: apply infra/merge-template.yaml's failure settings to the "
                           "deployed event source mappings (no stack change)")
    parser.add_argument("--config", type=Path, default=CONFIG_PATH,
                        help="the Chalice config to record into (default .chalice/config.json; policies beside it)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds to wait for the stack to settle (default 900)")


def run(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    if args.event_sources:
        return _tune_event_sources(args.stage, config_path)
    try:
        if args.policies_only:
            outputs: dict[str, str] = {}
        else:
            outputs = _deploy(args.stage, args.timeout)
            record_stage_variables(args.stage, stage_variables_to_record(
                args.stage, outputs, _existing_variables(args.stage, config_path)), config_path)
        env = stage_variables(args.stage, config_path)
        written = policies.write_policies(config_path.parent, args.stage, env)
        record_function_settings(args.stage, {fn: {"iam_policy_file": rel} for fn, rel in written.items()},
                                 config_path)
    except Exception as error:  # reported, not swallowed: the operator gets one clear line and exit 1
        _console().print(f"[bold red]provision {args.stage} failed:[/] {type(error).__name__}: {error}")
        return 1
    _print_summary(args.stage, outputs, env, written, config_path)
    return 0


def stage_variables_to_record(stage: str, outputs: Mapping[str, str],
                              existing: Mapping[str, str]) -> dict[str, str]:
    """The variables to write for a stack's `outputs`: every resource, operator settings only when unset."""
    variables = stage_environment(outputs)
    variables.setdefault("API_AUTH", "none" if stage == "dev" else "iam")  # secure unless it is the open dev
    for name in OPERATOR_SETTINGS:
        if existing.get(name):
            variables.pop(name, None)
    return variables


def _session() -> Any:
    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        raise RuntimeError("no AWS region: set AWS_DEFAULT_REGION (or a profile's region)")
    return session


def _deploy(stage: str, timeout: float) -> dict[str, str]:
    return deploy_stack(_session().client("cloudformation"), stage, timeout=timeout)


def _tune_event_sources(stage: str, config_path: Path) -> int:
    from rich.table import Table

    from ops.event_sources import MappingTuner
    from tooling.merge_template import MERGE_TEMPLATE_PATH, Scope, mapping_settings

    try:
        arns = policies.StageArns.from_environment(stage, stage_variables(stage, config_path))
        settings = mapping_settings(MERGE_TEMPLATE_PATH.read_text(),
                                    Scope(stage, arns.partition, arns.region, arns.account))
        updated = MappingTuner(_session().client("lambda")).apply(settings)
    except Exception as error:  # reported, not swallowed: the operator gets one clear line and exit 1
        _console().print(f"[bold red]event sources of {stage} not updated:[/] {type(error).__name__}: {error}")
        return 1
    table = Table(title=f"event source mappings of stage {stage} ← {MERGE_TEMPLATE_PATH.name}",
                  title_justify="left")
    table.add_column("function")
    table.add_column("settings", overflow="fold")
    for function, uuids in updated.items():
        values = ", ".join(f"{k}={v}" for k, v in sorted(settings[function].items()))
        table.add_row(f"{function} ({len(uuids)})", values)
    _console().print(table)
    return 0


def _existing_variables(stage: str, config_path: Path) -> dict[str, str]:
    try:
        return stage_variables(stage, config_path)
    except KeyError:
        return {}  # a new stage: provision creates it


def _console() -> Any:
    from rich.console import Console

    console = Console()
    # Piped or in CI rich assumes 80 columns, which folds every ARN; a log can be wider.
    return console if console.is_terminal else Console(width=160)


def _print_summary(stage: str, outputs: Mapping[str, str], env: Mapping[str, str],
                   written: Mapping[str, str], config_path: Path) -> None:
    from rich.table import Table

    console = _console()
    if outputs:
        table = Table(title=f"stack {stack_name(stage)} → {config_path}", title_justify="left")
        table.add_column("output")
        table.add_column("recorded as")
        table.add_column("value", overflow="fold")
        for output, value in sorted(outputs.items()):
            table.add_row(output, OUTPUT_VARIABLES.get(output, "—"), value)
        console.print(table)
    policy_table = Table(title=f"IAM policies of stage {stage} (autogen_policy off)", title_justify="left")
    policy_table.add_column("function")
    policy_table.add_column("iam_policy_file (in .chalice/)")
    for function, relative in written.items():
        policy_table.add_row(function, relative)
    console.print(policy_table)
    console.print(f"API write routes: {'IAM (SigV4)' if env.get('API_AUTH') == 'iam' else 'open'} "
                  f"(API_AUTH={env.get('API_AUTH', 'none')}). Next: chalice deploy --stage {stage}")
