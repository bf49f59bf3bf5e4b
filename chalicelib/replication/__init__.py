"""Replication: the users stream keeps USERS_BY_LOCATION_TABLE equal to the projection of the users table."""
