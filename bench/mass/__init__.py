"""The mass-failover benchmark's parts (`bench/mass_failover.py` runs them)."""
