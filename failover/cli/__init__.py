"""The `failover` command line: argument parsing and printing only; no logic."""

from failover.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
