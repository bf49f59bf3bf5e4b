"""The template's dead-letter resources as the SPEC states them. moto does not apply a bucket's policy, public
access block or lifecycle, so they are checked here, in the template itself; the queues' size is checked in
the stack moto creates from it too."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import yaml

from tests.deploy.conftest import INFRA_TEMPLATE
from tests.support.resources import StageResources


class _CfnLoader(yaml.SafeLoader):
    """CloudFormation's short tags as {"!Tag": value}, so references can be asserted."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: {f"!{suffix}": (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else loader.construct_sequence(node))})


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return yaml.load(INFRA_TEMPLATE.read_text(), Loader=_CfnLoader)["Resources"]


def test_both_dead_letter_queues_take_sqs_largest_message(resources: dict[str, Any]) -> None:
    for queue in ("IngestDeadLetterQueue", "StreamDeadLetterQueue"):
        assert resources[queue]["Properties"]["MaximumMessageSize"] == 1048576


def test_the_dead_letter_bucket_is_encrypted_private_kept_and_expires_with_its_letters(
        resources: dict[str, Any]) -> None:
    bucket = resources["DeadLetterBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket" and bucket["DeletionPolicy"] == "Retain"
    properties = bucket["Properties"]
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    # objects outlive the queue message that points at them (14 days), never much longer
    (expiry,) = properties["LifecycleConfiguration"]["Rules"]
    assert expiry["Status"] == "Enabled" and expiry["ExpirationInDays"] > 14


def test_the_dead_letter_bucket_refuses_requests_without_tls(resources: dict[str, Any]) -> None:
    policy = resources["DeadLetterBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"!Ref": "DeadLetterBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [{"!GetAtt": "DeadLetterBucket.Arn"}, {"!Sub": "${DeadLetterBucket.Arn}/*"}]


def test_the_stack_records_the_bucket_and_the_queues_size(aws: StageResources) -> None:
    # the stage's own bucket, named as predictably as its queues (the committed dev config names the local stack's)
    bucket = aws["DeadLetterBucket"]
    assert aws.env()["DEAD_LETTER_BUCKET"] == bucket == "stream-pipeline-test-dead-letters-123456789012"
    s3 = boto3.client("s3")
    rules = s3.get_bucket_encryption(Bucket=aws["DeadLetterBucket"])["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    sqs = boto3.client("sqs")
    for url in (aws["StreamDlqUrl"], aws["IngestDlqUrl"]):
        size = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])["Attributes"]
        assert size == {"MaximumMessageSize": "1048576"}
