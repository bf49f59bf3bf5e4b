"""Read a table's real stream from moto and hand back records in Lambda's shape."""

from __future__ import annotations

from typing import Any

import boto3

from tooling.lambda_shapes import lambda_stream_record


class StreamReader:
    """Reads every shard of one stream from where it left off (TRIM_HORIZON first), like a poller."""

    def __init__(self, stream_arn: str, session: Any = None):
        self._streams = (session or boto3).client("dynamodbstreams")
        self._arn = stream_arn
        self._iterators: dict[str, str | None] = {}

    def read(self) -> list[dict[str, Any]]:
        """All records written since the last read, in shard order, as Lambda delivers them."""
        shards = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]
        records: list[dict[str, Any]] = []
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self._iterators[shard_id]
            while iterator:
                answer = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                records.extend(lambda_stream_record(r, self._arn) for r in answer["Records"])
                iterator = answer.get("NextShardIterator")
                if not answer["Records"]:
                    break
            self._iterators[shard_id] = iterator
        return records


def lambda_records_from_stream(stream_arn: str, session: Any = None) -> list[dict[str, Any]]:
    """Every record currently in the stream (from TRIM_HORIZON), in Lambda's shape."""
    return StreamReader(stream_arn, session).read()
