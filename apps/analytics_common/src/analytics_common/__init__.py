"""Shared pieces of the analytics platform's services."""
