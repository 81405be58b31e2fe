"""Bucket aggregators: time-bucketed statistics from logs and other records."""
