"""Test kits for code built on failover: the provider contract suite (`providers`), the same
checks every built-in provider passes, for third-party provider packages to run."""
