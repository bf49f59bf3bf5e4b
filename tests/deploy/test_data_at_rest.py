"""Data at rest and in transit, read from infra/template.yaml (SPEC): every queue encrypted, every table's
encryption stated, every bucket encrypted, closed to the public and refusing requests without TLS.

The checks are pure functions over the parsed template; each is first shown to catch what it is for on a
small template, then run on the real one. moto's CloudFormation deploying the template is covered by the
provision and local stack tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cfnlint.decode import decode_str

from tests.deploy.conftest import INFRA_TEMPLATE
from tooling.infrastructure import OUTPUT_VARIABLES

PUBLIC_ACCESS_BLOCK = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
BUCKET_ALGORITHMS = {"AES256", "aws:kms", "aws:kms:dsse"}


def parse(text: str) -> dict[str, Any]:
    """A template as plain dicts, short tags (!Sub, !GetAtt) in their long form."""
    template, errors = decode_str(text)
    assert not errors, errors
    return json.loads(json.dumps(template))


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource.get("Properties") or {} for name, resource in template["Resources"].items()
            if resource["Type"] == kind}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- the checks (pure) -------------------------------------------------------------------------

def queue_findings(properties: dict[str, Any]) -> list[str]:
    """What a queue lacks: server-side encryption by SQS-managed keys or a KMS key (one of them)."""
    sqs_managed, kms_key = properties.get("SqsManagedSseEnabled") is True, properties.get("KmsMasterKeyId")
    if sqs_managed and kms_key:
        return ["both SqsManagedSseEnabled and KmsMasterKeyId (SQS refuses the pair)"]
    return [] if sqs_managed or kms_key else ["no server-side encryption (SqsManagedSseEnabled or KmsMasterKeyId)"]


def table_findings(properties: dict[str, Any]) -> list[str]:
    """What a table lacks: its key stated — SSEEnabled false (the AWS owned key) or true with SSEType KMS."""
    sse = properties.get("SSESpecification")
    if not isinstance(sse, dict) or not isinstance(sse.get("SSEEnabled"), bool):
        return ["encryption key not stated (SSESpecification.SSEEnabled)"]
    if sse["SSEEnabled"] and sse.get("SSEType", "KMS") != "KMS":
        return [f"SSEType {sse['SSEType']!r} (only KMS exists)"]
    return []


def refers_to(value: Any, logical_id: str) -> bool:
    """Whether an intrinsic (Ref, GetAtt, Sub, Join) names the resource."""
    text = json.dumps(value)
    return (f'"Ref": "{logical_id}"' in text or f'["{logical_id}", "Arn"]' in text
            or "${" + logical_id + "}" in text or "${" + logical_id + ".Arn}" in text)


def denies_plain_http(statement: dict[str, Any], logical_id: str) -> bool:
    """A Deny of every S3 action, to everyone, on the bucket and its objects, when aws:SecureTransport is false."""
    principal = statement.get("Principal")
    condition = (statement.get("Condition") or {}).get("Bool") or {}
    resources = as_list(statement.get("Resource", []))
    return (statement.get("Effect") == "Deny"
            and (principal == "*" or principal == {"AWS": "*"})
            and bool({"s3:*", "*"} & set(as_list(statement.get("Action", []))))
            and str(condition.get("aws:SecureTransport")).lower() == "false"
            and any(refers_to(r, logical_id) and "/*" not in json.dumps(r) for r in resources)
            and any(refers_to(r, logical_id) and "/*" in json.dumps(r) for r in resources))


def bucket_findings(template: dict[str, Any], logical_id: str) -> list[str]:
    """What a bucket lacks: default encryption, all four public access blocks, a policy refusing plain HTTP."""
    properties = template["Resources"][logical_id].get("Properties") or {}
    findings = []
    rules = (properties.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
    algorithms = {((rule.get("ServerSideEncryptionByDefault") or {}).get("SSEAlgorithm")) for rule in rules}
    if not rules or not algorithms <= BUCKET_ALGORITHMS:
        findings.append(f"no default encryption (BucketEncryption: {sorted(map(str, algorithms)) or 'none'})")
    block = properties.get("PublicAccessBlockConfiguration") or {}
    open_ = [setting for setting in PUBLIC_ACCESS_BLOCK if block.get(setting) is not True]
    if open_:
        findings.append(f"public access not blocked: {', '.join(open_)}")
    statements = [s for policy in of_type(template, "AWS::S3::BucketPolicy").values()
                  if refers_to(policy.get("Bucket"), logical_id)
                  for s in as_list((policy.get("PolicyDocument") or {}).get("Statement", []))]
    if not any(denies_plain_http(s, logical_id) for s in statements):
        findings.append("no bucket policy denying requests without TLS (aws:SecureTransport false) "
                        "on the bucket and its objects")
    return findings


# --- the checks catch what they are for ---------------------------------------------------------

SAFE_BUCKET = """
Resources:
  Letters:
    Type: AWS::S3::Bucket
    Properties:
      BucketEncryption:
        ServerSideEncryptionConfiguration:
          - ServerSideEncryptionByDefault: {SSEAlgorithm: AES256}
      PublicAccessBlockConfiguration:
        BlockPublicAcls: true
        BlockPublicPolicy: true
        IgnorePublicAcls: true
        RestrictPublicBuckets: true
  LettersPolicy:
    Type: AWS::S3::BucketPolicy
    Properties:
      Bucket: !Ref Letters
      PolicyDocument:
        Statement:
          - Effect: Deny
            Principal: "*"
            Action: s3:*
            Resource: [!GetAtt Letters.Arn, !Sub "${Letters.Arn}/*"]
            Condition: {Bool: {aws:SecureTransport: "false"}}
"""


@pytest.mark.parametrize("change, finding", [
    (("SSEAlgorithm: AES256", "SSEAlgorithm: NONE"), "no default encryption"),
    (("      BucketEncryption:\n        ServerSideEncryptionConfiguration:\n"
      "          - ServerSideEncryptionByDefault: {SSEAlgorithm: AES256}\n", ""), "no default encryption"),
    (("IgnorePublicAcls: true", "IgnorePublicAcls: false"), "public access not blocked: IgnorePublicAcls"),
    (("        RestrictPublicBuckets: true\n", ""), "public access not blocked: RestrictPublicBuckets"),
    (('aws:SecureTransport: "false"', 'aws:SecureTransport: "true"'), "no bucket policy denying"),
    (("Effect: Deny", "Effect: Allow"), "no bucket policy denying"),
    (('Principal: "*"', "Principal: {Service: s3.amazonaws.com}"), "no bucket policy denying"),
    ((', !Sub "${Letters.Arn}/*"', ""), "no bucket policy denying"),  # objects not covered
    (("[!GetAtt Letters.Arn, ", "["), "no bucket policy denying"),  # the bucket itself not covered
    (("Bucket: !Ref Letters", "Bucket: another-bucket"), "no bucket policy denying"),
])
def test_the_bucket_check_finds_each_missing_protection(change: tuple[str, str], finding: str) -> None:
    assert bucket_findings(parse(SAFE_BUCKET), "Letters") == []
    old, new = change
    assert old in SAFE_BUCKET
    (found,) = bucket_findings(parse(SAFE_BUCKET.replace(old, new)), "Letters")
    assert found.startswith(finding), found


@pytest.mark.parametrize("properties, finding", [
    ({"SqsManagedSseEnabled": True}, None),
    ({"KmsMasterKeyId": "alias/letters"}, None),
    ({}, "no server-side encryption"),
    ({"SqsManagedSseEnabled": False}, "no server-side encryption"),
    ({"SqsManagedSseEnabled": True, "KmsMasterKeyId": "alias/letters"}, "both"),
])
def test_the_queue_check(properties: dict[str, Any], finding: str | None) -> None:
    found = queue_findings(properties)
    assert [f[:len(finding)] for f in found] == [finding] if finding else found == []


@pytest.mark.parametrize("properties, ok", [
    ({"SSESpecification": {"SSEEnabled": False}}, True),  # the AWS owned key, said so
    ({"SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"}}, True),
    ({"SSESpecification": {"SSEEnabled": True}}, True),  # KMS is the only type
    ({}, False),  # silently the default: not stated
    ({"SSESpecification": {"SSEEnabled": "false"}}, False),
    ({"SSESpecification": {"SSEEnabled": True, "SSEType": "AES256"}}, False),
])
def test_the_table_check(properties: dict[str, Any], ok: bool) -> None:
    assert (table_findings(properties) == []) is ok


# --- the real template ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return parse(INFRA_TEMPLATE.read_text())


def test_every_queue_is_encrypted(template: dict[str, Any]) -> None:
    queues = of_type(template, "AWS::SQS::Queue")
    assert {"IngestQueue", "IngestDeadLetterQueue", "StreamDeadLetterQueue"} <= set(queues)
    assert {name: queue_findings(queue) for name, queue in queues.items() if queue_findings(queue)} == {}


def test_every_table_states_its_encryption_key(template: dict[str, Any]) -> None:
    tables = of_type(template, "AWS::DynamoDB::Table")
    assert len(tables) == 4
    assert {name: table_findings(table) for name, table in tables.items() if table_findings(table)} == {}


def test_every_bucket_is_encrypted_private_and_tls_only(template: dict[str, Any]) -> None:
    buckets = of_type(template, "AWS::S3::Bucket")
    assert {name: bucket_findings(template, name) for name in buckets if bucket_findings(template, name)} == {}


def test_the_dead_letter_bucket_is_in_the_template_and_checked(template: dict[str, Any]) -> None:
    buckets = of_type(template, "AWS::S3::Bucket")
    outputs = [output for output, variable in OUTPUT_VARIABLES.items() if variable == "DEAD_LETTER_BUCKET"]
    assert outputs, "no stack output is recorded as DEAD_LETTER_BUCKET"
    (output,) = outputs
    named = [bucket for bucket in buckets if refers_to(template["Outputs"][output]["Value"], bucket)]
    assert len(named) == 1, f"output {output} names no bucket of the template ({sorted(buckets)})"
    assert bucket_findings(template, named[0]) == []
