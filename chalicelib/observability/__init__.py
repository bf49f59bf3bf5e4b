"""What a running consumer tells the operator: EMF metrics on stdout, and JSON log lines."""
