"""Stages shipped with the pipeline: the domain side. Nothing here imports zmq.

Each module holds one family of stages written to the contract in ``pipeline.contract``:
``files`` (sources reading lines and JSON records), ``basic`` (map and filter helpers and a
keyed counter), ``text`` (words, and the sample-text generator), ``jsonl`` (a JSON-lines sink).
The packages hold the product's domain stages: ``wrstat`` (storage usage reports from wrstat
stats files) and ``diff`` (what changed between two snapshots of a volume).
"""
