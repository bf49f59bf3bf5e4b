"""stream-pipeline business logic. `app.py` only wires these modules to Chalice."""
