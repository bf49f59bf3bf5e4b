"""The one error classifier: every AWS failure is retryable, the item's fault, or the system's.

- **retryable**: throttling, any 5xx, connection trouble and timeouts. Another attempt may succeed:
  retried with backoff (`chalicelib.retry`), then dead-lettered or left in the queue.
- **item**: the request's content is refused (DynamoDB `ValidationException` on an item, a per-entry
  EventBridge rejection, an SQS entry failed by the sender's fault). Retrying changes nothing; a whole
  request refused this way is split until the refused item stands alone, so its neighbours go on.
- **systemic**: nothing a record did (access denied, a table, bus, queue or bucket that does not exist,
  credentials, KMS keys, any other request-level 4xx). Never retried, never split: every record the
  request carried is dead-lettered with `reason` = `systemic: <ErrorCode>` and logged at ERROR.

The code tables follow botocore's own retry model (`botocore/data/_retry.json`, `retries/standard.py`) and
the services' documented error codes; a code in no table falls back on its HTTP status (5xx and 429 are
retryable, any other request-level 4xx is systemic). Per-entry answers (PutEvents `ErrorCode`, SQS
`Failed` entries, DynamoDB `UnprocessedItems`) are classified by `entry_failure` / `UNPROCESSED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore import exceptions as botocore_errors


class Fault(StrEnum):
    """Whose fault a failure is, which decides what happens to the records it carried."""

    RETRYABLE = "retryable"
    ITEM = "item"
    SYSTEMIC = "systemic"


RETRYABLE_CODES = frozenset({
    # throttling, as botocore's standard retry mode lists it
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
    # SQS throttling and limits that clear by themselves; a KMS key that is briefly unavailable
    "AWS.SimpleQueueService.RequestThrottled", "OverLimit", "KmsThrottled", "KMS.ThrottlingException",
    "KMS.KeyUnavailableException", "KmsKeyUnavailable",
    # transient service errors (also answered with a 5xx, which is retryable whatever its code)
    "RequestTimeout", "RequestTimeoutException", "InternalFailure", "InternalException", "InternalError",
    "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException", "ReplicatedWriteConflictException",
    # a resource still changing state (a Lambda event source mapping `chalice deploy` is still Creating)
    "ResourceInUseException",
})

ITEM_CODES = frozenset({
    # DynamoDB refuses an item (key too long, item over 400 KB, a number it cannot hold, a failed condition)
    "ValidationException", "ItemCollectionSizeLimitExceededException", "ConditionalCheckFailedException",
    # EventBridge per-entry rejections
    "InvalidArgument", "MalformedDetail",
    # SQS: the batch is too long as a whole (split it), or an entry is (too long for the queue, invalid body)
    "AWS.SimpleQueueService.BatchRequestTooLong", "BatchRequestTooLong", "InvalidMessageContents",
    "InvalidParameterValue",
    # S3: the object itself is refused
    "EntityTooLarge",
})

SYSTEMIC_CODES = frozenset({
    # access
    "AccessDenied", "AccessDeniedException", "NotAuthorizedForSourceException", "AllAccessDisabled",
    "UnauthorizedOperation", "AuthorizationError", "AuthFailure",
    # missing resources
    "ResourceNotFoundException", "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
    "NonExistentQueue", "NoSuchBucket", "TableNotFoundException",
    # credentials and signing
    "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException", "InvalidSignatureException",
    "InvalidClientTokenId", "SignatureDoesNotMatch", "MissingAuthenticationToken", "IncompleteSignature",
    "InvalidAccessKeyId", "AccountProblem", "RequestExpired", "RequestTimeTooSkewed",
    # KMS keys of encrypted queues, tables and buckets
    "KMS.AccessDeniedException", "KMS.DisabledException", "KMS.NotFoundException", "KMS.InvalidStateException",
    "KMS.InvalidKeyUsageException", "KMS.OptInRequired", "KmsAccessDenied", "KmsDisabled", "KmsNotFound",
    "KmsInvalidState", "KmsInvalidKeyUsage", "KmsOptInRequired", "KMSAccessDeniedException",
    "KMSDisabledException", "KMSNotFoundException", "KMSInvalidStateException",
})

_NETWORK_ERRORS = (botocore_errors.ConnectionError, botocore_errors.HTTPClientError,
                   botocore_errors.IncompleteReadError, botocore_errors.ChecksumError)
_REQUEST_ERRORS = (botocore_errors.ParamValidationError, botocore_errors.ValidationError)


@dataclass(frozen=True)
class Failure:
    """What went wrong, as a value: whose fault, the AWS error code, its message, and the operation."""

    fault: Fault
    code: str
    message: str = ""
    operation: str = ""

    @property
    def text(self) -> str:
        """`Code: message`, for a dead letter's `error` field."""
        return f"{self.code}: {self.message}" if self.message else self.code


def known_fault(code: str) -> Fault | None:
    """The fault a listed error code stands for, or None when no table lists it."""
    for table, fault in ((RETRYABLE_CODES, Fault.RETRYABLE), (ITEM_CODES, Fault.ITEM),
                         (SYSTEMIC_CODES, Fault.SYSTEMIC)):
        if code in table:
            return fault
    return None


def fault_of_status(status: int | None) -> Fault:
    """The fault of a request-level error no table lists, by its HTTP status."""
    if status is not None and (status >= 500 or status == 429):
        return Fault.RETRYABLE
    return Fault.SYSTEMIC  # any other request-level 4xx: no retry and no split can fix it


def classify(error: BaseException) -> Failure:
    """A botocore ClientError or BotoCoreError as a Failure (anything else is a bug: raise it)."""
    if isinstance(error, botocore_errors.ClientError):
        details: Mapping[str, Any] = error.response.get("Error", {}) or {}
        code = str(details.get("Code", "") or "")
        status = (error.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode")
        # SQS over JSON names both its legacy query code (Code) and the JSON one (QueryErrorCode).
        fault = (known_fault(code) or known_fault(str(details.get("QueryErrorCode", "") or ""))
                 or fault_of_status(int(status) if status else None))
        return Failure(fault, code or str(status or "ClientError"), str(details.get("Message", "") or ""),
                       error.operation_name)
    if isinstance(error, _NETWORK_ERRORS):
        return Failure(Fault.RETRYABLE, type(error).__name__, str(error))
    if isinstance(error, _REQUEST_ERRORS):  # the request's content is wrong: sending it again changes nothing
        return Failure(Fault.ITEM, type(error).__name__, str(error))
    if isinstance(error, botocore_errors.BotoCoreError):  # no credentials, no region, ...: the system's
        return Failure(Fault.SYSTEMIC, type(error).__name__, str(error))
    raise TypeError(f"not an AWS error: {type(error).__name__}") from error


def entry_failure(code: str, message: str = "", operation: str = "", *, sender_fault: bool | None = None) -> Failure:
    """One entry a batch call reported as failed (PutEvents `ErrorCode`, an SQS `Failed` entry).

    A known code decides; otherwise SQS's `SenderFault` does (true: the entry's fault, false: SQS's, worth
    another attempt), and an unknown EventBridge code (no SenderFault) is a rejection of that entry.
    """
    fault = known_fault(code)
    if fault is not None:
        return Failure(fault, code, message, operation)
    if sender_fault is False:
        return Failure(Fault.RETRYABLE, code, message, operation)
    return Failure(Fault.ITEM, code, message, operation)


# DynamoDB left these writes for later (capacity): always worth another attempt.
UNPROCESSED = Failure(Fault.RETRYABLE, "UnprocessedItems", "DynamoDB left the write unprocessed", "BatchWriteItem")


def letter_reason(failure: Failure, attempts: int) -> str:
    """A dead letter's `reason` for a failure after `attempts` attempts (the same words for every consumer)."""
    operation = failure.operation or "the request"
    if failure.fault is Fault.SYSTEMIC:
        return f"systemic: {failure.code}"
    if failure.fault is Fault.ITEM:
        return f"{operation} refused the record: {failure.code}"
    return f"{operation} failed after {attempts} attempt(s): {failure.code}"
