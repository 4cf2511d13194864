"""failover: keep a service reachable when the cloud hosting it goes down."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("failover")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
