"""Shared test support: resources from the infrastructure template, Lambda event factories."""
