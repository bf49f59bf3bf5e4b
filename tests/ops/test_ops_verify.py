"""verify: counts missing, stale and orphaned target items with examples; --fix repairs them."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from chalicelib import clients
from chalicelib.replication.projection import SEQUENCE_ATTRIBUTE, TargetKey, project_user, stored_sequence
from chalicelib.stream.images import typed_item
from tests.ops.ops_support import RunOps, public_target, put_items, target_by_key, user
from tests.support.faults import FaultyClient
from tests.support.resources import StageResources


def projection_of(users: list[dict[str, Any]]) -> dict[TargetKey, dict[str, Any]]:
    items = [item for item in map(project_user, users) if item is not None]
    return {TargetKey(i["state"], i["city_email"]): i for i in items}


@pytest.fixture
def drifted(aws: StageResources) -> list[dict[str, Any]]:
    """30 users replicated, then drift of each kind planted: 2 missing, 3 stale, 1 orphaned."""
    users = [user(n) for n in range(30)]
    put_items(aws["UsersTable"], users)
    target = [{**item, SEQUENCE_ATTRIBUTE: stored_sequence(str(100 + i))}
              for i, item in enumerate(projection_of(users).values())]
    stale = [{**target[2], "active": not target[2]["active"]},
             {**target[3], "city": "Wrongtown"},
             {k: v for k, v in target[4].items() if k != "active"}]
    orphan = project_user(user(99))
    put_items(aws["UsersByLocationTable"], target[5:] + stale + [orphan])  # type: ignore[list-item]
    return users


def test_verify_reports_each_kind_of_drift_with_examples_and_exits_1(
        aws: StageResources, drifted: list[dict[str, Any]], run_ops: RunOps,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = target_by_key(aws["UsersByLocationTable"])

    # WHEN verifying
    assert run_ops("verify", "--examples", "10") == 1

    # THEN the counts and the example keys are printed, and nothing was written
    out = capsys.readouterr().out
    cells = [[cell.strip() for cell in line.split("│")] for line in out.splitlines() if line.count("│") >= 4]
    counts = {row[1]: row[2] for row in cells if row[1] in ("missing", "stale", "orphaned")}
    assert counts == {"missing": "2", "stale": "3", "orphaned": "1"}
    assert drifted[0]["email"] in out and drifted[1]["email"] in out  # missing examples
    assert "user00099@example.com" in out  # the orphan
    assert "differs in: active" in out and "differs in: city" in out
    assert target_by_key(aws["UsersByLocationTable"]) == before


def test_verify_fix_clears_every_kind_of_drift(aws: StageResources, drifted: list[dict[str, Any]],
                                               run_ops: RunOps, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN verifying with --fix
    assert run_ops("verify", "--fix") == 0
    assert "drift repaired" in capsys.readouterr().out

    # THEN the target equals the projection, the stream position of repaired items is kept,
    # and a second verify finds nothing
    assert public_target(aws["UsersByLocationTable"]) == projection_of(drifted)
    stale_key = TargetKey(drifted[2]["state"], f"{drifted[2]['city']}#{drifted[2]['email']}")
    assert target_by_key(aws["UsersByLocationTable"])[stale_key][SEQUENCE_ATTRIBUTE] == stored_sequence("102")
    assert run_ops("verify") == 0


def test_verify_fix_leaves_an_item_the_stream_changed_meanwhile(
        aws: StageResources, drifted: list[dict[str, Any]], run_ops: RunOps) -> None:
    # GIVEN the stream rewrites a stale item (newer record) after verify scanned but before it repairs
    real = clients.client("dynamodb")
    stale_user = drifted[2]
    newer = {**project_user(stale_user), "active": False, SEQUENCE_ATTRIBUTE: stored_sequence("900")}  # type: ignore[dict-item]

    def stream_writes_first(call: Any, **kw: Any) -> Any:
        real.put_item(TableName=aws["UsersByLocationTable"], Item=typed_item(newer))
        return call(**kw)

    clients.override("dynamodb", FaultyClient(real, put_item=stream_writes_first))

    # WHEN verify --fix runs THEN it reports drift left alone (exit 1) and the newer item stays
    assert run_ops("verify", "--fix") == 1
    key = TargetKey(newer["state"], newer["city_email"])
    assert target_by_key(aws["UsersByLocationTable"])[key] == newer


def test_verify_of_consistent_tables_exits_0(aws: StageResources, run_ops: RunOps) -> None:
    users = [user(n) for n in range(5)]
    put_items(aws["UsersTable"], users)
    put_items(aws["UsersByLocationTable"], projection_of(users).values())
    assert run_ops("verify") == 0
    assert boto3.client("dynamodb").scan(TableName=aws["UsersByLocationTable"])["Count"] == 5
