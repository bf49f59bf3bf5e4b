"""The one error classifier, case by case, on errors shaped as botocore builds them from AWS answers."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)

from chalicelib.faults import UNPROCESSED, Failure, Fault, classify, entry_failure, letter_reason
from tests.support.faults import aws_error

RETRY, ITEM, SYSTEM = Fault.RETRYABLE, Fault.ITEM, Fault.SYSTEMIC


@pytest.mark.parametrize(("service", "operation", "code", "status", "fault"), [
    # throttling and service errors: another attempt may succeed
    ("dynamodb", "BatchWriteItem", "ProvisionedThroughputExceededException", 400, RETRY),
    ("dynamodb", "BatchWriteItem", "ThrottlingException", 400, RETRY),
    ("dynamodb", "UpdateItem", "RequestLimitExceeded", 400, RETRY),
    ("dynamodb", "UpdateItem", "TransactionInProgressException", 400, RETRY),
    ("dynamodb", "BatchWriteItem", "InternalServerError", 500, RETRY),
    ("events", "PutEvents", "ThrottlingException", 400, RETRY),
    ("events", "PutEvents", "InternalException", 500, RETRY),
    ("s3", "PutObject", "SlowDown", 503, RETRY),
    ("s3", "PutObject", "InternalError", 500, RETRY),
    ("dynamodb", "BatchWriteItem", "SomethingNewAndTransient", 503, RETRY),  # any 5xx
    ("events", "PutEvents", "TooManyRequestsException", 429, RETRY),
    ("lambda", "UpdateEventSourceMapping", "ResourceInUseException", 400, RETRY),  # a mapping still Creating
    # the item's fault: a request refused for its content
    ("dynamodb", "BatchWriteItem", "ValidationException", 400, ITEM),
    ("dynamodb", "UpdateItem", "ConditionalCheckFailedException", 400, ITEM),
    ("dynamodb", "BatchWriteItem", "ItemCollectionSizeLimitExceededException", 400, ITEM),
    ("events", "PutEvents", "ValidationException", 400, ITEM),
    # the system's: nothing a record did
    ("dynamodb", "BatchWriteItem", "AccessDeniedException", 400, SYSTEM),
    ("dynamodb", "BatchWriteItem", "ResourceNotFoundException", 400, SYSTEM),
    ("dynamodb", "UpdateItem", "UnrecognizedClientException", 400, SYSTEM),
    ("dynamodb", "UpdateItem", "ExpiredTokenException", 400, SYSTEM),
    ("dynamodb", "UpdateItem", "InvalidSignatureException", 400, SYSTEM),
    ("events", "PutEvents", "AccessDeniedException", 400, SYSTEM),
    ("events", "PutEvents", "ResourceNotFoundException", 400, SYSTEM),
    ("s3", "PutObject", "AccessDenied", 403, SYSTEM),
    ("s3", "PutObject", "NoSuchBucket", 404, SYSTEM),
    ("s3", "PutObject", "InvalidAccessKeyId", 403, SYSTEM),
    ("dynamodb", "BatchWriteItem", "SomeNewRequestError", 400, SYSTEM),  # any other request-level 4xx
])
def test_request_level_errors(service, operation, code, status, fault):
    failure = classify(aws_error(service, operation, code, "message from AWS", status=status))
    assert failure == Failure(fault, code, "message from AWS", operation)


@pytest.mark.parametrize(("query_error", "json_code", "fault"), [
    ("AWS.SimpleQueueService.NonExistentQueue;Sender", "QueueDoesNotExist", SYSTEM),
    ("KMS.AccessDeniedException;Sender", "KmsAccessDenied", SYSTEM),
    ("KMS.DisabledException;Sender", "KmsDisabled", SYSTEM),
    ("AWS.SimpleQueueService.RequestThrottled;Sender", "RequestThrottled", RETRY),
    ("KMS.ThrottlingException;Sender", "KmsThrottled", RETRY),
    ("AWS.SimpleQueueService.BatchRequestTooLong;Sender", "BatchRequestTooLong", ITEM),
    ("InvalidParameterValue;Sender", "InvalidParameterValue", ITEM),  # "Message must be shorter than …"
])
def test_sqs_errors_over_json_carry_both_codes(query_error, json_code, fault):
    error = aws_error("sqs", "SendMessageBatch", json_code, query_error=query_error)
    assert error.response["Error"]["QueryErrorCode"] == json_code  # botocore's shape for SQS over JSON
    assert classify(error).fault is fault


def test_an_sqs_access_denial_is_systemic():
    error = aws_error("sqs", "SendMessageBatch", "AccessDenied", status=403,
                      query_error="AccessDenied;Sender")
    assert classify(error) == Failure(SYSTEM, "AccessDenied", "injected", "SendMessageBatch")


@pytest.mark.parametrize(("error", "fault"), [
    (EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"), RETRY),
    (ConnectTimeoutError(endpoint_url="https://sqs.us-east-1.amazonaws.com"), RETRY),
    (ReadTimeoutError(endpoint_url="https://events.us-east-1.amazonaws.com"), RETRY),
    (ParamValidationError(report="Invalid type for parameter Entries[0].Detail"), ITEM),
    (NoCredentialsError(), SYSTEM),
    (NoRegionError(), SYSTEM),
])
def test_botocore_errors_without_an_answer(error, fault):
    failure = classify(error)
    assert failure.fault is fault and failure.code == type(error).__name__


def test_anything_else_is_not_an_aws_error():
    with pytest.raises(TypeError):
        classify(KeyError("x"))


@pytest.mark.parametrize(("code", "sender_fault", "fault"), [
    # PutEvents entries: no SenderFault; a code no table lists is a rejection of that entry
    ("ThrottlingException", None, RETRY),
    ("InternalFailure", None, RETRY),
    ("InvalidArgument", None, ITEM),
    ("MalformedDetail", None, ITEM),
    ("SomeNewRejection", None, ITEM),
    ("AccessDeniedException", None, SYSTEM),
    ("NotAuthorizedForSourceException", None, SYSTEM),
    ("ResourceNotFoundException", None, SYSTEM),
    # SQS Failed entries: SenderFault decides unless the code is listed (a KMS denial is the system's)
    ("InternalError", False, RETRY),
    ("ServiceUnavailable", False, RETRY),
    ("InvalidParameterValue", True, ITEM),
    ("ReceiptHandleIsInvalid", True, ITEM),
    ("KMS.AccessDeniedException", True, SYSTEM),
    ("KmsDisabled", True, SYSTEM),
])
def test_per_entry_failures(code, sender_fault, fault):
    assert entry_failure(code, "m", "Op", sender_fault=sender_fault) == Failure(fault, code, "m", "Op")


def test_unprocessed_items_are_always_worth_another_attempt():
    assert UNPROCESSED.fault is RETRY and UNPROCESSED.operation == "BatchWriteItem"


def test_a_letters_reason_says_whose_fault_it_was():
    assert letter_reason(Failure(SYSTEM, "AccessDeniedException", "no", "BatchWriteItem"), 1) == (
        "systemic: AccessDeniedException")
    assert letter_reason(Failure(ITEM, "ValidationException", "too big", "BatchWriteItem"), 1) == (
        "BatchWriteItem refused the record: ValidationException")
    assert letter_reason(Failure(RETRY, "ThrottlingException", "slow", "PutEvents"), 3) == (
        "PutEvents failed after 3 attempt(s): ThrottlingException")
    assert Failure(SYSTEM, "AccessDenied", "nope").text == "AccessDenied: nope"
