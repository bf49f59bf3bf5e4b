"""backfill: every pre-existing user lands in the target once, never over newer data, resumably."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import clients
from chalicelib.replication.projection import TargetKey, project_user
from chalicelib.stream.images import plain_item, typed_item
from tests.ops.ops_support import RunOps, put_items, target_by_key, user
from tests.support.faults import CallCounter, FaultyClient
from tests.support.resources import StageResources


def expected_target(users: list[dict[str, Any]]) -> dict[TargetKey, dict[str, Any]]:
    projected = [item for item in map(project_user, users) if item is not None]
    return {TargetKey(item["state"], item["city_email"]): item for item in projected}


class PutRecorder:
    """Counts target puts that landed (successful PutItem), per key, across threads."""

    def __init__(self, target_table: str):
        self.target_table = target_table
        self.puts: Counter[TargetKey] = Counter()
        self._lock = threading.Lock()

    def __call__(self, real: Any, **kw: Any) -> Any:
        answer = real(**kw)
        if kw["TableName"] == self.target_table:
            item = plain_item(kw["Item"])
            with self._lock:
                self.puts[TargetKey(item["state"], item["city_email"])] += 1
        return answer


def test_backfill_of_2000_items_then_verify_finds_no_drift(aws: StageResources, run_ops: RunOps,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN 2,000 users written before the consumer existed, and 3 with no city (no target item)
    users = [user(n) for n in range(2000)]
    homeless = [{k: v for k, v in user(n).items() if k != "city"} for n in range(2000, 2003)]
    put_items(aws["UsersTable"], users + homeless)
    counter = CallCounter(clients.client("dynamodb"))

    # WHEN the operator backfills
    assert run_ops("backfill", "--segments", "4", "--page-size", "250") == 0

    # THEN the target is exactly the projection: one conditional put per user, reads batched by 100
    assert target_by_key(aws["UsersByLocationTable"]) == expected_target(users)
    assert counter["PutItem"] == 2000
    assert counter["BatchGetItem"] <= 2 * (2000 // 100 + 4 * 3)  # target check + source re-read per page
    assert counter["BatchWriteItem"] == 0 and counter["TransactWriteItems"] == 0
    out = capsys.readouterr().out
    assert "backfill complete" in out and "2,000" in out
    assert "items/s" in out and "ETA" in out  # the progress bar's rate and time left

    # AND verify finds no drift
    assert run_ops("verify") == 0
    assert "no drift" in capsys.readouterr().out


def test_backfill_never_overwrites_a_newer_target_item(aws: StageResources, run_ops: RunOps) -> None:
    # GIVEN the stream already replicated a newer state of user 1 (inactive) that backfill's scan cannot see
    users = [user(n) for n in range(20)]
    put_items(aws["UsersTable"], users)
    newer = project_user(user(1, active=False))
    assert newer is not None
    put_items(aws["UsersByLocationTable"], [newer])

    # WHEN backfilling
    assert run_ops("backfill") == 0

    # THEN that item is untouched and every other user was copied
    target = target_by_key(aws["UsersByLocationTable"])
    key = TargetKey(newer["state"], newer["city_email"])
    assert target[key] == newer
    assert len(target) == 20


def test_a_user_moved_or_deleted_during_backfill_is_not_resurrected(aws: StageResources, run_ops: RunOps) -> None:
    # GIVEN users 0..9, and the source changing between backfill's scan and its first write:
    # user 3 moves to Shelbyville, user 4 is deleted
    users = [user(n) for n in range(10)]
    put_items(aws["UsersTable"], users)
    real = clients.client("dynamodb")
    changed = {"done": False}

    def change_source_first(call: Any, **kw: Any) -> Any:
        if not changed["done"]:
            changed["done"] = True
            real.update_item(TableName=aws["UsersTable"], Key=typed_item({"email": users[3]["email"]}),
                             UpdateExpression="SET city = :c", ExpressionAttributeValues={":c": {"S": "Shelbyville"}})
            real.delete_item(TableName=aws["UsersTable"], Key=typed_item({"email": users[4]["email"]}))
        return call(**kw)

    clients.override("dynamodb", FaultyClient(real, put_item=change_source_first))

    # WHEN backfilling (one segment, one page)
    assert run_ops("backfill", "--segments", "1") == 0

    # THEN the moved user is copied where it lives now, the deleted one not at all
    now = [u for u in users if u["email"] != users[4]["email"]]
    now[3] = user(3, city="Shelbyville")
    assert target_by_key(aws["UsersByLocationTable"]) == expected_target(now)


@pytest.mark.parametrize("crash", ["scan", "after-write"])
def test_backfill_interrupted_and_resumed_copies_everything_exactly_once(
        aws: StageResources, run_ops: RunOps, tmp_path: Path, crash: str) -> None:
    # GIVEN 600 users, and a backfill that crashes part way: on the 5th Scan request, or right after
    # the 40th put landed but before its page was checkpointed
    users = [user(n) for n in range(600)]
    put_items(aws["UsersTable"], users)
    real = clients.client("dynamodb")
    recorder = PutRecorder(aws["UsersByLocationTable"])
    calls = Counter[str]()
    lock = threading.Lock()

    def crash_on_scan(call: Any, **kw: Any) -> Any:
        with lock:
            calls["scan"] += 1
            if calls["scan"] == 5:
                raise RuntimeError("injected crash")
        return call(**kw)

    def crash_after_write(call: Any, **kw: Any) -> Any:
        answer = recorder(call, **kw)
        with lock:
            calls["write"] += 1
            if calls["write"] == 40:
                raise RuntimeError("injected crash after the write landed")
        return answer

    faults = {"scan": crash_on_scan, "put_item": recorder} if crash == "scan" \
        else {"put_item": crash_after_write}
    clients.override("dynamodb", FaultyClient(real, **faults))
    checkpoint = tmp_path / "backfill.json"

    # WHEN the first run stops
    assert run_ops("backfill", "--segments", "3", "--page-size", "40") == 1
    # THEN its checkpoint is kept, with part of the work done
    saved = json.loads(checkpoint.read_text())
    assert not all(segment["done"] for segment in saved["scans"]["source"])
    copied_first = sum(recorder.puts.values())
    assert 0 < copied_first < 600

    # WHEN the operator runs the same command again (no more faults)
    clients.override("dynamodb", FaultyClient(real, put_item=recorder))
    assert run_ops("backfill", "--segments", "3", "--page-size", "40") == 0

    # THEN every user was copied exactly once over both runs, and the checkpoint is gone
    assert recorder.puts == Counter(expected_target(users).keys())
    assert target_by_key(aws["UsersByLocationTable"]) == expected_target(users)
    assert not checkpoint.exists()


def test_a_checkpoint_of_other_tables_is_refused(aws: StageResources, run_ops: RunOps, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a checkpoint left by a backfill of another stage's tables
    checkpoint = tmp_path / "backfill.json"
    checkpoint.write_text(json.dumps({"identity": {"verb": "backfill", "source": "other-users",
                                                   "target": "other-target", "share": "0 of 1"},
                                      "total_segments": 1, "scans": {"source": [{"segment": 0}]}}))
    put_items(aws["UsersTable"], [user(1)])

    # WHEN backfilling THEN it refuses (exit 2), naming both runs, and writes nothing
    assert run_ops("backfill") == 2
    assert "source other-users" in capsys.readouterr().out
    assert target_by_key(aws["UsersByLocationTable"]) == {}
    # AND --restart discards the foreign checkpoint
    assert run_ops("backfill", "--restart") == 0
    assert len(target_by_key(aws["UsersByLocationTable"])) == 1


def test_a_checkpoint_of_tables_since_created_again_is_set_aside(aws: StageResources, run_ops: RunOps,
                                                                 tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a checkpoint of these table names, from before they were deleted and created again (a new local
    # stack), that says every segment is done
    checkpoint = tmp_path / "backfill.json"
    checkpoint.write_text(json.dumps({
        "identity": {"verb": "backfill", "source": aws["UsersTable"], "target": aws["UsersByLocationTable"],
                     "share": "0 of 1"},
        "tables_created": {aws["UsersTable"]: "2020-01-01 00:00:00+00:00"},
        "total_segments": 1, "scans": {"source": [{"segment": 0, "done": True}]}}))
    put_items(aws["UsersTable"], [user(n) for n in range(3)])

    # WHEN backfilling THEN it starts over, says so, and copies everything
    assert run_ops("backfill") == 0
    assert "created again: started over" in capsys.readouterr().out
    assert len(target_by_key(aws["UsersByLocationTable"])) == 3


def test_two_processes_split_one_backfill(aws: StageResources, run_ops: RunOps, tmp_path: Path) -> None:
    # GIVEN 300 users, and a backfill split in two (each process its own checkpoint, as by default)
    users = [user(n) for n in range(300)]
    put_items(aws["UsersTable"], users)
    recorder = PutRecorder(aws["UsersByLocationTable"])
    clients.override("dynamodb", FaultyClient(clients.client("dynamodb"), put_item=recorder))

    # WHEN share 0, then share 1 runs
    for share in ("0", "1"):
        assert run_ops("backfill", "--segments", "2", "--segment", share, "--total-segments", "2",
                       "--page-size", "50", "--checkpoint", str(tmp_path / f"share-{share}.json")) == 0

    # THEN every user was copied exactly once between them
    assert recorder.puts == Counter(expected_target(users).keys())
    assert target_by_key(aws["UsersByLocationTable"]) == expected_target(users)


def test_backfill_of_an_empty_table_completes(aws: StageResources, run_ops: RunOps) -> None:
    assert run_ops("backfill") == 0
    assert boto3.client("dynamodb").scan(TableName=aws["UsersByLocationTable"])["Count"] == 0
