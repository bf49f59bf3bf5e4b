"""verify: counts missing, stale and orphaned target items with examples, page by page; --fix repairs them;
a run splits across processes and resumes from its checkpoint."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import clients
from chalicelib.replication.projection import TargetKey, project_user
from chalicelib.stream.images import typed_item
from tests.ops.ops_support import RunOps, put_items, target_by_key, user
from tests.support.faults import CallCounter, FaultyClient, aws_error, raising
from tests.support.resources import StageResources


def projection_of(users: list[dict[str, Any]]) -> dict[TargetKey, dict[str, Any]]:
    items = [item for item in map(project_user, users) if item is not None]
    return {TargetKey(i["state"], i["city_email"]): i for i in items}


def drift_counts(out: str) -> dict[str, str]:
    cells = [[cell.strip() for cell in line.split("│")] for line in out.splitlines() if line.count("│") >= 4]
    return {row[1]: row[2] for row in cells if len(row) > 2 and row[1] in ("missing", "stale", "orphaned")}


@pytest.fixture
def drifted(aws: StageResources) -> list[dict[str, Any]]:
    """30 users replicated, then drift of each kind planted: 2 missing, 4 stale (one only by type), 1 orphaned."""
    users = [user(n) for n in range(30)]
    put_items(aws["UsersTable"], users)
    target = list(projection_of(users).values())
    stale = [{**target[2], "active": not target[2]["active"]},
             {**target[3], "city": "Wrongtown"},
             {k: v for k, v in target[4].items() if k != "active"},
             {**target[6], "active": Decimal(1)}]  # user 6 is active (true): the number 1 is another type
    assert users[6]["active"] is True
    orphan = project_user(user(99))
    put_items(aws["UsersByLocationTable"], [target[5], *target[7:], *stale, orphan])  # type: ignore[list-item]
    return users


def test_verify_reports_each_kind_of_drift_with_examples_and_exits_1(
        aws: StageResources, drifted: list[dict[str, Any]], run_ops: RunOps,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = target_by_key(aws["UsersByLocationTable"])

    # WHEN verifying
    assert run_ops("verify", "--examples", "10", "--no-progress") == 1

    # THEN the counts and the example keys are printed, and nothing was written
    out = capsys.readouterr().out
    assert drift_counts(out) == {"missing": "2", "stale": "4", "orphaned": "1"}
    assert drifted[0]["email"] in out and drifted[1]["email"] in out  # missing examples
    assert "user00099@example.com" in out  # the orphan
    assert "differs in: active" in out and "differs in: city" in out
    assert f"{drifted[6]['email']}  differs in: active" in out  # true vs 1: same in Python, not in DynamoDB
    assert target_by_key(aws["UsersByLocationTable"]) == before


def test_verify_reads_both_tables_page_by_page_and_the_target_by_key(
        aws: StageResources, drifted: list[dict[str, Any]], run_ops: RunOps) -> None:
    counter = CallCounter(clients.client("dynamodb"))

    assert run_ops("verify", "--segments", "2", "--page-size", "10", "--no-progress") == 1

    scans = [params for name, params in counter.requests if name == "Scan"]
    gets = [params for name, params in counter.requests if name == "BatchGetItem"]
    # Every Scan is one page of one segment, strongly consistent; the other side is read by key, ≤ 100 a call
    assert scans and all(p["Limit"] == 10 and p["TotalSegments"] == 2 and p["ConsistentRead"] for p in scans)
    assert {p["TableName"] for p in scans} == {aws["UsersTable"], aws["UsersByLocationTable"]}
    assert gets and all(len(keys["Keys"]) <= 100 and keys["ConsistentRead"]
                        for p in gets for keys in p["RequestItems"].values())
    # 30 users and 29 target items in pages of ≤ 10 (+ the empty last page a segment may end with)
    assert len(scans) <= 2 * (30 // 10 + 2 * 2)


def test_verify_fix_clears_every_kind_of_drift(aws: StageResources, drifted: list[dict[str, Any]],
                                               run_ops: RunOps, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN verifying with --fix
    assert run_ops("verify", "--fix", "--no-progress") == 0
    out = capsys.readouterr().out
    assert "drift repaired" in out

    # THEN the target equals the projection exactly (types too), and a second verify finds nothing
    target = target_by_key(aws["UsersByLocationTable"])
    assert target == projection_of(drifted)
    assert all(type(item["active"]) is bool for item in target.values())
    assert run_ops("verify", "--no-progress") == 0


def test_verify_fix_leaves_an_item_the_stream_changed_meanwhile(
        aws: StageResources, drifted: list[dict[str, Any]], run_ops: RunOps) -> None:
    # GIVEN the stream rewrites a stale item (the user's newer state) after verify read it, before it repairs it
    real = clients.client("dynamodb")
    stale_user = drifted[3]  # its target item says city Wrongtown
    newer = {**project_user(stale_user), "active": not stale_user["active"]}  # type: ignore[dict-item]

    def stream_writes_first(call: Any, **kw: Any) -> Any:
        if kw["Item"]["city_email"] == {"S": newer["city_email"]}:  # verify's repair of that very item
            real.put_item(TableName=aws["UsersByLocationTable"], Item=typed_item(newer))
        return call(**kw)

    clients.override("dynamodb", FaultyClient(real, put_item=stream_writes_first))

    # WHEN verify --fix runs THEN it reports drift left alone (exit 1) and the newer item stays
    assert run_ops("verify", "--fix", "--no-progress") == 1
    key = TargetKey(newer["state"], newer["city_email"])
    assert target_by_key(aws["UsersByLocationTable"])[key] == newer



def test_verify_fix_stops_at_a_systemic_fault_without_retrying(
        aws: StageResources, drifted: list[dict[str, Any]], run_ops: RunOps,
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN verify's role may read both tables but not write the target
    before = target_by_key(aws["UsersByLocationTable"])
    denied = raising(aws_error("dynamodb", "PutItem", "AccessDeniedException", "not authorized"))
    faulty = FaultyClient(clients.client("dynamodb"), put_item=denied, delete_item=denied)
    clients.override("dynamodb", faulty)

    # WHEN verify --fix runs (one scan thread)
    status = run_ops("verify", "--fix", "--no-progress", "--segments", "1")

    # THEN each scan stops at its first denied write, says why, keeps its progress, and never retried
    out = capsys.readouterr().out
    assert status == 1
    assert "AccessDeniedException" in out and "verify stopped" in out
    # one denied write per scan thread (the source's and the target's), not one per drifted item
    assert faulty.calls["put_item"] + faulty.calls["delete_item"] == 2
    assert target_by_key(aws["UsersByLocationTable"]) == before

def test_verify_of_consistent_tables_exits_0(aws: StageResources, run_ops: RunOps) -> None:
    users = [user(n) for n in range(5)]
    put_items(aws["UsersTable"], users)
    put_items(aws["UsersByLocationTable"], projection_of(users).values())
    assert run_ops("verify", "--no-progress") == 0
    assert boto3.client("dynamodb").scan(TableName=aws["UsersByLocationTable"])["Count"] == 5


def test_two_processes_split_one_run_and_together_cover_every_item_once(
        aws: StageResources, drifted: list[dict[str, Any]], run_ops: RunOps,
        capsys: pytest.CaptureFixture[str]) -> None:
    counter = CallCounter(clients.client("dynamodb"))
    found: dict[int, dict[str, int]] = {}
    segments: dict[int, set[int]] = {}
    for share in (0, 1):
        # WHEN share 0 and share 1 of a run split in two each verify (3 threads each: 6 scan segments)
        start = len(counter.requests)
        code = run_ops("verify", "--segments", "3", "--segment", str(share), "--total-segments", "2",
                       "--page-size", "4", "--no-progress")
        out = capsys.readouterr().out
        assert code in (0, 1) and "share" in out
        found[share] = {kind: int(count) for kind, count in drift_counts(out).items()}
        scans = [p for name, p in counter.requests[start:] if name == "Scan"]
        assert {p["TotalSegments"] for p in scans} == {6}
        segments[share] = {p["Segment"] for p in scans}

    # THEN each read the segments ≡ its share (mod 2), and their counts add up to the whole table's drift
    assert segments == {0: {0, 2, 4}, 1: {1, 3, 5}}
    assert {kind: found[0][kind] + found[1][kind] for kind in found[0]} == {"missing": 2, "stale": 4, "orphaned": 1}


def test_a_segment_outside_the_split_is_a_usage_error(run_ops: RunOps, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ops("verify", "--segment", "2", "--total-segments", "2") == 2
    assert "--segment must be from 0 to 1" in capsys.readouterr().err


def test_an_interrupted_verify_resumes_and_counts_each_item_once(
        aws: StageResources, drifted: list[dict[str, Any]], run_ops: RunOps, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a verify that crashes on its 6th Scan request
    real = clients.client("dynamodb")
    scans = {"count": 0}
    lock = threading.Lock()

    def crash_on_sixth(call: Any, **kw: Any) -> Any:
        with lock:
            scans["count"] += 1
            if scans["count"] == 6:
                raise RuntimeError("injected crash")
        return call(**kw)

    clients.override("dynamodb", FaultyClient(real, scan=crash_on_sixth))
    checkpoint = tmp_path / "verify.json"
    options = ("--segments", "2", "--page-size", "5", "--checkpoint", str(checkpoint), "--no-progress")

    # WHEN it runs THEN it stops (exit 1) keeping its progress
    assert run_ops("verify", *options) == 1
    assert "verify stopped" in capsys.readouterr().out
    saved = json.loads(checkpoint.read_text())
    assert not all(s["done"] for segments in saved["scans"].values() for s in segments)

    # WHEN the same command runs again THEN it resumes and reports exactly the drift there is
    clients.override("dynamodb", real)
    assert run_ops("verify", *options) == 1
    out = capsys.readouterr().out
    assert "resumed from" in out
    assert drift_counts(out) == {"missing": "2", "stale": "4", "orphaned": "1"}
    assert not checkpoint.exists()


def test_a_checkpoint_of_another_run_is_refused(aws: StageResources, drifted: list[dict[str, Any]], run_ops: RunOps,
                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a checkpoint left by a verify without --fix
    checkpoint = tmp_path / "verify.json"
    checkpoint.write_text(json.dumps({"identity": {"verb": "verify", "source": aws["UsersTable"],
                                                   "target": aws["UsersByLocationTable"], "share": "0 of 1",
                                                   "fix": False},
                                      "total_segments": 1, "scans": {"source": [{"segment": 0}],
                                                                     "target": [{"segment": 0}]}}))
    # WHEN verify --fix runs on it THEN it refuses (exit 2) and repairs nothing
    before = target_by_key(aws["UsersByLocationTable"])
    assert run_ops("verify", "--fix", "--checkpoint", str(checkpoint), "--no-progress") == 2
    assert "use --restart" in capsys.readouterr().out
    assert target_by_key(aws["UsersByLocationTable"]) == before
