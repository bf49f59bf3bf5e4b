"""Tooling shared by `ops` and `local_stack` (never shipped to Lambda; imports neither of them).

The stage configuration (`stage`), the infrastructure template deployer (`infrastructure`), the one reader of
the merge template (`merge_template`) and Lambda's record shapes (`lambda_shapes`).
"""
