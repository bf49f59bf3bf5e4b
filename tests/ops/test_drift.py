"""The pure checks of verify, one page at a time: missing and stale from a page of users, orphans from a page of
target items. Values compare exactly, DynamoDB type included."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from chalicelib.replication.projection import TargetKey, project_user
from ops.drift import check_targets, check_users, differing_fields, expected_keys, stored_key, user_email
from tests.ops.ops_support import user


def key_of(u: dict[str, Any]) -> TargetKey:
    return TargetKey(u["state"], f"{u['city']}#{u['email']}")


def projected(u: dict[str, Any]) -> dict[str, Any]:
    item = project_user(u)
    assert item is not None
    return item


def test_a_page_of_users_finds_missing_and_stale_items_at_their_keys() -> None:
    # GIVEN users 0..3 and one without a city; target items: 0 in step, 1 stale, 2 absent, 3 in step
    users = [user(n) for n in range(4)] + [{"email": "nowhere@example.com", "state": "CA"}]
    targets = {key_of(users[0]): projected(users[0]), key_of(users[1]): {**projected(users[1]), "active": "yes"},
               key_of(users[3]): projected(users[3])}

    drift = check_users(users, targets)

    assert expected_keys(users) == [key_of(u) for u in users[:4]]
    assert [m.key for m in drift.missing] == [key_of(users[2])]
    assert [(s.key, s.differences) for s in drift.stale] == [(key_of(users[1]), ("active",))]
    assert (drift.source_items, drift.expected_items, drift.orphaned) == (5, 4, [])


def test_a_type_changed_target_value_is_stale() -> None:
    # GIVEN a user whose `active` is true and a target item holding the number 1 (Python: True == Decimal(1))
    alice = user(2)  # active
    assert alice["active"] is True
    drift = check_users([alice], {key_of(alice): {**projected(alice), "active": Decimal(1)}})
    # THEN the item is stale, naming the field
    assert [(s.key, s.differences) for s in drift.stale] == [(key_of(alice), ("active",))]


def test_an_attribute_the_projection_does_not_hold_is_stale() -> None:
    alice = user(1)
    drift = check_users([alice], {key_of(alice): {**projected(alice), "zipcode": alice["zipcode"],
                                                  "source_sequence": "0" * 40}})
    assert drift.stale[0].differences == ("source_sequence", "zipcode")


def test_a_page_of_target_items_finds_the_orphans() -> None:
    # GIVEN target items: one in step, one stale (its user projects there: not an orphan), one whose user
    # moved, one whose user is gone, one whose key names no user at all
    alice, bob, carol = user(1), user(2), user(3)
    moved_bob = user(2, city="Shelbyville")
    items = [projected(alice), {**projected(carol), "active": "x"}, projected(bob), projected(user(9)),
             {"state": "CA", "city_email": "no-separator"}]
    users = {u["email"]: u for u in (alice, moved_bob, carol)}

    drift = check_targets(items, users)

    assert [o.key for o in drift.orphaned] == [key_of(bob), key_of(user(9)), TargetKey("CA", "no-separator")]
    assert drift.target_items == 5 and not drift.missing and not drift.stale


def test_keys_and_values() -> None:
    assert user_email(TargetKey("CA", "Springfield#a@b.c")) == "a@b.c"
    assert user_email(TargetKey("CA", "Springfield#")) is None
    assert stored_key({"state": "CA", "city_email": "x#y"}) == TargetKey("CA", "x#y")
    assert differing_fields({"a": 1, "b": True}, {"a": 1, "b": Decimal(1), "c": None}) == ("b", "c")
