"""Deploy artefacts, built once per session: `chalice package` output per stage, SAM-transformed to the
CloudFormation that AWS would deploy, and the app's functions and routes discovered from app.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHALICE_DIR = ROOT / ".chalice"
MERGE_TEMPLATE = ROOT / "infra" / "merge-template.yaml"
INFRA_TEMPLATE = ROOT / "infra" / "template.yaml"
CHALICE = str(Path(sys.executable).with_name("chalice"))

# A clean clone's files: everything but local state, caches and what is generated.
NOT_IN_A_CLONE = (".git", ".venv", "build", "dist", "deployments", "deployed", ".local-stack", "__pycache__",
                  ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "*.pyc", "*.egg-info", "*.json.tmp")


def clean_env(**extra: str) -> dict[str, str]:
    """A subprocess environment with credentials for a fake account and no stage variables leaking in."""
    env = {key: value for key, value in os.environ.items()
           if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra)
    return env


def copy_project(target: Path) -> Path:
    """A copy of the project as a clean clone has it (so chalice's caches and deployed state land there)."""
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    return target


@dataclass
class Package:
    """`chalice package --stage STAGE --merge-template infra/merge-template.yaml` output."""

    stage: str
    sam_text: str
    sam: dict[str, Any]
    cloudformation: dict[str, Any]  # after the SAM transform, as CloudFormation deploys it
    deployment_zip: Path  # the code Lambda runs

    def resources(self, kind: str, template: str = "cloudformation") -> dict[str, dict[str, Any]]:
        chosen = self.cloudformation if template == "cloudformation" else self.sam
        return {name: r for name, r in chosen["Resources"].items() if r["Type"] == kind}


def sam_to_cloudformation(sam: dict[str, Any], stage: str) -> dict[str, Any]:
    """Run the real SAM transform, as CloudFormation does on deploy (after `aws cloudformation package`
    has uploaded the code: CodeUri becomes an S3 URI)."""
    from samtranslator.translator.transform import transform

    uploaded = json.loads(json.dumps(sam))
    for resource in uploaded["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://artifacts-bucket/deployment.zip"

    class NoManagedPolicies:  # the functions name their own roles: no managed policy to look up
        def load(self) -> dict[str, str]:
            return {}

    return dict(transform(uploaded, {"Stage": stage}, NoManagedPolicies()))


def package(stage: str, workdir: Path) -> Package:
    project = copy_project(workdir / "project")
    out = workdir / "out"
    result = subprocess.run(
        [CHALICE, "package", "--stage", stage, "--merge-template", str(MERGE_TEMPLATE), str(out)],
        cwd=project, env=clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"chalice package --stage {stage} failed:\n{result.stdout}\n{result.stderr}"
    sam_text = (out / "sam.yaml").read_text()
    sam = yaml.safe_load(sam_text)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return Package(stage, sam_text, sam, sam_to_cloudformation(sam, stage), out / "deployment.zip")


@pytest.fixture(scope="session")
def prod_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    return package("prod", tmp_path_factory.mktemp("package-prod"))


@pytest.fixture(scope="session")
def dev_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    return package("dev", tmp_path_factory.mktemp("package-dev"))


@dataclass(frozen=True)
class AppShape:
    """The Lambda functions and routes app.py declares (discovered, never listed by hand)."""

    stream_functions: dict[str, str]  # name → the variable naming its stream (USERS_STREAM_ARN, ...)
    queue_functions: dict[str, str]  # name → the variable naming its queue (INGEST_QUEUE)
    routes: frozenset[tuple[str, str]]  # (path, METHOD)

    @property
    def functions(self) -> set[str]:
        """Every Lambda function Chalice deploys: the API handler and each event handler."""
        return {"api_handler", *self.stream_functions, *self.queue_functions}


def discover_app() -> AppShape:
    from chalice.app import DynamoDBEventConfig, SQSEventConfig

    from app import app

    # app.py read its variables when first imported (by whichever test came first): name them by what
    # they point at, which is the same in every stage — `<app>-<stage>-users` / `-orders` / `-ingest`.
    def variable_of(value: str) -> str:
        name = value.split(":table/", 1)[-1].split("/stream/", 1)[0]
        for suffix, variable in (("-users", "USERS_STREAM_ARN"), ("-orders", "ORDERS_STREAM_ARN"),
                                 ("-ingest", "INGEST_QUEUE")):
            if name.endswith(suffix):
                return variable
        raise AssertionError(f"an event source this deploy check does not know: {value}")

    streams = {s.name: variable_of(s.stream_arn) for s in app.event_sources if isinstance(s, DynamoDBEventConfig)}
    queues = {s.name: variable_of(s.queue) for s in app.event_sources if isinstance(s, SQSEventConfig)}
    other = [s for s in app.event_sources if not isinstance(s, DynamoDBEventConfig | SQSEventConfig)]
    assert not other, f"event sources this deploy check does not know: {other}"
    routes = frozenset((path, method) for path, methods in app.routes.items() for method in methods)
    return AppShape(streams, queues, routes)


@pytest.fixture(scope="session")
def app_shape() -> AppShape:
    return discover_app()


@pytest.fixture(scope="session")
def chalice_config() -> dict[str, Any]:
    return json.loads((CHALICE_DIR / "config.json").read_text())


@pytest.fixture
def free_port() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port
