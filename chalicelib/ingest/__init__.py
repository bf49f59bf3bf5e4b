"""Ingestion: SQS messages of device and location metadata → DEVICE_METADATA_TABLE, poison → INGEST_DLQ_URL.

`messages` decides (pure: an SQS record becomes a `DeviceSighting` or a `Rejection`), `source_queue`
talks to the queue the messages came from, `consumer` runs one Lambda batch.
"""
