"""Benches start the daemon as an installed one starts: from compiled bytecode.

pip compiles a package's modules when it installs it. An editable checkout run with
PYTHONDONTWRITEBYTECODE=1 (set on the project's machines) has no bytecode for failover's own
modules, so every daemon start compiled them from source (13% of the start-up's samples in
`bench/mass_failover.py --profile-start`): importing the daemon took 0.49 s instead of 0.36 s.
Python reads existing bytecode whatever that variable says; this writes it once (into the
git-ignored `__pycache__` directories) and skips what is up to date.
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "failover"


def compile_failover(package: Path = PACKAGE) -> None:
    """Compile every module of `package` (the checkout the daemon runs from)."""
    if not compileall.compile_dir(package, quiet=1):
        raise SystemExit(f"cannot compile {package}: see the errors above")
