"""Run a command under the kernel restrictions the systemd unit asks for, without systemd.

    python tests/deploy/sandbox.py UNIT_FILE -- COMMAND...

No systemd runs here (nor in CI), yet the unit's MemoryDenyWriteExecute=, SystemCallFilter=,
SystemCallArchitectures=, SystemCallErrorNumber= and RestrictAddressFamilies= are what could
break a Python daemon (LimitNOFILE= too: the daemon may not raise it under the filter). This
applies the same kernel mechanisms systemd uses, built from the unit's own lines:
`prctl(PR_SET_MDWE)` (the kernel's native W^X, Linux >= 6.3; systemd uses a seccomp rule to the
same effect), then a seccomp filter whose syscall list comes from
`systemd-analyze syscall-filter`, so it follows the installed systemd's group definitions.
Filesystem and namespace settings (ProtectSystem=, PrivateTmp=…) are not reproduced.

x86_64 only (syscall numbers from linux-libc-dev's unistd_64.h). Exit code 77: unsupported here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import resource
import socket
import struct
import subprocess
import sys
from pathlib import Path

UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
UNSUPPORTED = 77

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_SET_MDWE = 38, 22, 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SECCOMP_MODE_FILTER = 2
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
AUDIT_ARCH_X86_64 = 0xC000003E
X32_BIT = 0x40000000
LD_ABS, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06
FAMILIES = {"AF_UNIX": socket.AF_UNIX, "AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6}
FAMILIES["AF_NETLINK"] = 16


def unit_settings(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def expand(name: str, seen: set[str] | None = None) -> set[str]:
    """`@group` -> syscall names, nested groups included (systemd-analyze's own definitions)."""
    if not name.startswith("@"):
        return {name}
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    text = subprocess.run(
        ["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout
    names: set[str] = set()
    for line in text.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            names |= expand(item, seen)
    return names


def allowed_syscalls(settings: dict[str, list[str]]) -> set[str]:
    """SystemCallFilter= lines in order: an allow list, then `~` lines removing from it."""
    allowed: set[str] = set()
    for value in settings.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names = set().union(*(expand(n) for n in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


def numbers() -> dict[str, int]:
    found = re.findall(r"#define __NR_(\w+)\s+(\d+)", UNISTD.read_text())
    return {name: int(nr) for name, nr in found}


def instruction(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def program(allowed: set[str], families: set[int] | None, error: int) -> bytes:
    table = numbers()
    nrs = sorted({table[name] for name in allowed if name in table})
    code = [
        instruction(LD_ABS, 4),  # arch
        instruction(JEQ, AUDIT_ARCH_X86_64, jt=1),
        instruction(RET, RET_KILL_PROCESS),  # SystemCallArchitectures=native
        instruction(LD_ABS, 0),  # syscall number
        instruction(JSET, X32_BIT, jf=1),
        instruction(RET, RET_KILL_PROCESS),
    ]
    if families is not None:  # RestrictAddressFamilies=: socket(family, ...) only
        allowed_families = sorted(families)
        block = [instruction(LD_ABS, 16)]  # args[0], low 32 bits (little endian)
        for index, family in enumerate(allowed_families):
            block.append(instruction(JEQ, family, jt=len(allowed_families) - index))
        block += [instruction(RET, RET_ERRNO | errno.EAFNOSUPPORT), instruction(LD_ABS, 0)]
        code.append(instruction(JEQ, table["socket"], jf=len(block)))
        code += block
        # a match jumps to the reload of the syscall number, then falls into the allow list
    for nr in nrs:
        code += [instruction(JEQ, nr, jf=1), instruction(RET, RET_ALLOW)]
    code.append(instruction(RET, RET_ERRNO | error))
    return b"".join(code)


def prctl() -> ctypes._CFuncPtr:
    function = ctypes.CDLL(None, use_errno=True).prctl
    function.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]  # pointers must not be truncated
    return function


def install(filter_code: bytes) -> None:
    call = prctl()
    buffer = ctypes.create_string_buffer(filter_code)
    fprog = struct.pack("HxxxxxxQ", len(filter_code) // 8, ctypes.addressof(buffer))
    fprog_buffer = ctypes.create_string_buffer(fprog)
    if call(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if call(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog_buffer), 0, 0):
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


def main(argv: list[str]) -> int:
    if "--" not in argv or platform.machine() != "x86_64" or not UNISTD.exists():
        print("sandbox: needs x86_64, linux-libc-dev and UNIT -- COMMAND", file=sys.stderr)
        return UNSUPPORTED
    split = argv.index("--")
    settings = unit_settings(Path(argv[0]))
    command = argv[split + 1 :]
    mdwe = settings.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes"
    if mdwe and prctl()(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        print("sandbox: this kernel has no PR_SET_MDWE (Linux >= 6.3)", file=sys.stderr)
        return UNSUPPORTED
    families = None
    if settings.get("RestrictAddressFamilies"):
        families = {FAMILIES[f] for f in settings["RestrictAddressFamilies"][-1].split()}
    error = getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[-1])
    if settings.get("LimitNOFILE"):  # before the filter, which denies setrlimit (@resources)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # a container may cap it lower
        limit = int(settings["LimitNOFILE"][-1])
        limit = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    allowed = allowed_syscalls(settings) | {"execve"}  # our own exec into the command
    install(program(allowed, families, error))
    os.execvp(command[0], command)
    return 1  # unreachable


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
