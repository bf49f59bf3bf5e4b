"""chalicelib.clients: what a client gets when it points at an emulator on this machine, and never at AWS."""

from __future__ import annotations

import pytest

from chalicelib.clients import EMULATOR_CREDENTIALS, emulator_defaults, is_loopback
from chalicelib.config import stage_region

STAGE = {"USERS_STREAM_ARN": "arn:aws:dynamodb:eu-west-3:123456789012:table/t/stream/x",
         "ORDERS_STREAM_ARN": "arn:aws:dynamodb:eu-west-3:123456789012:table/o/stream/x"}


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4566", "http://localhost:4566", "http://[::1]:4566",
                                      "http://127.8.9.10", "https://127.0.0.1"])
def test_a_loopback_endpoint_gets_the_stage_region_and_dummy_credentials_when_none_are_configured(endpoint):
    env = {**STAGE, "AWS_ENDPOINT_URL": endpoint}
    assert emulator_defaults(env, configured_region=None, has_credentials=False) == {
        "region_name": "eu-west-3", **EMULATOR_CREDENTIALS}


@pytest.mark.parametrize("endpoint", [None, "", "https://dynamodb.us-east-1.amazonaws.com", "http://10.0.0.5:4566",
                                      "http://192.168.1.2:4566", "http://emulator.internal:4566", "http://0.0.0.0:4566",
                                      "http://127.0.0.1.nip.io:4566", "not a url"])
def test_real_aws_or_any_other_host_gets_nothing_added(endpoint):
    env = dict(STAGE) if endpoint is None else {**STAGE, "AWS_ENDPOINT_URL": endpoint}
    assert emulator_defaults(env, configured_region=None, has_credentials=False) == {}


def test_what_is_configured_is_kept():
    env = {**STAGE, "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}
    assert emulator_defaults(env, configured_region="us-west-2", has_credentials=True) == {}
    assert emulator_defaults(env, configured_region="us-west-2", has_credentials=False) == EMULATOR_CREDENTIALS
    assert emulator_defaults(env, configured_region=None, has_credentials=True) == {"region_name": "eu-west-3"}


def test_a_stage_without_arns_names_no_region():
    assert emulator_defaults({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, None, True) == {}
    assert stage_region({"USERS_STREAM_ARN": "not-an-arn", "ORDERS_STREAM_ARN": "arn:aws:dynamodb::1:table/o"}) is None
    assert stage_region({"ORDERS_STREAM_ARN": STAGE["ORDERS_STREAM_ARN"]}) == "eu-west-3"


def test_loopback_means_this_machine_only():
    assert is_loopback("http://127.0.0.1:4566") and is_loopback("http://LOCALHOST:8000")
    assert not is_loopback("http://169.254.169.254/latest") and not is_loopback(None)
