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
import threading
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from failover import __version__
from failover.client import AdminClient, DaemonUnreachable
from failover.config import ConfigError, describe, load_config
from failover.config_parse import parse_duration
from failover.config_types import HostPort
from failover.logs import FORMATS
from failover.logs import setup as setup_logging
from failover.render import (
    drill_report_text,
    history_text,
    plan_text,
    probe_result_json,
    probe_results_text,
    status_text,
)
from failover.store import StoreCorruptError, StoreLockedError, StoreUnwritableError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
DEFAULT_SOCKET = Path("/run/failover/admin.sock")
DEFAULT_HEALTHZ = "http://127.0.0.1:9180/healthz"


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
    code = await run_daemon(config, dry_run=args.dry_run, once=args.once)
    _exit_despite_hung_threads(code)
    return code


def _exit_despite_hung_threads(code: int) -> None:
    """State and journal are saved by now. A blocking SDK call stuck in a worker thread (a hung
    provider endpoint) would keep the interpreter alive at exit until it returns: leave anyway,
    so SIGTERM always ends the daemon in bounded time."""
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    stuck = [t for t in stuck if not t.daemon]
    if stuck:
        logging.getLogger("failover").warning(
            "exiting with %d provider call(s) still hung in worker threads", len(stuck)
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


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


async def cmd_drill(args: argparse.Namespace) -> int:
    """A planned failover test through the daemon: preflight, switch, hold, back, report."""
    path = f"/v1/services/{args.service}/drill"
    body: dict[str, Any] = {"hold": args.hold, "actor": _actor()}
    if args.to:
        body["to"] = args.to
    status, preview = await _call(args, "POST", path, {**body, "dry_run": True})
    if status == 409:
        print(f"failover: {preview.get('message')}", file=sys.stderr)
        return EXIT_REFUSED
    print(
        f"Drill {args.service}: {preview['from']} -> {preview['to']}, hold {args.hold}, "
        f"then back to {preview['from']} (preflight passed)",
        file=sys.stderr if args.json else sys.stdout,
    )
    if args.dry_run:
        print("dry-run: nothing changed")
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("failover: not a terminal; pass --yes to start the drill", EXIT_USAGE)
        answer = await asyncio.to_thread(input, "Start the drill? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("aborted: nothing changed")
            return EXIT_FAILED
    hold = parse_duration(args.hold)
    client = _client(args)
    client.timeout = hold + 600  # the request lasts the whole drill, verification included
    status, report = await client.call("POST", path, {**body, "dry_run": False})
    if status == 409:
        print(f"failover: {report.get('message')}", file=sys.stderr)
        return EXIT_REFUSED
    if status >= 400 and "result" not in report:
        raise CliError(f"failover: {report.get('message', report)}", EXIT_FAILED)
    if args.json:
        _print_json(report)
    else:
        print(drill_report_text(report))
    return EXIT_OK if report.get("result") == "ok" else EXIT_FAILED


def _get_healthz(url: str, timeout: float) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=timeout) as resp:
            return int(resp.status), resp.read(512).decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(512).decode(errors="replace").strip()


async def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when the daemon's /healthz answers 200, 1 otherwise: a container HEALTHCHECK
    (or any supervisor) needs no curl, and the slim image ships none."""
    url = args.url or os.environ.get("FAILOVER_HEALTHCHECK_URL") or DEFAULT_HEALTHZ
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CliError(f"failover: --url {url!r} is not an http(s) URL", EXIT_USAGE)
    try:
        status, text = await asyncio.to_thread(_get_healthz, url, args.timeout)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"unhealthy: {url} unreachable ({reason})", file=sys.stderr)
        return EXIT_FAILED
    if status != 200:
        print(f"unhealthy: {url} answered {status} {text}", file=sys.stderr)
        return EXIT_FAILED
    print(f"healthy: {url} answered {status} {text}")
    return EXIT_OK


def _audit_client(args: argparse.Namespace, socket_path: Path) -> AdminClient:
    """Like _client, but the config is already loaded (without its secrets) and the wait short:
    an audit must not hang on a stuck daemon."""
    if args.url:
        token = Path(args.token_file).read_text().strip() if args.token_file else None
        return AdminClient(url=args.url, token=token, timeout=10.0)
    where = args.socket or os.environ.get("FAILOVER_SOCKET") or socket_path
    return AdminClient(socket=Path(where), timeout=10.0)


def _resolver(text: str) -> HostPort:
    """--resolver HOST[:PORT]: an IP address, since it is asked before any name resolves."""
    import ipaddress

    from failover.config_parse import parse_hostport

    try:
        server = parse_hostport(text, "--resolver", default_port=53)
        ipaddress.ip_address(server.host)
    except (ConfigError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not IP[:PORT]; expected like 127.0.0.1:5353 or [::1]:53"
        ) from None
    return server


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def cmd_audit(args: argparse.Namespace) -> int:
    """Resilience audit of -c FILE, plus the daemon's state and the DNS when they answer.

    Exit 1 when a critical finding exists. The secrets need not be present (like
    `check-config --without-secrets`): the audit runs in CI and on laptops.
    """
    from failover.audit import render, resolver_lookup, run_audit

    config = load_config(args.config, missing_secrets=[])
    report = await run_audit(
        config,
        config_path=args.config,
        client=_audit_client(args, config.admin.socket),
        ns_lookup=None if args.no_dns else resolver_lookup(args.resolver or ()),
        dns_timeout=args.dns_timeout,
    )
    print(render(report, args.format))
    return EXIT_FAILED if report.has_critical else EXIT_OK


async def cmd_reload(args: argparse.Namespace) -> int:
    """Ask the daemon to re-read its config file; a rejected file prints its errors (exit 2)."""
    _, result = await _call(args, "POST", "/v1/reload", {"actor": _actor()})
    if args.json:
        _print_json(result)
    else:
        print(f"reloaded {result.get('source')}: {result.get('summary')}")
    return EXIT_OK


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
    parser.add_argument(
        "--log-format",
        default=os.environ.get("FAILOVER_LOG_FORMAT") or "text",
        choices=FORMATS,
        help="text (default) or json: one object per line (default: $FAILOVER_LOG_FORMAT)",
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

    p = sub.add_parser("drill", help="test a secondary: switch, verify, hold, switch back")
    p.add_argument("service")
    p.add_argument("--to", help="the target to drill (default: the first other UP target)")
    p.add_argument("--hold", default="1m", help="how long to stay on it (default 1m)")
    p.add_argument("--dry-run", action="store_true", help="preflight only, change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    client_opts(p)
    p.set_defaults(func=cmd_drill)

    p = sub.add_parser("probe", help="run a service's probes once and show each result")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("service")
    p.add_argument("target", nargs="?")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("healthcheck", help="exit 0 if the daemon's /healthz says ok, else 1")
    p.add_argument(
        "--url", help=f"default: $FAILOVER_HEALTHCHECK_URL, else {DEFAULT_HEALTHZ} (metrics.listen)"
    )
    p.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    p.set_defaults(func=cmd_healthcheck)

    p = sub.add_parser("audit", help="resilience audit: single points of failure, with advice")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    p.add_argument("--socket", help="admin socket (default: $FAILOVER_SOCKET, admin.socket of -c)")
    p.add_argument("--url", help="admin API over TCP, e.g. http://10.0.0.5:9181")
    p.add_argument("--token-file", help="bearer token for --url")
    p.add_argument("--no-dns", action="store_true", help="do not query the zones' NS sets")
    p.add_argument(
        "--resolver",
        action="append",
        type=_resolver,
        metavar="IP[:PORT]",
        help="resolver for the NS queries (repeatable; default: the system's)",
    )
    p.add_argument(
        "--dns-timeout",
        type=_duration_arg,
        default=5.0,
        metavar="DURATION",
        help="per-zone deadline of the NS queries (default 5s)",
    )
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("reload", help="make the daemon re-read its config file (like SIGHUP)")
    client_opts(p)
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser("demo", help="a guided failover on loopback, no account needed")
    p.add_argument("--keep", action="store_true", help="leave it running to explore")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_format not in FORMATS:
        parser.error(f"FAILOVER_LOG_FORMAT={args.log_format}: expected one of {', '.join(FORMATS)}")
    setup_logging("debug" if args.debug else args.log_level, args.log_format)
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
    except StoreUnwritableError as exc:  # the environment the configuration names: exit 2
        print(f"failover: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
