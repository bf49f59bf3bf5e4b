"""Async orders: POST answers at once with a PENDING order; the orders stream computes its total."""
