"""Real servers for the services' integration tests (not shipped to hosts)."""
