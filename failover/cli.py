"""The `failover` command line: argument parsing and printing only; no logic.

Exit codes (SPEC §2): 0 success, 1 operation failed, 2 usage or configuration error,
3 refused by a safety rule, 4 daemon unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import socket
import sys
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from failover import __version__
from failover.client import AdminClient, DaemonUnreachable
from failover.config import ConfigError, describe, load_config
from failover.render import (
    history_text,
    plan_text,
    probe_result_json,
    probe_results_text,
    status_text,
)
from failover.store import StoreCorruptError, StoreLockedError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
DEFAULT_SOCKET = Path("/run/failover/admin.sock")


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _client(args: argparse.Namespace) -> AdminClient:
    """--url (with --token-file), else --socket, $FAILOVER_SOCKET, admin.socket of -c, default."""
    if args.url:
        token = Path(args.token_file).read_text().strip() if args.token_file else None
        return AdminClient(url=args.url, token=token)
    if args.socket:
        return AdminClient(socket=Path(args.socket))
    if os.environ.get("FAILOVER_SOCKET"):
        return AdminClient(socket=Path(os.environ["FAILOVER_SOCKET"]))
    if args.config:
        return AdminClient(socket=load_config(args.config).admin.socket)
    return AdminClient(socket=DEFAULT_SOCKET)


async def _call(
    args: argparse.Namespace, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    status, data = await _client(args).call(method, path, body)
    if status >= 400 and status not in (409, 502):
        message = data.get("message", data) if isinstance(data, dict) else data
        code = EXIT_USAGE if status < 500 else EXIT_FAILED
        raise CliError(f"failover: {message}", code)
    return status, data


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


# ------------------------------------------------------------------ commands


async def cmd_run(args: argparse.Namespace) -> int:
    from failover.daemon import run_daemon

    config = load_config(args.config)
    return await run_daemon(config, dry_run=args.dry_run, once=args.once)


async def cmd_check_config(args: argparse.Namespace) -> int:
    missing: list[str] | None = [] if args.without_secrets else None
    config = load_config(args.config, missing_secrets=missing)
    print(describe(config))
    if missing:
        print("\nsecrets not available here (the daemon needs them where it runs):")
        for line in missing:
            print(f"  {line}")
    print(f"\n{args.config}: OK")
    return EXIT_OK


async def cmd_status(args: argparse.Namespace) -> int:
    while True:
        _, body = await _call(args, "GET", "/v1/status")
        if args.json:
            _print_json(body)
        elif args.watch:
            sys.stdout.write("\x1b[H\x1b[2J" + status_text(body) + "\n")
            sys.stdout.flush()
        else:
            print(status_text(body))
        if not args.watch:
            return EXIT_OK
        await asyncio.sleep(args.interval)


async def _confirm_plan(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise CliError("failover: not a terminal; pass --yes to confirm the promotion", EXIT_USAGE)
    question = f"Pin {args.service} to {args.target} and apply this plan? [y/N] "
    answer = await asyncio.to_thread(input, question)
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("aborted: nothing changed")
    return False


async def cmd_promote_direct(args: argparse.Namespace) -> int:
    """Through the providers, without the daemon (SPEC §2 --direct)."""
    from failover.direct import DirectError, promote_direct

    if not args.config:
        raise CliError("failover: promote --direct needs -c FILE (the daemon's config)", EXIT_USAGE)
    config = load_config(args.config)

    async def confirm(body: dict[str, Any]) -> bool:
        print(plan_text(body))
        if args.dry_run:
            return False
        return await _confirm_plan(args)

    try:
        result = await promote_direct(
            config,
            args.service,
            args.target,
            args.reason,
            _actor(),
            force=args.force,
            dry_run=args.dry_run,
            confirm=confirm,
        )
    except DirectError as exc:
        if exc.body and exc.code == EXIT_REFUSED:
            print(plan_text(exc.body))
        print(f"failover: {exc}", file=sys.stderr)
        return exc.code
    if args.json:
        _print_json(result)
    if result["result"] == "dry-run":
        print("dry-run: nothing changed")
    elif result["result"] == "aborted":
        return EXIT_FAILED
    else:
        print(f"{args.service} pinned to {args.target} directly; change applied and verified")
    return EXIT_OK


async def cmd_promote(args: argparse.Namespace) -> int:
    if args.direct:
        return await cmd_promote_direct(args)
    path = f"/v1/services/{args.service}/promote"
    body = {"target": args.target, "reason": args.reason, "actor": _actor(), "force": args.force}
    status, preview = await _call(args, "POST", path, {**body, "dry_run": True})
    print(plan_text(preview))
    if status == 409:
        print(f"refused: {preview.get('message')}", file=sys.stderr)
        return EXIT_REFUSED
    if args.dry_run:
        print("dry-run: nothing changed")
        return EXIT_OK
    if not await _confirm_plan(args):
        return EXIT_FAILED
    status, result = await _call(args, "POST", path, {**body, "dry_run": False})
    if status == 409:
        print(f"refused: {result.get('message')}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        _print_json(result)
    outcome = result.get("result")
    if outcome in ("ok", "noop"):
        print(f"{args.service} pinned to {args.target}; DNS now serves it ({outcome})")
        return EXIT_OK
    for provider in result.get("providers", []):
        if not provider.get("ok"):
            print(f"  {provider['provider']}: FAILED {provider.get('error')}", file=sys.stderr)
    print(
        f"{args.service} is pinned to {args.target}, but the DNS change {outcome}: "
        "the daemon keeps retrying; see `failover status`",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _simple(verb: str) -> Callable[[argparse.Namespace], Coroutine[Any, Any, int]]:
    async def command(args: argparse.Namespace) -> int:
        service = getattr(args, "service", None)
        path = f"/v1/services/{service}/{verb}" if service else f"/v1/{verb}"
        status, result = await _call(args, "POST", path, {"actor": _actor()})
        if status == 409:
            print(f"failover: {result.get('message')}", file=sys.stderr)
            return EXIT_REFUSED
        if args.json:
            _print_json(result)
        else:
            for name, outcome in result.get("services", {}).items():
                print(f"{name}: {verb} done; {outcome.get('reason', '')}")
        return EXIT_OK

    return command


async def cmd_history(args: argparse.Namespace) -> int:
    query = f"?limit={args.limit}" + (f"&service={args.service}" if args.service else "")
    _, entries = await _call(args, "GET", "/v1/history" + query)
    if args.json:
        _print_json(entries)
    else:
        print(history_text(entries))
    return EXIT_OK


async def cmd_probe(args: argparse.Namespace) -> int:
    """Run a service's probes once, here, and show what each saw (exit 1 if any failed)."""
    from failover.daemon import probe_jobs
    from failover.probes.scheduler import ProbeScheduler

    config = load_config(args.config)
    service = config.services.get(args.service)
    if service is None:
        known = ", ".join(sorted(config.services))
        raise CliError(
            f"failover: no service {args.service!r} in {args.config} ({known})", EXIT_USAGE
        )
    if args.target and service.target(args.target) is None:
        names = ", ".join(t.name for t in service.targets)
        raise CliError(
            f"failover: {args.service} has no target {args.target!r} ({names})", EXIT_USAGE
        )
    jobs = [
        job
        for job in probe_jobs(config)
        if job.service == args.service and (not args.target or job.target == args.target)
    ]
    if not jobs:
        raise CliError(f"failover: {args.service} has no probes to run", EXIT_FAILED)
    scheduler = ProbeScheduler(jobs, lambda *_: None)
    try:
        results = await scheduler.run_once()
    finally:
        await scheduler.aclose()
    if args.json:
        _print_json([probe_result_json(job, result) for job, result in results])
    else:
        print(probe_results_text(results))
    return EXIT_OK if all(result.ok for _, result in results) else EXIT_FAILED


async def cmd_demo(args: argparse.Namespace) -> int:
    from failover.demo import run_demo

    return await run_demo(keep=args.keep)


# -------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="failover", description="Keep a service reachable when its cloud goes down."
    )
    parser.add_argument("--version", action="version", version=f"failover {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def client_opts(p: argparse.ArgumentParser, with_json: bool = True) -> None:
        p.add_argument(
            "--socket", help="admin socket (default: $FAILOVER_SOCKET, admin.socket of -c)"
        )
        p.add_argument("--url", help="admin API over TCP, e.g. http://10.0.0.5:9181")
        p.add_argument("--token-file", help="bearer token for --url")
        p.add_argument("-c", "--config", help="config file to find the admin socket in")
        if with_json:
            p.add_argument("--json", action="store_true", help="print the API's JSON")

    p = sub.add_parser("run", help="run the daemon")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--dry-run", action="store_true", help="decide and log, write no DNS")
    p.add_argument(
        "--once", action="store_true", help="one probe round and one decision, then exit"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file and summarise it")
    p.add_argument("-c", "--config", required=True)
    p.add_argument(
        "--without-secrets",
        action="store_true",
        help="check the file on a machine without its secrets (CI): list them instead of failing",
    )
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("status", help="services, active targets, health, records")
    client_opts(p)
    p.add_argument("--watch", action="store_true", help="refresh in place")
    p.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("promote", help="pin a service to a target and publish it")
    p.add_argument("service")
    p.add_argument("target")
    p.add_argument("--reason", required=True, help="why (kept in the journal)")
    p.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    p.add_argument("--force", action="store_true", help="override safety rules (named on refusal)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--direct",
        action="store_true",
        help="daemon down: apply through the providers of -c FILE and leave the pin for it",
    )
    client_opts(p)
    p.set_defaults(func=cmd_promote)

    for verb, text, needs_service in (
        ("release", "end a pin: back to automatic mode", True),
        ("pause", "stop automatic decisions (all services without SERVICE)", False),
        ("resume", "restart automatic decisions", False),
        ("ack", "acknowledge a flap block so automation may act again", True),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument("service", nargs=None if needs_service else "?")
        client_opts(p)
        p.set_defaults(func=_simple(verb))

    p = sub.add_parser("history", help="the journal of decisions and actions")
    p.add_argument("service", nargs="?")
    p.add_argument("--limit", type=int, default=50)
    client_opts(p)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("probe", help="run a service's probes once and show each result")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("service")
    p.add_argument("target", nargs="?")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("demo", help="a guided failover on loopback, no account needed")
    p.add_argument("--keep", action="store_true", help="leave it running to explore")
    p.set_defaults(func=cmd_demo)
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging("debug" if args.debug else args.log_level)
    try:
        code: int = asyncio.run(args.func(args))
        return code
    except ConfigError as exc:
        print(f"failover: configuration error in {getattr(args, 'config', '?')}:", file=sys.stderr)
        for line in str(exc).splitlines():
            print(f"  {line}", file=sys.stderr)
        return EXIT_USAGE
    except DaemonUnreachable as exc:
        print(f"failover: {exc}", file=sys.stderr)
        hint = (
            " During an incident: failover promote ... --direct -c FILE."
            if args.command == "promote"
            else ""
        )
        print(
            "  is `failover run` running? Give its socket with --socket or -c FILE." + hint,
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except (StoreLockedError, StoreCorruptError) as exc:
        print(f"failover: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            print(f"failover: {exc.strerror or exc}{where}", file=sys.stderr)
        else:
            print(
                f"failover: internal error: {type(exc).__name__}: {exc} "
                "(run with --debug for the traceback, and please report it)",
                file=sys.stderr,
            )
        return EXIT_FAILED
