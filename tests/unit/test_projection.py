"""Replication's pure core: projection, target keys, writes planned per record."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.replication.projection import TargetKey, TargetWrite, plan_writes, project_user, target_key
from chalicelib.stream import StreamRecord
from chalicelib.stream.dispatcher import HandlerError
from tests.support.events import insert, modify, remove, stream_record

ADA = {"email": "ada@x.io", "state": "NY", "city": "Brooklyn", "zipcode": "01234", "active": True,
       "created_at": "2026-01-01T00:00:00.000Z"}


def test_projection_keeps_only_the_target_fields_never_zipcode():
    assert project_user(ADA) == {"state": "NY", "city": "Brooklyn", "email": "ada@x.io", "active": True,
                                 "city_email": "Brooklyn#ada@x.io"}


@pytest.mark.parametrize("missing", ["state", "city"])
def test_a_user_without_state_or_city_has_no_target(missing):
    user = {k: v for k, v in ADA.items() if k != missing}
    assert project_user(user) is None and target_key(user) is None
    assert project_user({**ADA, missing: ""}) is None
    assert project_user({**ADA, missing: Decimal(5)}) is None


def test_two_users_in_one_city_have_distinct_keys():
    bob = {**ADA, "email": "bob@x.io"}
    assert target_key(ADA) != target_key(bob)
    assert target_key(ADA) == TargetKey("NY", "Brooklyn#ada@x.io")


def writes(raw: dict) -> list[TargetWrite]:
    return plan_writes(StreamRecord(raw))


def test_insert_puts_exactly_the_projection():
    [write] = writes(insert(ADA))
    assert write.key == TargetKey("NY", "Brooklyn#ada@x.io") and write.item == project_user(ADA)


def test_modify_within_a_city_puts_only():
    assert [w.item is None for w in writes(modify(ADA, {**ADA, "active": False}))] == [False]


@pytest.mark.parametrize("change", [{"city": "Queens"}, {"state": "NJ"}])
def test_a_move_deletes_the_old_item_then_puts_the_new(change):
    moved = {**ADA, **change}
    delete, put = writes(modify(ADA, moved))
    assert delete.key == target_key(ADA) and delete.item is None
    assert put.key == target_key(moved) and put.item == project_user(moved)


def test_losing_city_deletes_and_gaining_it_puts():
    homeless = {k: v for k, v in ADA.items() if k != "city"}
    [delete] = writes(modify(ADA, homeless))
    assert delete.item is None and delete.key == target_key(ADA)
    [put] = writes(modify(homeless, ADA))
    assert put.item == project_user(ADA)
    assert writes(insert(homeless)) == []


def test_remove_deletes_including_ttl_deletes():
    ttl = remove(ADA)
    ttl["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    [delete] = writes(ttl)
    assert delete.item is None and delete.key == target_key(ADA)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (stream_record("INSERT", {"email": "ada@x.io"}), "INSERT record has no NewImage"),
        (stream_record("MODIFY", {"email": "ada@x.io"}, new=ADA), "MODIFY record has no OldImage"),
        (stream_record("REMOVE", {"email": "ada@x.io"}), "REMOVE record has no OldImage"),
    ],
)
def test_records_lacking_the_image_they_need_are_refused_with_the_reason(raw, reason):
    with pytest.raises(HandlerError) as refused:
        writes(raw)
    assert refused.value.reason.startswith(reason)


def test_email_comes_from_the_key_when_the_image_lacks_it():
    image = {k: v for k, v in ADA.items() if k != "email"}
    raw = stream_record("INSERT", {"email": "ada@x.io"}, new=image)
    assert writes(raw)[0].item["email"] == "ada@x.io"
