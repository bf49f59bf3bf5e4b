"""The inbox's reading of a DLQ message: an envelope, a raw ingest message, or something else."""

from __future__ import annotations

from ops.dead_letter_inbox import RAW_INGEST_REASON, classify


def test_inbox_reads_envelopes_raw_ingest_messages_and_rejects_the_rest() -> None:
    envelope = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": '{"consumer":"fanout","reason":"x","error":"",'
                '"attempts":1,"failed_at":"2026-11-22T10:00:00.000Z","record":{}}'}
    assert classify(envelope, raw_is_ingest=False).consumer == "fanout"
    raw = {"MessageId": "m2", "ReceiptHandle": "r2", "Body": '{"user_id":"u"}',
           "Attributes": {"SentTimestamp": "1795000000000", "ApproximateReceiveCount": "6"}}
    message = classify(raw, raw_is_ingest=True)
    assert message.consumer == "ingest" and message.reason == RAW_INGEST_REASON
    assert message.letter is not None and message.letter.record["messageId"] == "m2"
    assert "receiptHandle" not in message.letter.record and message.letter.attempts == 6
    unreadable = classify(raw, raw_is_ingest=False)
    assert unreadable.letter is None and unreadable.problem.startswith("not a dead letter")
