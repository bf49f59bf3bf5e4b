"""Ingestion: SQS messages of device and location metadata → DEVICE_METADATA_TABLE, poison → INGEST_DLQ_URL.

`messages` decides (pure: an SQS record becomes a `DeviceSighting` or a `Rejection`), `consumer` runs one
Lambda batch and returns its Outcome; the consumer runtime stores the letters and deletes the finished
messages from their queue (`chalicelib.source_queue`).
"""
