"""Operator tooling (never shipped to Lambda): `python -m ops <verb> --stage STAGE`."""
