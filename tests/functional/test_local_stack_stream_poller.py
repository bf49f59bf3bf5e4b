"""The stream poller against moto's real DynamoDB stream: order, batching, retries, bisect, give-up."""

from __future__ import annotations

import json
from typing import Any

import boto3

from local_stack.delivery import RetryPolicy
from local_stack.invocation import Invoker
from local_stack.sources import StreamSource
from local_stack.stream_poller import StreamPoller
from tooling.merge_template import MappingSettings


class Clock:
    """A clock tests move by hand: batching windows and retry delays without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A handler that records each batch's sequence numbers and fails while `fail(batch)` says so."""

    def __init__(self, fail: Any = None, response: Any = None):
        self.batches: list[list[str]] = []
        self.events: list[dict[str, Any]] = []
        self._fail = fail or (lambda batch: False)
        self._response = response

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        batch = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        self.batches.append(batch)
        self.events.append(event)
        if self._fail(batch):
            raise RuntimeError(f"failing batch of {len(batch)}")
        return self._response(batch) if callable(self._response) else self._response


def put_users(aws: Any, *names: str) -> None:
    for name in names:
        boto3.client("dynamodb").put_item(TableName=aws["UsersTable"], Item={"email": {"S": f"{name}@x.io"}})


def poller(aws: Any, handler: Recorder, clock: Clock, *, batch_size: int = 100, window: float = 0.0,
           position: str = "TRIM_HORIZON", settings: MappingSettings | None = None,
           retry: RetryPolicy | None = None) -> StreamPoller:
    source = StreamSource("consumer", "app.consumer", aws["UsersStreamArn"], batch_size, position, window)
    settings = settings or MappingSettings()
    invoker = Invoker("consumer", handler, settings.report_failures, clock=clock,
                      function_name="stream-pipeline-test-consumer")
    return StreamPoller(source, invoker, boto3.client("dynamodbstreams"), retry or RetryPolicy(base=1, cap=1),
                        settings, boto3.client("sqs"), clock=clock, wall=lambda: clock.now)


def drain(stream_poller: StreamPoller, clock: Clock, rounds: int = 30, step: float = 1.0) -> None:
    for _ in range(rounds):
        stream_poller.poll_once()
        clock.now += step


def all_sequences(handler: Recorder) -> list[str]:
    return [s for batch in handler.batches for s in batch]


def queue_bodies(url: str) -> list[dict[str, Any]]:
    answer = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def test_records_arrive_in_stream_order_in_lambdas_shape(aws):
    # GIVEN three writes on the users table
    put_users(aws, "a", "b", "c")
    handler, clock = Recorder(), Clock()
    # WHEN the poller runs
    stream_poller = poller(aws, handler, clock)
    drain(stream_poller, clock, rounds=3)
    # THEN one batch of three, in order, exactly as Lambda shapes it — and nothing is delivered twice
    assert len(handler.batches) == 1
    records = handler.events[0]["Records"]
    assert [r["dynamodb"]["Keys"]["email"]["S"] for r in records] == ["a@x.io", "b@x.io", "c@x.io"]
    assert handler.batches[0] == sorted(handler.batches[0], key=int)
    assert all(r["eventSourceARN"] == aws["UsersStreamArn"] for r in records)
    assert all(isinstance(r["dynamodb"]["ApproximateCreationDateTime"], int) for r in records)
    assert stream_poller.calls >= 3  # DescribeStream, GetShardIterator, GetRecords


def test_batches_hold_at_most_the_decorators_batch_size(aws):
    put_users(aws, "a", "b", "c", "d", "e")
    handler, clock = Recorder(), Clock()
    drain(poller(aws, handler, clock, batch_size=2), clock, rounds=5)
    assert [len(b) for b in handler.batches] == [2, 2, 1]


def test_the_batching_window_gathers_records_before_invoking(aws):
    handler, clock = Recorder(), Clock()
    stream_poller = poller(aws, handler, clock, batch_size=10, window=5.0)
    stream_poller.poll_once()
    put_users(aws, "a")
    stream_poller.poll_once()
    clock.now += 2
    put_users(aws, "b")
    stream_poller.poll_once()
    assert handler.batches == []  # inside the window
    clock.now += 3.5
    stream_poller.poll_once()
    assert [len(b) for b in handler.batches] == [2]


def test_latest_skips_what_was_written_before_the_poller_started(aws):
    put_users(aws, "before")
    handler, clock = Recorder(), Clock()
    stream_poller = poller(aws, handler, clock, position="LATEST")
    stream_poller.poll_once()
    put_users(aws, "after")
    drain(stream_poller, clock, rounds=2)
    assert [r["dynamodb"]["Keys"]["email"]["S"] for e in handler.events for r in e["Records"]] == ["after@x.io"]


def test_a_handler_that_raises_gets_the_same_batch_again_after_a_backoff(aws):
    put_users(aws, "a", "b")
    failures = iter([True])
    handler, clock = Recorder(fail=lambda batch: next(failures, False)), Clock()
    stream_poller = poller(aws, handler, clock)
    stream_poller.poll_once()
    stream_poller.poll_once()  # still inside the retry delay: nothing
    assert len(handler.batches) == 1
    clock.now += 1.0
    put_users(aws, "c")
    stream_poller.poll_once()
    # THEN the retry starts with the same records (and may carry newer ones behind them)
    assert handler.batches[1][:2] == handler.batches[0]
    drain(stream_poller, clock, rounds=2)
    assert sorted(set(all_sequences(handler)), key=int) == all_sequences(handler)[2:]


def test_batch_item_failures_resume_from_the_first_failure_when_the_mapping_reports_them(aws):
    put_users(aws, "a", "b", "c")
    answers = iter([lambda batch: {"batchItemFailures": [{"itemIdentifier": batch[1]}]}])
    handler = Recorder(response=lambda batch: next(answers, lambda _: None)(batch))
    clock = Clock()
    drain(poller(aws, handler, clock, settings=MappingSettings(report_failures=True)), clock, rounds=4)
    first = handler.batches[0]
    assert handler.batches == [first, first[1:]]


def test_batch_item_failures_are_ignored_when_the_mapping_does_not_report_them(aws):
    put_users(aws, "a", "b", "c")
    handler = Recorder(response=lambda batch: {"batchItemFailures": [{"itemIdentifier": batch[1]}]})
    clock = Clock()
    drain(poller(aws, handler, clock, settings=MappingSettings(report_failures=False)), clock, rounds=4)
    assert len(handler.batches) == 1


def test_bisect_splits_a_failing_batch_until_the_halves_go_through(aws):
    put_users(aws, "a", "b", "c", "d")
    handler, clock = Recorder(fail=lambda batch: len(batch) > 1), Clock()
    stream_poller = poller(aws, handler, clock, settings=MappingSettings(bisect_on_error=True, on_failure_arn="x"))
    drain(stream_poller, clock, rounds=8)
    # THEN [a b c d] fails → [a b] fails → [a], [b] → [c d] fails → [c], [d]: in order, none lost
    assert [len(b) for b in handler.batches] == [4, 2, 1, 1, 2, 1, 1]
    singles = [b[0] for b in handler.batches if len(b) == 1]
    assert singles == handler.batches[0]
    assert stream_poller.failure_records_sent == 0


def test_after_its_retries_a_batch_is_given_up_with_lambdas_failure_record_and_the_shard_moves_on(aws):
    put_users(aws, "poison")
    handler = Recorder(fail=lambda batch: len(handler.batches) <= 3)  # the first delivery and two retries fail
    clock = Clock()
    dlq_arn = f"arn:aws:sqs:us-east-1:123456789012:{aws['StreamDlqUrl'].rsplit('/', 1)[-1]}"
    settings = MappingSettings(max_retry_attempts=2, on_failure_arn=dlq_arn)
    stream_poller = poller(aws, handler, clock, settings=settings)
    drain(stream_poller, clock, rounds=5)
    put_users(aws, "next")
    drain(stream_poller, clock, rounds=2)
    poison = handler.batches[0]
    assert handler.batches[:3] == [poison, poison, poison]
    assert len(handler.batches) == 4 and handler.batches[3] != poison  # moved on
    [record] = queue_bodies(aws["StreamDlqUrl"])
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:stream-pipeline-test-consumer")
    info = record["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (poison[0], poison[0], 1)
    assert info["streamArn"] == aws["UsersStreamArn"]


def test_records_older_than_the_maximum_age_are_given_up_on_failure(aws):
    put_users(aws, "old")
    handler, clock = Recorder(fail=lambda batch: True), Clock()
    stream_poller = poller(aws, handler, clock, settings=MappingSettings(max_record_age=60),
                           retry=RetryPolicy(max_retry_attempts=-1, base=1, cap=1))
    import time

    clock.now = time.time() + 120  # the record is two minutes old when it first fails
    drain(stream_poller, clock, rounds=4)
    assert len(handler.batches) == 1  # given up at once: no DLQ configured, logged only


class SplitStream:
    """An in-memory DynamoDB Streams with a closed parent shard and its child (moto never splits shards)."""

    def __init__(self) -> None:
        self.shards: dict[str, dict[str, Any]] = {}

    def add_shard(self, shard_id: str, sequences: list[int], parent: str | None = None, closed: bool = False) -> None:
        self.shards[shard_id] = {"parent": parent, "closed": closed, "records": [
            {"eventID": str(n), "eventName": "INSERT", "awsRegion": "us-east-1",
             "dynamodb": {"Keys": {"id": {"S": str(n)}}, "SequenceNumber": str(n), "ApproximateCreationDateTime": 0}}
            for n in sequences]}

    def describe_stream(self, StreamArn: str, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        shards = []
        for shard_id, shard in reversed(list(self.shards.items())):  # children listed first: order must not matter
            found: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": {"StartingSequenceNumber": "0"}}
            if shard["parent"]:
                found["ParentShardId"] = shard["parent"]
            if shard["closed"]:
                found["SequenceNumberRange"]["EndingSequenceNumber"] = "9"
            shards.append(found)
        return {"StreamDescription": {"Shards": shards}}

    def get_shard_iterator(self, ShardId: str, ShardIteratorType: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        start = len(self.shards[ShardId]["records"]) if ShardIteratorType == "LATEST" else 0
        return {"ShardIterator": f"{ShardId}|{start}"}

    def get_records(self, ShardIterator: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        shard_id, position = ShardIterator.split("|")
        shard = self.shards[shard_id]
        records = shard["records"][int(position):]
        end = int(position) + len(records)
        closed_and_read = shard["closed"] and end == len(shard["records"])
        return {"Records": records, **({} if closed_and_read else {"NextShardIterator": f"{shard_id}|{end}"})}


def lineage_poller(stream: SplitStream, handler: Recorder, clock: Clock) -> StreamPoller:
    source = StreamSource("consumer", "app.consumer", "arn:aws:dynamodb:us-east-1:1:table/t/stream/x", 100,
                          "TRIM_HORIZON", 0.0)
    return StreamPoller(source, Invoker("consumer", handler, clock=clock), stream, RetryPolicy(base=1, cap=1),
                        shard_refresh=5.0, clock=clock)


def test_a_parent_shard_is_read_to_its_end_before_its_child():
    stream = SplitStream()
    stream.add_shard("parent", [1, 2], closed=True)
    stream.add_shard("child", [3, 4], parent="parent")
    failures = iter([True])  # the parent's batch fails once: the child still waits for it
    handler, clock = Recorder(fail=lambda batch: next(failures, False)), Clock()
    drain(lineage_poller(stream, handler, clock), clock, rounds=4)
    assert handler.batches == [["1", "2"], ["1", "2"], ["3", "4"]]


def test_new_shards_are_picked_up_from_their_beginning():
    stream = SplitStream()
    stream.add_shard("first", [1])
    handler, clock = Recorder(), Clock()
    stream_poller = lineage_poller(stream, handler, clock)
    stream_poller.poll_once()
    stream.add_shard("later", [7, 8])
    stream_poller.poll_once()
    assert handler.batches == [["1"]]  # not looked for yet
    clock.now += 5.0
    stream_poller.poll_once()
    assert handler.batches == [["1"], ["7", "8"]]
    assert set(stream_poller.shards) == {"first", "later"}


def test_latest_skips_closed_shards_for_good_and_reads_their_children():
    stream = SplitStream()
    stream.add_shard("old", [1, 2], closed=True)
    stream.add_shard("current", [3], parent="old")
    handler, clock = Recorder(), Clock()
    source = StreamSource("consumer", "app.consumer", "arn:aws:dynamodb:us-east-1:1:table/t/stream/x", 100,
                          "LATEST", 0.0)
    stream_poller = StreamPoller(source, Invoker("consumer", handler, clock=clock), stream, shard_refresh=1.0,
                                 clock=clock)
    drain(stream_poller, clock, rounds=3)
    assert handler.batches == []  # LATEST: neither the closed shard nor what was in the open one
    stream.shards["current"]["records"].append(
        {"eventID": "4", "eventName": "INSERT", "dynamodb": {"Keys": {}, "SequenceNumber": "4"}})
    drain(stream_poller, clock, rounds=3)
    assert handler.batches == [["4"]]
