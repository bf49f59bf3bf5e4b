"""The local stack: moto server, the app's HTTP API and pollers with Lambda's semantics (not shipped)."""
