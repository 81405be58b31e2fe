"""Benchmarks: ``python -m bench --help``. Each prints its figures and the ratio against its
baseline, both measured in the same run."""
