"""`python -m ops provision --stage STAGE`: deploy the infrastructure stack, record what it made.

1. Create or update the CloudFormation stack `stream-pipeline-<stage>` from infra/template.yaml (against
   AWS, or the emulator when AWS_ENDPOINT_URL is set).
2. Record the resulting names and ARNs in the stage's `environment_variables` in .chalice/config.json
   (everything else in the file is kept; settings an operator chose — EVENT_SOURCE, FANOUT_MAX_ATTEMPTS,
   API_AUTH, METRICS_NAMESPACE — are only filled in when missing). The dashboard reads METRICS_NAMESPACE.
3. Regenerate the stage's least-privilege IAM policies (.chalice/policies/<stage>/<function>.json) from
   those ARNs and point each function's `iam_policy_file` at its file.

Then `chalice deploy --stage STAGE` (or `chalice package`) works with no hand edits.
`--policies-only` skips AWS and regenerates step 3 from what config.json already records.
After `chalice deploy`, two steps give what it created the settings the `chalice package` path merges in from
infra/merge-template.yaml, and change nothing else: `--event-sources` (the mappings' failure settings) and
`--api-throttling` (the API stage's rate and burst limits). They can be given together.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.config import API_AUTH_IAM, DEFAULT_METRICS_NAMESPACE, ConfigurationError, api_auth
from ops import policies
from tooling.infrastructure import OUTPUT_VARIABLES, deploy_stack, stack_name, stage_environment
from tooling.stage import CONFIG_PATH, record_function_settings, record_stage_variables, stage_variables

HELP = "create or update the stage's resources and record their names, ARNs and IAM policies"

# Chosen by an operator, not by the stack: written only when the stage has no value yet.
OPERATOR_SETTINGS = ("EVENT_SOURCE", "FANOUT_MAX_ATTEMPTS", "API_AUTH", "METRICS_NAMESPACE")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--policies-only", action="store_true",
                      help="make no AWS call: regenerate the stage's IAM policy files from config.json")
    mode.add_argument("--event-sources", action="store_true",
                      help="after `chalice deploy`: apply infra/merge-template.yaml's failure settings to the "
                           "deployed event source mappings (no stack change)")
    parser.add_argument("--api-throttling", action="store_true",
                        help="after `chalice deploy`: apply infra/merge-template.yaml's rate and burst limits to the "
                             "deployed API stage (no stack change; combines with --event-sources)")
    parser.add_argument("--config", type=Path, default=CONFIG_PATH,
                        help="the Chalice config to record into (default .chalice/config.json; policies beside it)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds to wait for the stack to settle (default 900)")


def run(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    if args.api_throttling and args.policies_only:
        _console().print("[bold red]--api-throttling runs after `chalice deploy`; it does not combine with "
                         "--policies-only[/]")
        return 2
    if args.event_sources or args.api_throttling:
        tuned = _tune_event_sources(args.stage, config_path) if args.event_sources else 0
        throttled = _throttle_api(args.stage, config_path) if args.api_throttling else 0
        return max(tuned, throttled)
    try:
        if args.policies_only:
            outputs: dict[str, str] = {}
        else:
            existing = _existing_variables(args.stage, config_path)
            outputs = _deploy(args.stage, args.timeout, existing)
            record_stage_variables(args.stage, stage_variables_to_record(args.stage, outputs, existing), config_path)
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


def _deploy(stage: str, timeout: float, existing: Mapping[str, str]) -> dict[str, str]:
    # The dashboard shows the namespace the functions write to (a stage may choose its own).
    namespace = existing.get("METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE
    return deploy_stack(_session().client("cloudformation"), stage, timeout=timeout,
                        parameters={"MetricsNamespace": namespace})


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


def _throttle_api(stage: str, config_path: Path) -> int:
    from ops.api_throttling import StageThrottler, deployed_rest_api
    from tooling.merge_template import MERGE_TEMPLATE_PATH, stage_throttling

    try:
        throttling = stage_throttling(MERGE_TEMPLATE_PATH.read_text(), stage)
        rest_api_id, api_stage = deployed_rest_api(config_path, stage)
        applied = StageThrottler(_session().client("apigateway")).apply(rest_api_id, api_stage, throttling)
    except Exception as error:  # reported, not swallowed: the operator gets one clear line and exit 1
        _console().print(f"[bold red]API throttling of {stage} not set:[/] {type(error).__name__}: {error}")
        return 1
    _console().print(f"API stage {api_stage} of stage {stage} (REST API {rest_api_id}) ← {MERGE_TEMPLATE_PATH.name}: "
                     f"every method throttled at {applied['throttlingRateLimit']:g} requests/s, "
                     f"burst {applied['throttlingBurstLimit']}")
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
    for role in policies.OPERATOR_ACCESS:  # not Chalice's: attach it to the role that runs the verb
        policy_table.add_row(f"(operator: {role.removeprefix('operator-')})", policies.policy_path(stage, role))
    console.print(policy_table)
    try:
        routes = "every one needs IAM (SigV4)" if api_auth(env) == API_AUTH_IAM else "[bold yellow]open to anyone[/]"
    except ConfigurationError as error:
        routes = f"[bold red]{error}: chalice will refuse to package or deploy the stage[/]"
    console.print(f"API routes: {routes} (API_AUTH={env.get('API_AUTH', 'unset')}). Next: chalice deploy --stage "
                  f"{stage}, then python -m ops provision --stage {stage} --event-sources --api-throttling")
