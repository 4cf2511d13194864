"""One coroutine per subcommand: call the daemon (or the library), print, return the exit code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from failover.cli.common import (
    DEFAULT_HEALTHZ,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    actor,
    call,
    client_for,
    print_json,
)
from failover.client import AdminClient
from failover.config.describe import describe
from failover.config.loader import ConfigError, load_config
from failover.config.parse import parse_duration
from failover.config.types import HostPort
from failover.render import (
    drill_report_text,
    history_text,
    plan_text,
    probe_result_json,
    probe_results_text,
    status_text,
)


async def cmd_run(args: argparse.Namespace) -> int:
    from failover.daemon import run_daemon

    config = load_config(args.config)
    code = await run_daemon(config, dry_run=args.dry_run, once=args.once)
    await _end_idle_workers()
    _exit_despite_hung_threads(code)
    return code


async def _end_idle_workers(timeout: float = 1.0) -> None:
    """The default executor's idle worker threads are alive until it shuts down (asyncio.run
    does that only after this coroutine): end them first, so the check below sees only calls
    that are really hung (without this every clean stop warned of hung provider calls)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().shutdown_default_executor()


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
        _, body = await call(args, "GET", "/v1/status")
        if args.json:
            print_json(body)
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
            actor(),
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
        print_json(result)
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
    body = {"target": args.target, "reason": args.reason, "actor": actor(), "force": args.force}
    status, preview = await call(args, "POST", path, {**body, "dry_run": True})
    print(plan_text(preview))
    if status == 409:
        print(f"refused: {preview.get('message')}", file=sys.stderr)
        return EXIT_REFUSED
    if args.dry_run:
        print("dry-run: nothing changed")
        return EXIT_OK
    if not await _confirm_plan(args):
        return EXIT_FAILED
    status, result = await call(args, "POST", path, {**body, "dry_run": False})
    if status == 409 and result.get("error") == "superseded":
        print(f"failover: {result.get('message')}", file=sys.stderr)
        return EXIT_FAILED
    if status == 409:
        print(f"refused: {result.get('message')}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print_json(result)
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


def simple_verb(verb: str) -> Callable[[argparse.Namespace], Coroutine[Any, Any, int]]:
    async def command(args: argparse.Namespace) -> int:
        service = getattr(args, "service", None)
        path = f"/v1/services/{service}/{verb}" if service else f"/v1/{verb}"
        status, result = await call(args, "POST", path, {"actor": actor()})
        if status == 409:
            print(f"failover: {result.get('message')}", file=sys.stderr)
            return EXIT_REFUSED
        if args.json:
            print_json(result)
        else:
            for name, outcome in result.get("services", {}).items():
                print(f"{name}: {verb} done; {outcome.get('reason', '')}")
        return EXIT_OK

    return command


async def cmd_history(args: argparse.Namespace) -> int:
    query = f"?limit={args.limit}" + (f"&service={args.service}" if args.service else "")
    _, entries = await call(args, "GET", "/v1/history" + query)
    if args.json:
        print_json(entries)
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
        print_json([probe_result_json(job, result) for job, result in results])
    else:
        print(probe_results_text(results))
    return EXIT_OK if all(result.ok for _, result in results) else EXIT_FAILED


async def cmd_drill(args: argparse.Namespace) -> int:
    """A planned failover test through the daemon: preflight, switch, hold, back, report."""
    path = f"/v1/services/{args.service}/drill"
    body: dict[str, Any] = {"hold": args.hold, "actor": actor()}
    if args.to:
        body["to"] = args.to
    status, preview = await call(args, "POST", path, {**body, "dry_run": True})
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
    client = client_for(args)
    client.timeout = hold + 600  # the request lasts the whole drill, verification included
    status, report = await client.call("POST", path, {**body, "dry_run": False})
    if status == 409:
        print(f"failover: {report.get('message')}", file=sys.stderr)
        return EXIT_REFUSED
    if status >= 400 and "result" not in report:
        raise CliError(f"failover: {report.get('message', report)}", EXIT_FAILED)
    if args.json:
        print_json(report)
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


def resolver_arg(text: str) -> HostPort:
    """--resolver HOST[:PORT]: an IP address, since it is asked before any name resolves."""
    import ipaddress

    from failover.config.parse import parse_hostport

    try:
        server = parse_hostport(text, "--resolver", default_port=53)
        ipaddress.ip_address(server.host)
    except (ConfigError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not IP[:PORT]; expected like 127.0.0.1:5353 or [::1]:53"
        ) from None
    return server


def duration_arg(text: str) -> float:
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
    _, result = await call(args, "POST", "/v1/reload", {"actor": actor()})
    if args.json:
        print_json(result)
    else:
        print(f"reloaded {result.get('source')}: {result.get('summary')}")
    return EXIT_OK


async def cmd_demo(args: argparse.Namespace) -> int:
    from failover.demo import run_demo

    return await run_demo(keep=args.keep)
