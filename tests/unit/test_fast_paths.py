"""The consumers' hot paths, hand-written for speed, give exactly what the general code they replaced gave.

Each is checked against its reference (boto3's TypeDeserializer/TypeSerializer with Lambda's binary rule, the
Decimal-exact JSON writer and `json.dumps` key identities the code used before) over generated DynamoDB values,
malformed ones included.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import exact_json
from chalicelib.batch_writer import _key_text
from chalicelib.clock import iso_utc
from chalicelib.stream.images import plain_image, typed_item
from chalicelib.stream.record import StreamRecord


class _ReferenceDeserializer(TypeDeserializer):
    def _deserialize_n(self, value: Any) -> Decimal:
        number = super()._deserialize_n(value)
        if not number.is_finite():
            raise ValueError(f"N value {value!r} is not a finite number")
        return number

    def _deserialize_b(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        return base64.b64decode(value, validate=True)


def _reference_image(image: dict[str, Any]) -> dict[str, Any]:
    return {name: _ReferenceDeserializer().deserialize(value) for name, value in image.items()}


def _reference_dumps(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return json.JSONEncoder(ensure_ascii=False).encode(value)
    if isinstance(value, (int, Decimal)):
        return exact_json.number_text(value)
    if isinstance(value, float):
        return json.dumps(value, allow_nan=False)
    if isinstance(value, (bytes, bytearray)):
        return json.JSONEncoder(ensure_ascii=False).encode(base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, dict):
        return "{" + ",".join(_reference_dumps(str(k)) + ":" + _reference_dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_reference_dumps(v) for v in value) + "]"
    return "[" + ",".join(_reference_dumps(v) for v in sorted(value)) + "]"


numbers = st.one_of(st.integers(-10**37, 10**37).map(str), st.decimals(allow_nan=False, allow_infinity=False,
                                                                      places=6).map(str),
                    st.sampled_from(["NaN", "Infinity", "-0", "1E+3", "0.0000001", "1" * 39, "abc"]))
binaries = st.one_of(st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()), st.sampled_from(["@@", "a"]))
scalars = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=6)),
    st.builds(lambda n: {"N": n}, numbers),
    st.builds(lambda b: {"B": b}, binaries),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda s: {"SS": s}, st.lists(st.text(max_size=3), min_size=1, max_size=3, unique=True)),
    st.builds(lambda s: {"NS": s}, st.lists(numbers, min_size=1, max_size=3)),
    st.builds(lambda s: {"BS": s}, st.lists(binaries, min_size=1, max_size=3)),
    st.sampled_from([{}, {"X": 1}, {"s": "lower-case type"}, {"S": "a", "N": "1"}, {"n": "2"}, {"Ss": ["a"]},
                     {"\u017f": "long s: upper() would make it S, lower() does not"}, {1: "x"}]),
)
typed_values = st.recursive(scalars, lambda inner: st.one_of(
    st.builds(lambda v: {"L": v}, st.lists(inner, max_size=3)),
    st.builds(lambda v: {"M": v}, st.dictionaries(st.text(max_size=3), inner, max_size=3))), max_leaves=8)
images = st.dictionaries(st.text(max_size=4), typed_values, max_size=5)


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return "ok", function(*args)
    except Exception as error:  # noqa: BLE001 - the kind of failure is what is compared
        return "error", type(error)


@settings(max_examples=100, deadline=None)
@given(images)
def test_images_read_as_boto3_reads_them_with_lambdas_binary(image: dict[str, Any]) -> None:
    mine, reference = _outcome(plain_image, image), _outcome(_reference_image, image)
    assert mine[0] == reference[0]
    if mine[0] == "error":  # StreamRecord names a malformed record by what was raised: the same error
        assert mine[1] is reference[1]
    else:
        assert exact_json.dumps(mine[1]) == exact_json.dumps(reference[1])
        assert {k: type(v) for k, v in mine[1].items()} == {k: type(v) for k, v in reference[1].items()}


@settings(max_examples=100, deadline=None)
@given(images)
def test_exact_json_writes_what_the_reference_writer_wrote(image: dict[str, Any]) -> None:
    try:
        plain = _reference_image(image)
    except Exception:  # noqa: BLE001 - malformed images are not written
        return
    document = {"keys": {"email": "a@b.c"}, "newImage": plain, "list": [plain, 1, None], "set": {"b", "a"}}
    assert exact_json.dumps(document) == _reference_dumps(document)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=4), st.booleans(), st.none(),
                                                      st.integers(), st.binary(max_size=4)), max_size=5))
def test_typed_items_are_what_boto3_serializes(item: dict[str, Any]) -> None:
    assert typed_item(item) == {name: TypeSerializer().serialize(value) for name, value in item.items()}


@given(typed_values)
def test_a_key_identity_is_one_per_typed_value(typed: dict[str, Any]) -> None:
    # Two typed key values share an identity exactly when json.dumps (the former identity) writes them alike.
    reference = json.dumps(typed, sort_keys=True, default=repr)
    assert _key_text(typed) == (f"S:{typed['S']}" if list(typed) == ["S"] and isinstance(typed["S"], str)
                                else reference)
    assert not _key_text(typed).startswith("S:") or not reference.startswith("S:")


@given(st.one_of(st.integers(0, 2 * 10**12), st.integers(0, 10**11).map(str), st.floats(0, 10**10)))
def test_creation_times_read_from_ints_as_from_their_text(value: Any) -> None:
    def created(v: Any) -> Any:
        return StreamRecord({"dynamodb": {"ApproximateCreationDateTime": v}}).created_at

    assert created(value) == created(str(value))


@given(st.datetimes(timezones=st.just(UTC)))
def test_iso_utc_is_strftimes_text(moment: datetime) -> None:
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert iso_utc(moment) == expected


odd_numbers = st.sampled_from(["007", "+5", "1.50", ".5", "5.", "0.000", "-0.0", "1e2", "0.10", "-0", "1" * 21,
                               "0." + "1" * 19, "99999999999999999999.999999999999999999"])
detail_values = st.recursive(st.one_of(scalars, st.builds(lambda n: {"N": n}, odd_numbers)), lambda inner: st.one_of(
    st.builds(lambda v: {"L": v}, st.lists(inner, max_size=3)),
    st.builds(lambda v: {"M": v}, st.dictionaries(st.text(max_size=3), inner, max_size=3))), max_leaves=8)
detail_images = st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b", "é", "city"]), detail_values,
                                                     max_size=4), st.sampled_from([[], "x"]))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]), detail_images, detail_images, detail_images,
       st.sampled_from([None, 1795000000, "x"]), st.booleans())
def test_a_detail_written_from_typed_images_is_the_plain_paths_detail(
        name: str, keys: Any, new: Any, old: Any, created: Any, truncated: bool) -> None:
    from chalicelib.fanout.events import _detail_json, _detail_parts, event_detail

    dynamodb = {field: value for field, value in
                (("Keys", keys), ("NewImage", new), ("OldImage", old), ("ApproximateCreationDateTime", created))
                if value is not None}
    raw = {"eventID": "e1", "eventName": name, "dynamodb": {**dynamodb, "SequenceNumber": "100"}}

    def fast() -> str | None:
        parts = _detail_parts(StreamRecord(raw), "users", None)
        return None if parts is None else _detail_json(parts, truncated)

    written = _outcome(fast)
    reference = _outcome(lambda: exact_json.dumps(event_detail(StreamRecord(raw), truncated=truncated,
                                                               table="users")))
    if written == ("ok", None):
        return  # not the fast path's: the plain path writes it (the reference itself)
    assert written == reference


def test_images_of_strings_numbers_booleans_nulls_maps_and_lists_take_the_typed_path() -> None:
    from chalicelib.fanout.events import _detail_parts

    image = {"email": {"S": "a@b.c"}, "n": {"N": "-12.50"}, "ok": {"BOOL": True}, "none": {"NULL": True},
             "m": {"M": {"l": {"L": [{"N": "0"}, {"S": "é"}]}}}}
    old = {**image, "n": {"N": "-12.5"}}
    raw = {"eventID": "e1", "eventName": "MODIFY",
           "dynamodb": {"Keys": {"email": {"S": "a@b.c"}}, "NewImage": image, "OldImage": old}}
    parts = _detail_parts(StreamRecord(raw), "users", None)
    assert parts is not None and parts[4] == ""  # -12.50 and -12.5 are one number: nothing changed
    for odd in ({"B": "AA=="}, {"SS": ["a"]}, {"N": "1E+3"}, {"N": "NaN"}, {"S": 5}):
        assert _detail_parts(StreamRecord({**raw, "dynamodb": {"NewImage": {"x": odd}}}), "users", None) is None
