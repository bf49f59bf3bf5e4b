"""A DynamoDB stream event source mapping: shards read in order, parents before children, batches built
by size and window, a failing batch delivered again (from the first reported failure when enabled),
bisected when the mapping says so, and given up on after its retry cap or record age with Lambda's
failure record sent to its on-failure destination."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from local_stack.delivery import Result, RetryPolicy, batch_due, stream_settled
from local_stack.invocation import Invoker
from local_stack.sources import StreamSource
from tooling.lambda_shapes import lambda_stream_record
from tooling.merge_template import MappingSettings

logger = logging.getLogger("local_stack.streams")

GET_RECORDS_LIMIT = 1000  # DynamoDB Streams' maximum per call


@dataclass
class Shard:
    """Where one shard is read up to, and what was read but not yet settled."""

    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    open: bool = True  # False once GetRecords stops returning a next iterator (the shard is closed)
    buffer: list[dict[str, Any]] = field(default_factory=list)
    first_buffered_at: float | None = None
    last_read_sequence: str | None = None
    failures: int = 0
    invocations_of_batch: int = 0
    retry_at: float = 0.0
    segments: list[int] = field(default_factory=list)  # sizes of a bisected batch's parts still to deliver

    @property
    def finished(self) -> bool:
        """Closed and everything in it delivered: its children may start."""
        return not self.open and not self.buffer


class StreamPoller:
    """Feeds one `@app.on_dynamodb_record` handler from every shard of its stream."""

    def __init__(self, source: StreamSource, invoker: Invoker, streams: Any, retry: RetryPolicy | None = None,
                 settings: MappingSettings | None = None, sqs: Any = None, shard_refresh: float = 1.0,
                 region: str = "us-east-1", account: str = "123456789012",
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.source = source
        self.calls = 0  # DynamoDB Streams API calls made (and SQS calls for failure records)
        self.failure_records_sent = 0
        self._invoker = invoker
        self._streams = streams
        self._settings = settings or MappingSettings()
        retry = retry or RetryPolicy()
        if self._settings.max_retry_attempts is not None:
            retry = RetryPolicy(self._settings.max_retry_attempts, retry.base, retry.cap)
        self._retry = retry
        self._sqs = sqs
        self._account = account
        self._wall = wall
        self._refresh_every = shard_refresh
        self._region = region
        self._clock = clock
        self._shards: dict[str, Shard] = {}
        self._skipped: set[str] = set()
        self._refreshed_at: float | None = None

    @property
    def shards(self) -> dict[str, Shard]:
        """Shards known so far, by id."""
        return self._shards

    def poll_once(self) -> bool:
        """One round over the shards; True when a batch was delivered (call again at once)."""
        now = self._clock()
        if self._refreshed_at is None or now - self._refreshed_at >= self._refresh_every:
            self._refresh_shards()
            self._refreshed_at = now
        delivered = False
        for shard in list(self._shards.values()):
            if not self._may_read(shard):
                continue
            self._read(shard)
            if self._due(shard):
                self._deliver(shard)
                delivered = True
        return delivered

    def _may_read(self, shard: Shard) -> bool:
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.finished  # parent before child: per-key order across a split

    def _refresh_shards(self) -> None:
        first_listing = self._refreshed_at is None
        arguments: dict[str, Any] = {"StreamArn": self.source.stream_arn}
        while True:
            self.calls += 1
            description = self._streams.describe_stream(**arguments)["StreamDescription"]
            for found in description.get("Shards", []):
                shard_id = found["ShardId"]
                if shard_id in self._shards or shard_id in self._skipped:
                    continue
                closed = "EndingSequenceNumber" in found.get("SequenceNumberRange", {})
                # The decorator's starting position applies to the shards there at start; a shard that
                # appears later is read from its beginning, as Lambda does.
                position = self.source.starting_position if first_listing else "TRIM_HORIZON"
                if position == "LATEST" and closed:
                    self._skipped.add(shard_id)  # nothing after LATEST in a closed shard, now or later
                    continue
                shard = Shard(shard_id, found.get("ParentShardId"))
                shard.iterator = self._iterator(shard_id, position)
                self._shards[shard_id] = shard
                logger.info("%s: reading shard %s of %s from %s", self.source.name, shard_id,
                            _table_of(self.source.stream_arn), position)
            last = description.get("LastEvaluatedShardId")
            if not last:
                return
            arguments["ExclusiveStartShardId"] = last

    def _iterator(self, shard_id: str, position: str, after: str | None = None) -> str | None:
        arguments: dict[str, Any] = {"StreamArn": self.source.stream_arn, "ShardId": shard_id,
                                     "ShardIteratorType": position}
        if after is not None:
            arguments["SequenceNumber"] = after
        self.calls += 1
        return self._streams.get_shard_iterator(**arguments).get("ShardIterator")

    def _read(self, shard: Shard) -> None:
        if shard.iterator is None or len(shard.buffer) >= self.source.batch_size:
            return
        try:
            self.calls += 1
            answer = self._streams.get_records(ShardIterator=shard.iterator, Limit=GET_RECORDS_LIMIT)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
                raise
            after = shard.last_read_sequence
            shard.iterator = self._iterator(shard.shard_id, "AFTER_SEQUENCE_NUMBER" if after else "TRIM_HORIZON",
                                            after)
            return
        records = answer.get("Records", [])
        if records:
            if not shard.buffer:
                shard.first_buffered_at = self._clock()
            shard.buffer.extend(records)
            shard.last_read_sequence = records[-1]["dynamodb"]["SequenceNumber"]
        shard.iterator = answer.get("NextShardIterator")
        if shard.iterator is None:
            shard.open = False
            logger.info("%s: shard %s is closed", self.source.name, shard.shard_id)

    def _due(self, shard: Shard) -> bool:
        if not shard.buffer or self._clock() < shard.retry_at:
            return False
        if shard.failures or not shard.open:
            return True  # a retry, or the tail of a closed shard: no reason to wait
        waited = self._clock() - (shard.first_buffered_at or self._clock())
        return batch_due(len(shard.buffer), self.source.batch_size, waited, self.source.batching_window)

    def _deliver(self, shard: Shard) -> None:
        batch = shard.buffer[: shard.segments[0] if shard.segments else self.source.batch_size]
        ids = [record["dynamodb"]["SequenceNumber"] for record in batch]
        event = {"Records": [lambda_stream_record(record, self.source.stream_arn, self._region) for record in batch]}
        notes = [f"retry {shard.failures}"] if shard.failures else []
        if shard.segments:
            notes.append("bisected")
        shard.invocations_of_batch += 1
        delivery = self._invoker.invoke(event, ids, f"stream {_table_of(self.source.stream_arn)}", ", ".join(notes))
        settled = stream_settled(ids, delivery.outcome)
        del shard.buffer[:settled]
        result = delivery.outcome.result
        if result is Result.OK:
            shard.failures = shard.invocations_of_batch = 0
            shard.retry_at = 0.0
            del shard.segments[:1]
        elif result is Result.FAILED and self._settings.bisect_on_error and len(batch) > 1:
            # BisectBatchOnFunctionError: each half is retried on its own, at once; a split is not a retry.
            half = len(batch) // 2
            shard.segments[:1] = [half, len(batch) - half]
            shard.retry_at = 0.0
        else:
            shard.failures += 1
            unsettled = batch[settled:]
            condition = self._give_up_condition(shard.failures, unsettled)
            if condition:
                self._give_up(shard, unsettled, condition)
                del shard.buffer[: len(unsettled)]
                shard.failures = shard.invocations_of_batch = 0
                shard.retry_at = 0.0
                del shard.segments[:1]
            else:
                shard.retry_at = self._clock() + self._retry.delay(shard.failures)
        shard.first_buffered_at = self._clock() if shard.buffer else None

    def _give_up_condition(self, failures: int, unsettled: list[dict[str, Any]]) -> str:
        if self._retry.exhausted(failures):
            return "RetryAttemptsExhausted"
        max_age = self._settings.max_record_age
        if max_age is not None and unsettled:
            created = unsettled[0]["dynamodb"].get("ApproximateCreationDateTime")
            if created is not None and self._wall() - _epoch(created) > max_age:
                return "RecordAgeExceeded"
        return ""

    def _give_up(self, shard: Shard, records: list[dict[str, Any]], condition: str) -> None:
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        logger.error("%s: gave up on %d record(s) %s..%s of shard %s (%s after %d invocation(s)); moving on",
                     self.source.name, len(records), first["SequenceNumber"], last["SequenceNumber"],
                     shard.shard_id, condition, shard.invocations_of_batch)
        destination = self._settings.on_failure_arn
        if not destination or self._sqs is None:
            return
        body = failure_record(self._function_arn(), condition, shard.invocations_of_batch, shard.shard_id, records,
                              self.source.stream_arn, self._wall())
        queue = destination.rsplit(":", 1)[-1]
        self.calls += 2
        url = self._sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
        self.failure_records_sent += 1
        logger.warning("%s: failure record sent to %s", self.source.name, queue)

    def _function_arn(self) -> str:
        return f"arn:aws:lambda:{self._region}:{self._account}:function:{self._invoker.function_name}"


def failure_record(function_arn: str, condition: str, invoke_count: int, shard_id: str,
                   records: list[dict[str, Any]], stream_arn: str, now: float) -> dict[str, Any]:
    """Lambda's on-failure destination record for a stream batch it gave up on (it names, not holds, them)."""
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
    return {
        "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": function_arn, "condition": condition,
                           "approximateInvokeCount": invoke_count},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": _iso(now),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(_epoch(first.get("ApproximateCreationDateTime", now))),
            "approximateArrivalOfLastRecord": _iso(_epoch(last.get("ApproximateCreationDateTime", now))),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def _epoch(value: Any) -> float:
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def _table_of(stream_arn: str) -> str:
    """`arn:...:table/NAME/stream/LABEL` → NAME."""
    parts = stream_arn.split("/")
    return parts[1] if len(parts) > 2 else stream_arn
