"""The analytics platform's ingest API."""
