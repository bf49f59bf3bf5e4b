"""Users API: validation, storage in USERS_TABLE, and listing from the replicated table."""
