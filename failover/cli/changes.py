"""The commands that change what DNS serves: promote (through the daemon or `--direct`) and
drill. They show the plan, ask, wait with progress and exit 1 unless the change verified."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from failover.cli.common import (
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
from failover.config.loader import load_config
from failover.config.parse import parse_duration
from failover.render import (
    drill_report_text,
    plan_text,
    unverified_lines,
)


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
    """Through the providers, without the daemon (`promote --direct`)."""
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
    if outcome == "ok" and result.get("read_back"):  # sent to a follower: the leader applied it
        say(args, f"{name}; {result.get('reason')}")
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
