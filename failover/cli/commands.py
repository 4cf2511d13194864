"""One coroutine per subcommand: call the daemon (or the library), print, return the exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
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
    api_error,
    call,
    client_for,
    config_path,
    print_json,
    say,
    warn,
)
from failover.cli.progress import Progress, dns_wait, left_until, seconds, while_waiting
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
    unverified_lines,
)


async def cmd_run(args: argparse.Namespace) -> int:
    from failover.daemon import run_daemon

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
    if missing:
        print("\nsecrets not available here (the daemon needs them where it runs):")
        for line in missing:
            print(f"  {line}")
    print(f"\n{path}: OK")
    return EXIT_OK


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


async def _confirm_plan(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise CliError("failover: not a terminal; pass --yes to confirm the promotion", EXIT_USAGE)
    question = f"Pin {args.service} to {args.target} and apply this plan? [y/N] "
    if await ask(question):
        return True
    warn("aborted: nothing changed")
    return False


async def ask(question: str) -> bool:
    """A yes/no question on the terminal (stderr: stdout may carry a JSON document)."""
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = await asyncio.to_thread(sys.stdin.readline)
    return answer.strip().lower() in ("y", "yes")


async def cmd_promote_direct(args: argparse.Namespace) -> int:
    """Through the providers, without the daemon (SPEC §2 --direct)."""
    from failover.direct import DirectError, promote_direct

    config = load_config(config_path(args))

    async def confirm(body: dict[str, Any]) -> bool:
        say(args, plan_text(body))
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
            etcd_down=args.etcd_down,
            say=lambda line: print(line, file=sys.stderr),
        )
    except DirectError as exc:
        if exc.body and exc.code == EXIT_REFUSED:
            say(args, plan_text(exc.body))
        raise CliError(
            f"failover: {exc}", exc.code, {"error": "direct_failed", "message": str(exc)}
        ) from exc
    if args.json:
        print_json(result)
    if result["result"] == "dry-run":
        say(args, "dry-run: nothing changed")
    elif result["result"] == "aborted":
        return EXIT_FAILED
    elif result.get("leader"):
        print(f"{args.service}: {result['reason']}")
    else:
        say(args, f"{args.service} pinned to {args.target} directly; change applied and verified")
        if args.etcd_down:
            print(
                "note: etcd was down, so the pin is in this host's state file only: once etcd "
                "is back, repeat the promote through a daemon so every instance honours it",
                file=sys.stderr,
            )
    return EXIT_OK


async def cmd_promote(args: argparse.Namespace) -> int:
    """Plan, confirm, pin, then wait for the DNS change and its verification, showing what is
    awaited per provider. Exit 0 only when every name server confirmed (or verification is
    off); 1 when a provider failed or a name server did not confirm; 3 when refused."""
    if args.direct:
        return await cmd_promote_direct(args)
    path = f"/v1/services/{args.service}/promote"
    body = {"target": args.target, "reason": args.reason, "actor": actor(), "force": args.force}
    status, preview = await call(args, "POST", path, {**body, "dry_run": True})
    say(args, plan_text(preview))
    if status == 409:
        raise CliError(f"refused: {preview.get('message')}", EXIT_REFUSED, preview)
    if args.dry_run:
        if args.json:
            print_json(preview)
        say(args, "dry-run: nothing changed")
        return EXIT_OK
    if not await _confirm_plan(args):
        return EXIT_FAILED
    client = client_for(args)
    progress = Progress()

    def show(status_body: dict[str, Any]) -> tuple[str, str] | None:
        svc = status_body.get("services", {}).get(args.service)
        if not isinstance(svc, dict):
            return None
        state, detail = dns_wait(svc, progress.elapsed)
        return f"{args.service} -> {args.target}: {state}", detail

    status, result = await while_waiting(
        client.call("POST", path, {**body, "dry_run": False}), client, show, progress
    )
    if status >= 400 and status not in (409, 502):
        raise api_error(status, result)
    if status == 409:
        superseded = result.get("error") == "superseded"
        code = EXIT_FAILED if superseded else EXIT_REFUSED
        prefix = "failover" if superseded else "refused"
        raise CliError(f"{prefix}: {result.get('message')}", code, result)
    if args.json:
        print_json(result)
    return _promote_outcome(args, result)


def _promote_outcome(args: argparse.Namespace, result: dict[str, Any]) -> int:
    """The last line of a promote: what DNS really does now."""
    outcome, verified = result.get("result"), result.get("verified")
    name = f"{args.service} pinned to {args.target}"
    if outcome == "noop":
        say(args, f"{name}; DNS already served it")
        return EXIT_OK
    if outcome == "ok" and verified is True:
        say(args, f"{name}; every authoritative name server serves it (verified)")
        return EXIT_OK
    if outcome == "ok" and verified is None:
        say(args, f"{name}; the providers accepted it (verification is off)")
        return EXIT_OK
    for provider in result.get("providers", []):
        if not provider.get("ok"):
            warn(f"  {provider['provider']}: FAILED {provider.get('error')}")
    for line in unverified_lines(result.get("verification") or []):
        warn(f"  {line}")
    if outcome == "ok":
        warn(
            f"failover: {args.service} is pinned to {args.target}, but the change is NOT "
            "verified: a name server above does not serve it (alarm not_verified); "
            f"see `failover history {args.service}`"
        )
    else:
        warn(
            f"failover: {args.service} is pinned to {args.target}, but the DNS change "
            f"{outcome}: the daemon keeps retrying; see `failover status`"
        )
    return EXIT_FAILED


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
    from failover.daemon import probe_jobs
    from failover.probes.scheduler import ProbeScheduler

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


async def cmd_drill(args: argparse.Namespace) -> int:
    """A planned failover test through the daemon: preflight, switch, hold, back, report.

    While it runs, the step and the hold's time left show on stderr. Ctrl-C asks the daemon to
    end the drill (back to the origin, verified) and waits for that; a second Ctrl-C leaves it
    running in the daemon and says how to stop it."""
    if args.stop:
        return await _drill_stop(args)
    path = f"/v1/services/{args.service}/drill"
    body: dict[str, Any] = {"hold": args.hold, "actor": actor()}
    if args.to:
        body["to"] = args.to
    status, preview = await call(args, "POST", path, {**body, "dry_run": True})
    if status == 409:
        raise CliError(f"failover: {preview.get('message')}", EXIT_REFUSED, preview)
    say(
        args,
        f"Drill {args.service}: {preview['from']} -> {preview['to']}, hold {args.hold}, "
        f"then back to {preview['from']} (preflight passed)",
    )
    if args.dry_run:
        if args.json:
            print_json(preview)
        say(args, "dry-run: nothing changed")
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("failover: not a terminal; pass --yes to start the drill", EXIT_USAGE)
        if not await ask("Start the drill? [y/N] "):
            warn("aborted: nothing changed")
            return EXIT_FAILED
    hold = parse_duration(args.hold)
    client = client_for(args, timeout=hold + 600)  # the request lasts the whole drill
    progress = Progress()
    interrupts = 0
    stopping: list[asyncio.Future[None]] = []  # the stop request, kept until it is done
    request = asyncio.ensure_future(client.call("POST", path, {**body, "dry_run": False}))
    origin = preview["from"]

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            progress.note(
                f"Ctrl-C: asking the daemon to end the drill of {args.service} now and return "
                f"to {origin} (verified); Ctrl-C again to leave the drill running"
            )
            stopping.append(asyncio.ensure_future(_ask_stop(args)))
        else:
            request.cancel()

    def show(status_body: dict[str, Any]) -> tuple[str, str] | None:
        svc = status_body.get("services", {}).get(args.service)
        drill = svc.get("drill") if isinstance(svc, dict) else None
        if not isinstance(drill, dict):
            return None
        step = drill.get("step")
        if step == "holding":
            left = left_until(drill.get("hold_ends_at"))
            health = svc.get("targets", {}).get(drill.get("to"), {}).get("health", "?")
            detail = f"({seconds(left)} left)" if left is not None else ""
            return f"drill {args.service}: holding on {drill.get('to')} ({health.upper()})", detail
        toward = drill.get("to") if step == "switching" else drill.get("from")
        state, detail = dns_wait(svc, progress.elapsed)
        return f"drill {args.service}: {step} to {toward}: {state}", detail

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        status, report = await while_waiting(request, client, show, progress)
    except asyncio.CancelledError:
        warn(
            f"left the drill of {args.service} running in the daemon: it returns to {origin} "
            f"after its hold. Stop it now with `failover drill {args.service} --stop`; "
            "`failover status` shows it."
        )
        raise CliError(
            "failover: drill left running",
            130,
            {"error": "left_running", "message": f"drill of {args.service} left running"},
        ) from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if status == 409:
        raise CliError(f"failover: {report.get('message')}", EXIT_REFUSED, report)
    if status >= 400 and "result" not in report:
        raise api_error(status, report)
    if args.json:
        print_json(report)
    else:
        print(drill_report_text(report))
    if report.get("result") != "ok":
        warn(f"failover: drill {report.get('result')}: {report.get('reason')}")
        return EXIT_FAILED
    return EXIT_OK


async def _ask_stop(args: argparse.Namespace) -> None:
    try:
        status, body = await client_for(args, timeout=10).call(
            "POST", f"/v1/services/{args.service}/drill/stop", {"actor": actor()}
        )
    except Exception as exc:  # the drill's own request reports an unreachable daemon
        warn(f"failover: could not ask the daemon to stop the drill: {exc}")
        return
    if status != 200:
        warn(f"failover: {body.get('message') if isinstance(body, dict) else body}")


async def _drill_stop(args: argparse.Namespace) -> int:
    """`failover drill SERVICE --stop`: end a running drill (back to its origin, verified)."""
    status, body = await call(
        args, "POST", f"/v1/services/{args.service}/drill/stop", {"actor": actor()}
    )
    if status == 409:
        raise CliError(f"failover: {body.get('message')}", EXIT_REFUSED, body)
    if args.json:
        print_json(body)
    say(
        args,
        f"stopping the drill of {args.service}: it returns to {body.get('from')} and verifies; "
        "`failover status` shows when it is back",
    )
    return EXIT_OK


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
