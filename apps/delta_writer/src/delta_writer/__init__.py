"""Kafka -> Delta Lake writer."""
