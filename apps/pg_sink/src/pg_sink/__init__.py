"""Kafka -> PostgreSQL sink."""
