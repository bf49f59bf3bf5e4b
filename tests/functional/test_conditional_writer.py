"""The conditional writer and the replayer against moto, with real error shapes: conditions decide what lands,
the one retry primitive retries only what may succeed, the one classifier decides the rest."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.backoff import Backoff
from chalicelib.faults import Fault
from chalicelib.replication.conditional_writer import ConditionalTargetWriter, Outcome
from chalicelib.replication.planning import GuardedWrite, ReplayError, TargetCondition, plan_backfill, plan_repair
from chalicelib.replication.projection import TargetKey, project_user
from chalicelib.replication.replay import ReplicationReplayer
from tests.ops.ops_support import put_items, target_by_key, user
from tests.support.events import insert
from tests.support.faults import FaultyClient, aws_error, raising_first
from tests.support.resources import StageResources


def key_of(u: dict[str, Any]) -> TargetKey:
    return TargetKey(u["state"], f"{u['city']}#{u['email']}")


def writer_over(aws: StageResources, dynamodb: Any = None, slept: list[float] | None = None,
                attempts: int = 8) -> ConditionalTargetWriter:
    sleep = slept.append if slept is not None else (lambda _: None)
    return ConditionalTargetWriter(dynamodb or boto3.client("dynamodb"), aws["UsersTable"],
                                   aws["UsersByLocationTable"], Backoff(max_attempts=attempts, sleep=sleep))


def test_a_backfill_put_lands_only_where_no_item_is(aws: StageResources) -> None:
    alice, bob = user(1), user(2)
    put_items(aws["UsersTable"], [alice, bob])
    newer = {**project_user(bob), "active": "newer"}
    put_items(aws["UsersByLocationTable"], [newer])  # type: ignore[list-item]
    writer = writer_over(aws)

    results = writer.apply([plan_backfill(alice), plan_backfill(bob)])  # type: ignore[list-item]

    assert [r.outcome for r in results] == [Outcome.APPLIED, Outcome.SUPERSEDED]
    assert target_by_key(aws["UsersByLocationTable"]) == {key_of(alice): project_user(alice), key_of(bob): newer}
    assert writer.calls == 3  # two conditional puts, one BatchGetItem confirming alice's source


def test_a_repair_replaces_only_the_item_it_saw(aws: StageResources) -> None:
    alice = user(1)
    seen = {**project_user(alice), "active": "wrong"}
    rewritten = {**project_user(alice), "active": "rewritten meanwhile"}
    put_items(aws["UsersByLocationTable"], [rewritten])  # type: ignore[list-item]

    (result,) = writer_over(aws).apply([plan_repair(key_of(alice), alice, seen)])  # type: ignore[list-item]

    assert result.outcome is Outcome.SUPERSEDED
    assert target_by_key(aws["UsersByLocationTable"]) == {key_of(alice): rewritten}


def test_a_put_whose_user_moved_meanwhile_is_undone(aws: StageResources) -> None:
    # GIVEN alice was read in Springfield, but has moved (and the stream applied that) before the put lands
    alice, moved = user(1), user(1, city="Shelbyville")
    put_items(aws["UsersTable"], [moved])
    put_items(aws["UsersByLocationTable"], [project_user(moved)])  # type: ignore[list-item]

    (result,) = writer_over(aws).apply([plan_backfill(alice)])  # type: ignore[list-item]

    assert result.outcome is Outcome.SOURCE_CHANGED
    assert target_by_key(aws["UsersByLocationTable"]) == {key_of(moved): project_user(moved)}


def test_a_throttled_write_is_retried_and_lands(aws: StageResources) -> None:
    alice = user(1)
    put_items(aws["UsersTable"], [alice])
    throttled = aws_error("dynamodb", "PutItem", "ProvisionedThroughputExceededException")
    slept: list[float] = []
    faulty = FaultyClient(boto3.client("dynamodb"), put_item=raising_first(throttled, throttled))
    writer = writer_over(aws, faulty, slept)

    (result,) = writer.apply([plan_backfill(alice)])  # type: ignore[list-item]

    assert result.outcome is Outcome.APPLIED and len(slept) == 2
    assert writer.stats.calls == 4 and writer.stats.retries == 2  # three puts, one confirming read


def test_an_item_refused_or_throttled_to_the_end_fails_that_write_only(aws: StageResources) -> None:
    alice, bob, cy = user(1), user(2), user(3)
    put_items(aws["UsersTable"], [alice, bob, cy])
    refused = aws_error("dynamodb", "PutItem", "ValidationException", "Item size has exceeded the maximum")
    throttled = [aws_error("dynamodb", "PutItem", "ThrottlingException") for _ in range(2)]
    writer = writer_over(aws, FaultyClient(boto3.client("dynamodb"), put_item=raising_first(refused, *throttled)),
                         attempts=2)

    first, second, third = writer.apply([plan_backfill(u) for u in (alice, bob, cy)])  # type: ignore[misc]

    assert (first.outcome, first.failure.fault, first.attempts) == (Outcome.FAILED, Fault.ITEM, 1)  # type: ignore[union-attr]
    assert (second.outcome, second.failure.fault, second.attempts) == (Outcome.FAILED, Fault.RETRYABLE, 2)  # type: ignore[union-attr]
    assert first.error == "ValidationException: Item size has exceeded the maximum"
    assert third.outcome is Outcome.APPLIED  # the writes after a refused one go on
    assert target_by_key(aws["UsersByLocationTable"]) == {key_of(cy): project_user(cy)}


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_a_systemic_fault_is_raised_at_once_never_retried(aws: StageResources, code: str) -> None:
    denied = aws_error("dynamodb", "PutItem", code)
    faulty = FaultyClient(boto3.client("dynamodb"), put_item=raising_first(*[denied] * 5))
    slept: list[float] = []
    writer = writer_over(aws, faulty, slept)

    with pytest.raises(ClientError) as raised:
        writer.apply([plan_backfill(user(n)) for n in range(5)])  # type: ignore[misc]

    assert raised.value is denied and faulty.calls["put_item"] == 1 and slept == []
    assert target_by_key(aws["UsersByLocationTable"]) == {}


def test_the_replayer_plans_again_when_the_user_moves_during_the_replay(aws: StageResources) -> None:
    # GIVEN alice's INSERT was dead-lettered; she moves right after the replay's first put lands
    alice, moved = user(1), user(1, city="Shelbyville")
    put_items(aws["UsersTable"], [alice])
    real = boto3.client("dynamodb")
    moves = {"left": 1}

    def move_after_put(call: Any, **kwargs: Any) -> Any:
        answer = call(**kwargs)
        if moves["left"]:
            moves["left"] -= 1
            put_items(aws["UsersTable"], [moved])  # the stream will move her item; the replay must not resurrect
        return answer

    replayer = ReplicationReplayer(writer_over(aws, FaultyClient(real, put_item=move_after_put)))

    # WHEN the record is replayed
    report = replayer.replay(insert(alice))

    # THEN the target holds where she is now, and nothing where she was
    assert target_by_key(aws["UsersByLocationTable"]) == {key_of(moved): project_user(moved)}
    # (the second round's plan: delete where she was, put where she is)
    assert [(r.write.key, r.write.is_delete, r.outcome) for r in report.results] == [
        (key_of(alice), True, Outcome.APPLIED), (key_of(moved), False, Outcome.APPLIED)]


def test_a_replay_whose_write_is_refused_says_why_in_the_fault_models_words(aws: StageResources) -> None:
    alice = user(1)
    put_items(aws["UsersTable"], [alice])
    refused = aws_error("dynamodb", "PutItem", "ValidationException", "bad")
    faulty = FaultyClient(boto3.client("dynamodb"), put_item=raising_first(refused))
    replayer = ReplicationReplayer(writer_over(aws, faulty))

    with pytest.raises(ReplayError, match="target write failed: PutItem refused the record: ValidationException"):
        replayer.replay(insert(alice))


def test_a_delete_write_is_conditional_on_what_was_written(aws: StageResources) -> None:
    alice = user(1)
    put_items(aws["UsersByLocationTable"], [project_user(alice)])  # type: ignore[list-item]
    writer = writer_over(aws)
    other = {**project_user(alice), "active": "other"}

    (kept,) = writer.apply([GuardedWrite(key_of(alice), None, TargetCondition.unchanged(other))])
    (gone,) = writer.apply([GuardedWrite(key_of(alice), None, TargetCondition.unchanged(project_user(alice)))])

    assert (kept.outcome, gone.outcome) == (Outcome.SUPERSEDED, Outcome.APPLIED)
    assert target_by_key(aws["UsersByLocationTable"]) == {}
