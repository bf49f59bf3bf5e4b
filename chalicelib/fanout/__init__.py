"""Fan-out: every users-stream record becomes one EventBridge event; what cannot be published is dead-lettered.

`events` (pure): stream record → PutEvents entry, entry sizing as EventBridge computes it, packing.
`publisher` (adapter): PutEvents with per-entry retries. `consumer`: the Lambda handler's body.
"""
