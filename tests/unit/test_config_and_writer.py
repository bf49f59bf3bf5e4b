"""Settings from the environment (stage variables, API_AUTH), and the batch writer's pure parts."""

from __future__ import annotations

import pytest

from chalicelib.backoff import Backoff
from chalicelib.batch_writer import WriteOp, coalesce
from chalicelib.config import ConfigurationError, Settings, api_auth

ENV = {
    "USERS_TABLE": "u", "USERS_STREAM_ARN": "arn:s", "USERS_BY_LOCATION_TABLE": "t", "DEVICE_METADATA_TABLE": "d",
    "INGEST_QUEUE": "q", "INGEST_DLQ_URL": "http://q/dlq", "ORDERS_TABLE": "o", "ORDERS_STREAM_ARN": "arn:o",
    "EVENT_BUS_NAME": "bus", "STREAM_DLQ_URL": "http://q/sdlq",
}


def test_settings_defaults_for_event_source_and_attempts():
    settings = Settings.from_env(ENV)
    assert settings.event_source == "stream-pipeline.users" and settings.fanout_max_attempts == 3
    assert Settings.from_env({**ENV, "EVENT_SOURCE": "x", "FANOUT_MAX_ATTEMPTS": "5"}).fanout_max_attempts == 5


@pytest.mark.parametrize(("change", "named"), [
    ({"USERS_TABLE": ""}, "USERS_TABLE"),
    ({"FANOUT_MAX_ATTEMPTS": "many"}, "FANOUT_MAX_ATTEMPTS"),
    ({"FANOUT_MAX_ATTEMPTS": "0"}, "FANOUT_MAX_ATTEMPTS"),
])
def test_bad_configuration_names_the_variable(change, named):
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_env({**ENV, **change})


@pytest.mark.parametrize(("value", "mode"), [
    ("iam", "iam"), ("none", "none"), (" none ", "none"),
    (None, "iam"), ("", "iam"), ("  ", "iam"),  # a stage that says nothing is protected
])
def test_api_auth_is_iam_unless_the_stage_opens_it(value, mode):
    assert api_auth({} if value is None else {"API_AUTH": value}) == mode


@pytest.mark.parametrize("value", ["IAM", "aim", "cognito", "false", "off"])
def test_an_unknown_api_auth_fails_loudly_instead_of_opening_the_api(value):
    with pytest.raises(ConfigurationError, match=f"API_AUTH must be 'iam' .* or 'none' .*got '{value}'"):
        api_auth({"API_AUTH": value})


def test_coalesce_keeps_the_last_write_per_key_in_order_of_last_write():
    keys = ("state", "city_email")
    a1 = WriteOp.put({"state": "NY", "city_email": "A#a", "v": 1}, keys)
    b = WriteOp.put({"state": "NY", "city_email": "B#b"}, keys)
    a_delete = WriteOp.delete({"state": "NY", "city_email": "A#a"}, keys)
    a2 = WriteOp.put({"state": "NY", "city_email": "A#a", "v": 2}, keys)
    assert coalesce([a1, b, a_delete]) == [b, a_delete]
    assert coalesce([a1, b, a_delete, a2]) == [b, a2]


def test_a_write_without_its_key_is_refused():
    with pytest.raises(ValueError, match="city_email"):
        WriteOp.put({"state": "NY"}, ("state", "city_email"))


def test_backoff_is_exponential_capped_and_jittered():
    sleeps: list[float] = []
    backoff = Backoff(base=0.1, cap=0.5, sleep=sleeps.append, rand=lambda: 1.0)
    for attempt in range(1, 6):
        backoff.wait(attempt)
    assert sleeps == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert Backoff(rand=lambda: 0.25, base=1, cap=10).delay(3) == 1.0
