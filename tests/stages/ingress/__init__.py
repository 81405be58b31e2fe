"""Tests of stages.ingress."""
