"""`failover switchover`, `drain` and `undrain`: planned moves, carried out by the daemon.

A switchover answers once scheduled; without `--at` the command then follows its steps in
`status` (TTL lowered, old TTL waited out, switched and verified) and exits 0 once the target
is served, verified; the TTL restore follows in the daemon (`failover status` shows when).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from failover.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    actor,
    call,
    client_for,
    print_json,
    say,
    warn,
)

POLL = 1.0  # seconds between two looks at a running switchover
DONE_STEPS = ("switched", "restore")


def add_commands(sub: Any, client_opts: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the three commands on the main parser's subparsers."""
    p = sub.add_parser(
        "switchover", help="planned move: lower the TTL, wait it out, switch, restore the TTL"
    )
    p.add_argument("service")
    p.add_argument("target", nargs="?")
    p.add_argument("--reason", help="why (kept in the journal); required")
    p.add_argument(
        "--cancel", action="store_true", help="end the running switchover: restore the TTL now"
    )
    p.add_argument("--ttl", default="30s", help="the short TTL during the move (default 30s)")
    p.add_argument("--at", help="start at this time (2026-12-05T14:00:00Z, UTC if no zone) or +10m")
    p.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    client_opts(p)
    p.set_defaults(func=cmd_switchover)

    p = sub.add_parser("drain", help="take a target out of service: decisions avoid it")
    p.add_argument("service")
    p.add_argument("target")
    p.add_argument("--reason", required=True, help="why (kept in the journal)")
    p.add_argument("--for", dest="duration", help="end the drain after this long, e.g. 2h")
    p.add_argument("--force", action="store_true", help="drain even the last UP target")
    client_opts(p)
    p.set_defaults(func=cmd_drain)

    p = sub.add_parser("undrain", help="end a target's drain")
    p.add_argument("service")
    p.add_argument("target")
    client_opts(p)
    p.set_defaults(func=cmd_undrain)


def plan_lines(body: dict[str, Any]) -> list[str]:
    lines = [f"switchover {body.get('service')}: {body.get('origin')} -> {body.get('target')}"]
    for step in body.get("steps", []):
        lines.append(f"  {step['at']}  {step['step']:<8} {step['what']}")
    for v in body.get("violations", []):
        lines.append(f"  refused by {v['rule']}: {v['message']}")
    return lines


async def _confirm(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise CliError("failover: not a terminal; pass --yes to confirm the switchover", EXIT_USAGE)
    sys.stderr.write(f"Switch {args.service} over to {args.target} as planned? [y/N] ")
    sys.stderr.flush()
    answer = await asyncio.to_thread(sys.stdin.readline)
    if answer.strip().lower() in ("y", "yes"):
        return True
    warn("aborted: nothing changed")
    return False


async def cmd_switchover(args: argparse.Namespace) -> int:
    """Exit 0 once the target is served and verified (or scheduled with --at); 3 when refused
    (the rule is named); 1 when the switchover was aborted."""
    path = f"/v1/services/{args.service}/switchover"
    if args.cancel:
        _, done = await call(args, "POST", path + "/cancel", {"actor": actor()})
        if "error" in done:
            raise CliError(f"failover: {done.get('message')}", EXIT_FAILED, done)
        if args.json:
            print_json(done)
        say(args, f"{args.service}: switchover to {done['target']} cancelled; the TTL is restored")
        return EXIT_OK
    if not args.target or not args.reason:
        raise CliError(
            "failover: switchover needs SERVICE TARGET --reason TEXT (or SERVICE --cancel)",
            EXIT_USAGE,
        )
    body: dict[str, Any] = {
        "target": args.target,
        "reason": args.reason,
        "ttl": args.ttl,
        "actor": actor(),
    }
    if args.at:
        body["at"] = args.at
    status, preview = await call(args, "POST", path, {**body, "dry_run": True})
    if status == 409:
        for line in plan_lines(preview):
            warn(line)
        raise CliError(f"refused: {preview.get('message')}", EXIT_REFUSED, preview)
    for line in plan_lines(preview):
        say(args, line)
    if args.dry_run:
        if args.json:
            print_json(preview)
        say(args, "dry-run: nothing changed")
        return EXIT_OK
    if not await _confirm(args):
        return EXIT_FAILED
    status, result = await call(args, "POST", path, {**body, "dry_run": False})
    if status == 409:
        raise CliError(f"refused: {result.get('message')}", EXIT_REFUSED, result)
    if args.at:
        if args.json:
            print_json(result)
        say(args, f"{args.service}: switchover to {args.target} scheduled at {result['start_at']}")
        return EXIT_OK
    return await _follow(args, result)


async def _follow(args: argparse.Namespace, result: dict[str, Any]) -> int:
    """Show the steps as the daemon carries them out, until the target is served."""
    client = client_for(args, timeout=30.0)
    shown = None
    while True:
        status, body = await client.call("GET", "/v1/status")
        svc = body.get("services", {}).get(args.service, {}) if status == 200 else {}
        sw = svc.get("switchover")
        step = (sw or {}).get("step")
        if sw is not None and step != shown:
            shown = step
            warn(f"{args.service}: switchover {step}; next: {sw['next_step']} at {sw['next_at']}")
        if sw is None or step in DONE_STEPS or sw.get("target") != args.target:
            break
        await asyncio.sleep(POLL)
    served = svc.get("active") == args.target and not svc.get("changing")
    final = {**result, "result": "switched" if served else "aborted", "status": svc}
    if args.json:
        print_json(final)
    if served:
        when = f" at {sw['next_at']}" if sw is not None else ""
        say(args, f"{args.service} switched over to {args.target}; the TTL is restored{when}")
        return EXIT_OK
    warn(
        f"failover: the switchover of {args.service} to {args.target} did not complete; "
        f"see `failover history {args.service}`"
    )
    return EXIT_FAILED


async def cmd_drain(args: argparse.Namespace) -> int:
    """Exit 0 when drained (and, if it was active, the move verified); 3 when refused (rule
    last-up or pinned); 1 when the move failed or did not verify."""
    body: dict[str, Any] = {"target": args.target, "reason": args.reason, "actor": actor()}
    if args.duration:
        body["duration"] = args.duration
    if args.force:
        body["force"] = True
    status, result = await call(args, "POST", f"/v1/services/{args.service}/drain", body)
    if status == 409:
        raise CliError(f"refused: {result.get('message')}", EXIT_REFUSED, result)
    return _outcome(args, result, f"{args.target} drained")


async def cmd_undrain(args: argparse.Namespace) -> int:
    body = {"target": args.target, "actor": actor()}
    status, result = await call(args, "POST", f"/v1/services/{args.service}/undrain", body)
    if status == 409:
        raise CliError(f"failover: {result.get('message')}", EXIT_FAILED, result)
    return _outcome(args, result, f"{args.target} undrained")


def _outcome(args: argparse.Namespace, result: dict[str, Any], done: str) -> int:
    if args.json:
        print_json(result)
    outcome, verified = result.get("result"), result.get("verified")
    if outcome in ("error", "partial") or verified is False:
        warn(
            f"failover: {done}, but the DNS change {outcome} (verified: {verified}); "
            "see `failover status`"
        )
        return EXIT_FAILED
    until = f" until {result['until']}" if result.get("until") else ""
    checked = "; every authoritative name server serves it (verified)" if verified else ""
    say(args, f"{args.service}: {done}{until}; {result.get('reason') or 'ok'}{checked}")
    return EXIT_OK
