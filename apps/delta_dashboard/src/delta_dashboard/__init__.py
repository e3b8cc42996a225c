"""Delta Lake dashboard."""
