"""The garbage collector's view of the daemon's long-lived objects.

The configuration, the service runtimes and the imported modules live as long as the process,
yet every full (generation 2) collection walks them again: at 1,000 services that was a
70-100 ms pause of the event loop every second or so during a mass failover, and every apply,
verification and probe in flight waited through it. After start-up (and after each reload)
they are moved to the permanent generation (`gc.freeze`), so full collections only walk what
was created since. Objects freed by reference counting are freed as before; only cycles
created before a freeze wait for the next `settle()` (a reload), which unfreezes first.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def settle() -> float:
    """Collect what is garbage now, then freeze the survivors; returns the seconds it took."""
    began = time.monotonic()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    took = time.monotonic() - began
    log.debug("heap settled: %d objects frozen in %.0f ms", gc.get_freeze_count(), took * 1000)
    return took
