"""Diff analyzers: what changed between two snapshots of a volume."""
