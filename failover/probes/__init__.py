"""Probes: one file per kind, one signature (`base.ProbeFn`); the registry maps `type` to it."""
