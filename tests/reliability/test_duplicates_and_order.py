"""At-least-once at its worst: every batch delivered twice, through the stream poller, gives the same target
state as once (the projection of the source: `ops verify` finds no drift), every event is published exactly
twice, and each shard is read in order."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from tests.reliability import figures
from tests.reliability.histories import write_history
from tests.reliability.lambda_like import Clock, Handler, drain_streams, read_all, stream_poller
from tests.support.resources import StageResources
from tests.support.streams import StreamReader


def test_every_batch_delivered_twice_gives_the_same_state(aws: StageResources, run_ops: Any) -> None:
    # GIVEN a history of changes on the users stream
    write_history(aws["UsersTable"], figures.DUPLICATED_RECORDS, random.Random(303))
    history = StreamReader(aws["UsersStreamArn"]).read()

    # WHEN replication and fan-out get every batch twice
    clock = Clock()
    handlers = [Handler("replicate_users", twice=True), Handler("fanout_users", twice=True)]
    drain_streams([stream_poller(handler, aws["UsersStreamArn"], clock) for handler in handlers], clock)

    # THEN the target is the projection of the source, and every event was published exactly twice
    assert run_ops("verify") == 0
    published = Counter(event["detail"]["eventID"] for event in read_all(aws["SubscriberQueueUrl"]))
    assert published == Counter({record["eventID"]: 2 for record in history})
    # AND each shard was read in order, by both consumers
    sequence = [record["dynamodb"]["SequenceNumber"] for record in history]
    for handler in handlers:
        assert [s for batch in handler.batches for s in batch] == sequence
        assert handler.errors == Counter()
    figures.record("Duplicates and order", run="every batch delivered twice", **{
        "records in": len(history), "invocations": sum(h.invocations for h in handlers),
        "drift after": 0, "events published": sum(published.values()), "duplicates": len(history),
        "out of order": 0})
