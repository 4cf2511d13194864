"""One coroutine per subcommand: call the daemon (or the library), print, return the exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
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
    config_path,
    print_json,
    say,
    warn,
)
from failover.cli.progress import Progress, dns_wait, while_waiting
from failover.client import AdminClient
from failover.config.describe import describe
from failover.config.loader import ConfigError, load_config
from failover.config.parse import parse_duration
from failover.config.types import Config, HostPort
from failover.render import (
    history_text,
    probe_result_json,
    probe_results_text,
    status_text,
    unverified_lines,
)


async def cmd_run(args: argparse.Namespace) -> int:
    from failover import heap
    from failover.daemon import run_daemon
    from failover.eventloop import favour_the_loop

    heap.tune()  # before the configuration's objects pile up (failover.heap)
    favour_the_loop()  # threads yield the GIL to the loop sooner (failover.eventloop)
    config = load_config(config_path(args))
    # the daemon's own thread pool (asyncio.to_thread), so that at exit its idle workers can be
    # told to leave and only a really hung call remains
    executor = ThreadPoolExecutor(thread_name_prefix="failover-io")
    asyncio.get_running_loop().set_default_executor(executor)
    code = await run_daemon(config, dry_run=args.dry_run, once=args.once)
    _exit_despite_hung_threads(code, executor)
    return code


HUNG_GRACE = 1.0  # seconds idle worker threads get to leave once told to


def _exit_despite_hung_threads(code: int, executor: ThreadPoolExecutor) -> None:
    """State and journal are saved by now. A blocking SDK call stuck in a worker thread (a hung
    provider endpoint) would keep the interpreter alive at exit until it returns: leave anyway,
    so SIGTERM always ends the daemon in bounded time. Idle pool workers are not hung: they are
    told to leave first, and only threads still busy after HUNG_GRACE are reported."""
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + HUNG_GRACE
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    stuck = [t for t in stuck if not t.daemon]
    if stuck:
        logging.getLogger("failover").warning(
            "exiting with %d provider call(s) still hung in worker threads: %s",
            len(stuck),
            ", ".join(sorted(t.name for t in stuck)),
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


async def cmd_check_config(args: argparse.Namespace) -> int:
    missing: list[str] | None = [] if args.without_secrets else None
    path = config_path(args)
    config = load_config(path, missing_secrets=missing)
    print(describe(config))
    print(probe_count_line(config))
    if missing:
        print("\nsecrets not available here (the daemon needs them where it runs):")
        for line in missing:
            print(f"  {line}")
    print(f"\n{path}: OK")
    return EXIT_OK


async def cmd_providers(args: argparse.Namespace) -> int:
    """The provider types this installation can use (entry points `failover.providers`), from
    package metadata alone: nothing is imported, so a broken plugin still shows up here."""
    from failover.plugins import discover

    found, refused = discover()
    rows = [*sorted(found.values(), key=lambda p: (not p.builtin, p.type)), *refused]
    if args.json:
        print_json(
            [
                {
                    "type": p.type,
                    "module": p.module,
                    "entry_point": p.target,
                    "package": p.distribution,
                    "version": p.version,
                    "builtin": p.builtin,
                    "shadowed_by": p.shadowed_by,
                }
                for p in rows
            ]
        )
        return EXIT_OK
    table = [("TYPE", "MODULE", "PACKAGE", "VERSION", "ORIGIN")]
    for p in rows:
        note = "built-in" if p.builtin else "plugin"
        if p.shadowed_by:
            note = f"ignored: the type is built-in ({p.shadowed_by})"
        table.append((p.type, p.target, p.distribution, p.version, note))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def probe_count_line(config: Config) -> str:
    """How many probes are configured and how many run (identical ones run once,
    failover.probes.sharing), how often, and where (`instance.probe_process`)."""
    from failover.probes.sharing import distinct, in_a_child, rate
    from failover.wiring import probe_jobs

    specs = [job.spec for job in probe_jobs(config)]
    running = distinct(specs)
    shared = len(specs) - running
    note = f" ({shared} identical to another: each runs once per interval)" if shared else ""
    where = "a child process" if in_a_child(config.instance.probe_process, specs) else "the loop"
    return (
        f"probes: {len(specs)} configured, {running} distinct run{note}\n"
        f"probes run {rate(specs):.1f} times a second, in {where}"
        f" (instance.probe_process: {str(config.instance.probe_process).lower()})"
    )


async def cmd_status(args: argparse.Namespace) -> int:
    """One status; `--watch` refreshes it: in place on a terminal, and on a pipe a new copy
    (with its time) only when it changed, without control codes. `--watch --json` writes one
    JSON document per line."""
    tty = sys.stdout.isatty()
    last = ""
    while True:
        _, body = await call(args, "GET", "/v1/status")
        if args.json and args.watch:
            import json

            print(json.dumps(body, sort_keys=True), flush=True)
        elif args.json:
            print_json(body)
        elif args.watch and tty:
            header = f"every {args.interval:g}s: failover status    {time.strftime('%H:%M:%S')}"
            text = status_text(body, utc=args.utc)
            sys.stdout.write("\x1b[H\x1b[2J" + header + "\n\n" + text + "\n")
            sys.stdout.flush()
        elif args.watch:
            text = status_text(body, utc=args.utc)
            if text != last:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                print(f"--- {stamp}\n{text}", flush=True)
                last = text
        else:
            print(status_text(body, utc=args.utc))
        if not args.watch:
            return EXIT_OK
        await asyncio.sleep(args.interval)
        if _reader_gone(sys.stdout):
            raise BrokenPipeError("stdout closed")


def _reader_gone(stream: Any) -> bool:
    """Whether the other end of a pipe on `stream` was closed (`status --watch | head` after
    head left): a watch that prints only changes would otherwise never find out."""
    import select

    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLERR | select.POLLHUP)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def simple_verb(verb: str) -> Callable[[argparse.Namespace], Coroutine[Any, Any, int]]:
    async def command(args: argparse.Namespace) -> int:
        service = getattr(args, "service", None)
        path = f"/v1/services/{service}/{verb}" if service else f"/v1/{verb}"
        progress = Progress()

        def show(body: dict[str, Any]) -> tuple[str, str] | None:
            """A release (or resume) may switch DNS: what that change waits for."""
            svc = body.get("services", {}).get(service)
            if not isinstance(svc, dict) or not (svc.get("changing") or svc.get("verifying")):
                return None
            state, detail = dns_wait(svc, progress.elapsed)
            return f"{service}: {verb}: {state}", detail

        work = call(args, "POST", path, {"actor": actor()})
        if service:
            status, result = await while_waiting(work, client_for(args), show, progress)
        else:
            status, result = await work
        if status == 409:
            raise CliError(f"failover: {result.get('message')}", EXIT_REFUSED, result)
        if args.json:
            print_json(result)
        code = EXIT_OK
        for name, outcome in result.get("services", {}).items():
            failed = outcome.get("result") in ("error", "partial")
            unverified = outcome.get("verified") is False
            if not failed and not unverified:
                say(args, f"{name}: {verb} done; {outcome.get('reason', '')}")
                continue
            code = EXIT_FAILED
            for provider in outcome.get("providers", []):
                if not provider.get("ok"):
                    warn(f"  {provider['provider']}: FAILED {provider.get('error')}")
            for line in unverified_lines(outcome.get("verification") or []):
                warn(f"  {line}")
            what = "is NOT verified" if not failed else outcome.get("result")
            warn(f"failover: {name}: {verb} done, but the DNS change it made {what}")
        return code

    return command


async def cmd_history(args: argparse.Namespace) -> int:
    query = f"?limit={args.limit}" + (f"&service={args.service}" if args.service else "")
    _, body = await call(args, "GET", "/v1/history" + query + "&with_source=1")
    entries = body["entries"] if isinstance(body, dict) and "entries" in body else body
    if args.json:
        print_json(entries)
        return EXIT_OK
    if isinstance(body, dict) and body.get("source"):
        print(f"history: {body['source']['text']}")
    print(history_text(entries, utc=args.utc))
    return EXIT_OK


async def cmd_probe(args: argparse.Namespace) -> int:
    """Run a service's probes once, here, and show what each saw (exit 1 if any failed)."""
    from failover.probes.scheduler import ProbeScheduler
    from failover.wiring import probe_jobs

    path = config_path(args)
    config = load_config(path)
    service = config.services.get(args.service)
    if service is None:
        known = ", ".join(sorted(config.services))
        raise CliError(f"failover: no service {args.service!r} in {path} ({known})", EXIT_USAGE)
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

    path = config_path(args)
    config = load_config(path, missing_secrets=[])
    report = await run_audit(
        config,
        config_path=str(path),
        client=_audit_client(args, config.admin.socket),
        ns_lookup=None if args.no_dns else resolver_lookup(args.resolver or ()),
        dns_timeout=args.dns_timeout,
    )
    print(render(report, "json" if args.json else args.format))
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
