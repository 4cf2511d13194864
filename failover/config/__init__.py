"""The configuration: YAML file → typed, frozen `Config` (docs/configuration.md).

Deliberately empty: the pure decision core imports `failover.config.types`, and importing this
package must not pull in the loader, YAML or any I/O. Import what you need from its modules.
"""
