"""The pure decisions of replays, backfill and repairs (`chalicelib.replication.planning`, no AWS)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.replication.planning import (
    ConditionKind,
    ReplayError,
    SourceGuard,
    plan_backfill,
    plan_repair,
    plan_replay,
    target_condition,
)
from chalicelib.replication.projection import TargetKey, project_user
from chalicelib.stream.record import StreamRecord
from tests.ops.ops_support import user
from tests.support.events import insert, modify, remove


def key_of(u: dict[str, Any]) -> TargetKey:
    return TargetKey(u["state"], f"{u['city']}#{u['email']}")


def test_replay_puts_exactly_the_current_projection_guarded_by_its_source() -> None:
    alice = user(1)
    (write,) = plan_replay(StreamRecord(insert(alice)), alice)
    assert write.key == key_of(alice)
    assert write.item == project_user(alice)
    assert write.condition.kind is ConditionKind.ANY
    assert write.source == SourceGuard.of(alice["email"], alice)


def test_replay_takes_the_current_item_not_the_records_image() -> None:
    alice, deactivated = user(1), user(1, active=False)
    (write,) = plan_replay(StreamRecord(insert(alice)), deactivated)
    assert write.item == project_user(deactivated)


def test_replay_of_a_stale_insert_after_a_move_deletes_the_old_key_and_puts_the_current_one() -> None:
    alice, moved = user(1), user(1, city="Shelbyville")
    writes = plan_replay(StreamRecord(insert(alice)), moved)
    assert [(w.key, w.is_delete) for w in writes] == [(key_of(alice), True), (key_of(moved), False)]
    assert writes[0].source is None  # a delete never resurrects anything: no source check needed


def test_replay_of_a_modify_that_moved_deletes_both_keys_the_user_no_longer_projects_to() -> None:
    alice, moved, back_home = user(1), user(1, city="Shelbyville"), user(1, state="OR")
    writes = plan_replay(StreamRecord(modify(alice, moved)), back_home)
    assert [(w.key, w.is_delete) for w in writes] == [(key_of(alice), True), (key_of(moved), True),
                                                      (key_of(back_home), False)]


def test_replay_after_a_delete_writes_no_item() -> None:
    alice = user(1)
    writes = plan_replay(StreamRecord(modify(alice, user(1, active=False))), None)
    assert [(w.key, w.is_delete) for w in writes] == [(key_of(alice), True)]


def test_replay_of_a_remove_for_a_recreated_user_keeps_the_user() -> None:
    alice = user(1)
    writes = plan_replay(StreamRecord(remove(alice)), alice)
    assert [(w.key, w.is_delete) for w in writes] == [(key_of(alice), False)]


def test_replay_of_a_user_without_a_place_writes_nothing() -> None:
    placeless = {k: v for k, v in user(1).items() if k != "city"}
    assert plan_replay(StreamRecord(insert(placeless)), placeless) == []


def test_a_record_without_an_email_key_is_refused() -> None:
    record = insert(user(1))
    record["dynamodb"]["Keys"] = {}
    with pytest.raises(ReplayError, match="no email key"):
        plan_replay(StreamRecord(record), user(1))


def test_a_record_without_a_sequence_number_is_replayed_from_the_current_truth() -> None:
    # Replays no longer compare stream positions: the current source item is the truth.
    record = insert(user(1))
    record["dynamodb"].pop("SequenceNumber")
    (write,) = plan_replay(StreamRecord(record), user(1))
    assert write.item == project_user(user(1))


def test_backfill_creates_only_missing_items_and_skips_users_without_a_place() -> None:
    alice = user(1)
    write = plan_backfill(alice)
    assert write is not None and write.condition.kind is ConditionKind.ABSENT
    assert write.item == project_user(alice) and write.source == SourceGuard.of(alice["email"], alice)
    assert plan_backfill({k: v for k, v in alice.items() if k != "state"}) is None


def test_repair_puts_exactly_the_projection_and_requires_the_item_it_saw() -> None:
    alice = user(1)
    seen = {**project_user(alice), "active": "wrong", "zipcode": "12345"}  # type: ignore[dict-item]
    write = plan_repair(key_of(alice), alice, seen)
    assert write is not None and write.item == project_user(alice)
    assert write.condition.kind is ConditionKind.UNCHANGED and write.condition.seen == seen
    assert write.source is None  # the item must still be what was seen: no need to check the user
    created = plan_repair(key_of(alice), alice, None)
    assert created is not None and created.source == SourceGuard.of(alice["email"], alice)
    orphan = plan_repair(key_of(alice), None, seen)
    assert orphan is not None and orphan.is_delete and orphan.source is None
    assert plan_repair(key_of(alice), None, None) is None


def test_a_repair_of_a_user_who_moved_deletes_the_item_at_the_old_key() -> None:
    alice, moved = user(1), user(1, city="Shelbyville")
    write = plan_repair(key_of(alice), moved, project_user(alice))
    assert write is not None and write.is_delete


def test_condition_expressions() -> None:
    assert target_condition(plan_replay(StreamRecord(insert(user(1))), user(1))[0].condition) == {}
    seen = {**project_user(user(1)), "active": "wrong"}  # type: ignore[dict-item]
    unchanged = target_condition(plan_repair(key_of(user(1)), None, seen).condition)  # type: ignore[union-attr]
    assert unchanged["ConditionExpression"] == "attribute_exists(#n0) AND #n1 = :v0 AND #n2 = :v1 AND #n3 = :v2 " \
                                               "AND #n4 = :v3"
    assert list(unchanged["ExpressionAttributeNames"].values()) == ["state", "state", "city", "email", "active"]
    assert unchanged["ExpressionAttributeValues"][":v3"] == {"S": "wrong"}
    without_active = {k: v for k, v in seen.items() if k != "active"}
    partial = target_condition(plan_repair(key_of(user(1)), None, without_active).condition)  # type: ignore[union-attr]
    assert partial["ConditionExpression"].endswith("AND attribute_not_exists(#n4)")
    for absent in (plan_backfill(user(1)), plan_repair(key_of(user(1)), user(1), None)):
        assert target_condition(absent.condition) == {  # type: ignore[union-attr]
            "ConditionExpression": "attribute_not_exists(#n0)", "ExpressionAttributeNames": {"#n0": "state"}}
