"""The pure decisions of replays, backfill, repairs and drift (no AWS)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.replication.projection import SEQUENCE_ATTRIBUTE, TargetKey, project_user, stored_sequence
from chalicelib.replication.replay import (
    ConditionKind,
    ReplayError,
    SourceGuard,
    plan_backfill,
    plan_repair,
    plan_replay,
    target_condition,
)
from chalicelib.stream.record import StreamRecord
from ops.dead_letter_inbox import RAW_INGEST_REASON, classify
from tests.ops.ops_support import user
from tests.support.events import insert, modify, remove


def key_of(u: dict[str, Any]) -> TargetKey:
    return TargetKey(u["state"], f"{u['city']}#{u['email']}")


def test_stored_sequences_order_as_numbers_when_compared_as_text() -> None:
    short, long = "9" * 21, "1" + "0" * 21
    assert stored_sequence(short) < stored_sequence(long)
    assert len(stored_sequence(short)) == 40
    for bad in ("", "12a", "1" * 41, "٣"):
        with pytest.raises(ValueError):
            stored_sequence(bad)


def test_replay_puts_exactly_the_current_projection_unless_a_newer_record_stamped_it() -> None:
    alice = user(1)
    record = insert(alice)
    (write,) = plan_replay(StreamRecord(record), alice)
    assert write.key == key_of(alice)
    assert write.item == project_user(alice)
    assert write.condition.kind is ConditionKind.OLDER_THAN
    assert write.condition.sequence == stored_sequence(record["dynamodb"]["SequenceNumber"])
    assert write.source == SourceGuard.of(alice["email"], alice)


def test_replay_of_a_stale_insert_after_a_move_deletes_the_old_key_and_puts_the_current_one() -> None:
    alice, moved = user(1), user(1, city="Shelbyville")
    writes = plan_replay(StreamRecord(insert(alice)), moved)
    assert [(w.key, w.is_delete) for w in writes] == [(key_of(alice), True), (key_of(moved), False)]
    assert writes[0].source is None  # a delete never resurrects anything: no source check needed


def test_replay_after_a_delete_writes_no_item() -> None:
    alice = user(1)
    writes = plan_replay(StreamRecord(modify(alice, user(1, active=False))), None)
    assert [(w.key, w.is_delete) for w in writes] == [(key_of(alice), True)]


def test_replay_of_a_remove_for_a_recreated_user_keeps_the_user() -> None:
    alice = user(1)
    writes = plan_replay(StreamRecord(remove(alice)), alice)
    assert [(w.key, w.is_delete) for w in writes] == [(key_of(alice), False)]


@pytest.mark.parametrize("breakage", ["no sequence", "no email"])
def test_an_unreplayable_record_is_refused(breakage: str) -> None:
    record = insert(user(1))
    if breakage == "no sequence":
        record["dynamodb"].pop("SequenceNumber")
    else:
        record["dynamodb"]["Keys"] = {}
    with pytest.raises(ReplayError):
        plan_replay(StreamRecord(record), user(1))


def test_backfill_creates_only_missing_items_and_skips_users_without_a_place() -> None:
    alice = user(1)
    write = plan_backfill(alice)
    assert write is not None and write.condition.kind is ConditionKind.ABSENT and SEQUENCE_ATTRIBUTE not in write.item  # type: ignore[operator]
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


def test_condition_expressions() -> None:
    older = target_condition(plan_replay(StreamRecord(insert(user(1), sequence_number="123")), user(1))[0].condition)
    assert older["ConditionExpression"] == "attribute_not_exists(#n0) OR attribute_not_exists(#n1) OR #n1 < :v0"
    assert older["ExpressionAttributeValues"] == {":v0": {"S": stored_sequence("123")}}
    seen = {**project_user(user(1)), SEQUENCE_ATTRIBUTE: stored_sequence("9")}  # type: ignore[dict-item]
    unchanged = target_condition(plan_repair(key_of(user(1)), None, seen).condition)  # type: ignore[union-attr]
    assert unchanged["ConditionExpression"] == ("attribute_exists(#n0) AND #n1 = :v0 AND #n2 = :v1 AND #n3 = :v2 "
                                                "AND #n4 = :v3 AND #n5 = :v4")
    assert target_condition(plan_backfill(user(1)).condition)["ConditionExpression"] == (  # type: ignore[union-attr]
        "attribute_not_exists(#n0)")


def test_inbox_reads_envelopes_raw_ingest_messages_and_rejects_the_rest() -> None:
    envelope = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": '{"consumer":"fanout","reason":"x","error":"",'
                '"attempts":1,"failed_at":"2026-11-22T10:00:00.000Z","record":{}}'}
    assert classify(envelope, raw_is_ingest=False).consumer == "fanout"
    raw = {"MessageId": "m2", "ReceiptHandle": "r2", "Body": '{"user_id":"u"}',
           "Attributes": {"SentTimestamp": "1795000000000", "ApproximateReceiveCount": "6"}}
    message = classify(raw, raw_is_ingest=True)
    assert message.consumer == "ingest" and message.reason == RAW_INGEST_REASON
    assert message.letter is not None and message.letter.record["messageId"] == "m2"
    assert "receiptHandle" not in message.letter.record and message.letter.attempts == 6
    unreadable = classify(raw, raw_is_ingest=False)
    assert unreadable.letter is None and unreadable.problem.startswith("not a dead letter")
