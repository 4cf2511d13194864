"""The argument parser and `main`: which subcommand runs, and how errors become exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from failover import __version__, eventloop
from failover.cli.changes import cmd_drill, cmd_promote
from failover.cli.commands import (
    cmd_audit,
    cmd_check_config,
    cmd_demo,
    cmd_healthcheck,
    cmd_history,
    cmd_probe,
    cmd_providers,
    cmd_reload,
    cmd_run,
    cmd_status,
    duration_arg,
    resolver_arg,
    simple_verb,
)
from failover.cli.common import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    DEFAULT_HEALTHZ,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    JsonOutput,
)
from failover.cli.completion import cmd_complete, cmd_completion
from failover.cli.ops import add_commands as add_ops_commands
from failover.client import DaemonUnreachable
from failover.config.loader import ConfigError
from failover.logs import FORMATS
from failover.logs import setup as setup_logging
from failover.store import StoreCorruptError, StoreLockedError, StoreUnwritableError

CONFIG_HELP = f"config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})"


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--debug, --log-level, --log-format: before the command, or after it (then without
    defaults, so that they do not reset what was given before it)."""

    def d(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--debug", action="store_true", default=d(False), help="show tracebacks and debug logs"
    )
    parser.add_argument(
        "--log-level", default=d("info"), choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-format",
        default=d(os.environ.get("FAILOVER_LOG_FORMAT") or "text"),
        choices=FORMATS,
        help="text (default) or json: one object per line (default: $FAILOVER_LOG_FORMAT)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="failover", description="Keep a service reachable when its cloud goes down."
    )
    parser.add_argument("--version", action="version", version=f"failover {__version__}")
    _global_options(parser, defaults=True)
    after = argparse.ArgumentParser(add_help=False)
    _global_options(after, defaults=False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    class Sub:
        """add_parser with the global options accepted after the command too."""

        def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
            return subparsers.add_parser(name, parents=[after], **kwargs)  # type: ignore[arg-type]

    sub = Sub()

    def client_opts(p: argparse.ArgumentParser, with_json: bool = True) -> None:
        p.add_argument(
            "--socket", help="admin socket (default: $FAILOVER_SOCKET, admin.socket of -c)"
        )
        p.add_argument("--url", help="admin API over TCP, e.g. http://10.0.0.5:9181")
        p.add_argument("--token-file", help="bearer token for --url")
        p.add_argument("-c", "--config", help="config file to find the admin socket in")
        if with_json:
            p.add_argument(
                "--json", action="store_true", help="print one JSON document (the API's body)"
            )

    p = sub.add_parser("run", help="run the daemon")
    p.add_argument("-c", "--config", help=CONFIG_HELP)
    p.add_argument("--dry-run", action="store_true", help="decide and log, write no DNS")
    p.add_argument(
        "--once", action="store_true", help="one probe round and one decision, then exit"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file and summarise it")
    p.add_argument("-c", "--config", help=CONFIG_HELP)
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
    p.add_argument("--utc", action="store_true", help="times in UTC (default: local, with offset)")
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
        help="daemon down: apply through the providers of -c FILE and leave the pin for it"
        " (with coordination: in etcd, applied by the leader if one runs)",
    )
    p.add_argument(
        "--etcd-down",
        action="store_true",
        help="with --direct and coordination: etcd is down for every instance; apply anyway "
        "after one lease_ttl (refused otherwise while etcd does not answer)",
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
        p.set_defaults(func=simple_verb(verb))

    add_ops_commands(sub, client_opts)  # switchover, drain, undrain

    p = sub.add_parser("history", help="the journal of decisions and actions")
    p.add_argument("service", nargs="?")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--utc", action="store_true", help="times in UTC (default: local, with offset)")
    client_opts(p)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("drill", help="test a secondary: switch, verify, hold, switch back")
    p.add_argument("service")
    p.add_argument("--to", help="the target to drill (default: the first other UP target)")
    p.add_argument("--hold", default="1m", help="how long to stay on it (default 1m)")
    p.add_argument("--dry-run", action="store_true", help="preflight only, change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--stop", action="store_true", help="end the running drill now (back to its origin)"
    )
    client_opts(p)
    p.set_defaults(func=cmd_drill)

    p = sub.add_parser("probe", help="run a service's probes once and show each result")
    p.add_argument("-c", "--config", help=CONFIG_HELP)
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
    p.add_argument("-c", "--config", help=CONFIG_HELP)
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--socket", help="admin socket (default: $FAILOVER_SOCKET, admin.socket of -c)")
    p.add_argument("--url", help="admin API over TCP, e.g. http://10.0.0.5:9181")
    p.add_argument("--token-file", help="bearer token for --url")
    p.add_argument("--no-dns", action="store_true", help="do not query the zones' NS sets")
    p.add_argument(
        "--resolver",
        action="append",
        type=resolver_arg,
        metavar="IP[:PORT]",
        help="resolver for the NS queries (repeatable; default: the system's)",
    )
    p.add_argument(
        "--dns-timeout",
        type=duration_arg,
        default=5.0,
        metavar="DURATION",
        help="per-zone deadline of the NS queries (default 5s)",
    )
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("providers", help="the DNS provider types installed, with their package")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_providers)

    p = sub.add_parser("reload", help="make the daemon re-read its config file (like SIGHUP)")
    client_opts(p)
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser("demo", help="a guided failover on loopback, no account needed")
    p.add_argument("--keep", action="store_true", help="leave it running to explore")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "completion",
        help="print the shell completion script: "
        'eval "$(failover completion bash)" in ~/.bashrc, or zsh',
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=cmd_completion)

    p = subparsers.add_parser("__complete")  # what the completion scripts call (no help)
    p.add_argument("words", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_complete, parser_factory=build_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader went away (`failover status --watch | head`): like `git log | head`,
        # that is not an error; stdout is pointed at /dev/null so the exit flush is quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_format not in FORMATS:
        parser.error(f"FAILOVER_LOG_FORMAT={args.log_format}: expected one of {', '.join(FORMATS)}")
    JsonOutput.wanted = bool(getattr(args, "json", False)) or getattr(args, "format", "") == "json"
    setup_logging("debug" if args.debug else args.log_level, args.log_format)
    factory: eventloop.LoopFactory | None = None
    if args.func is cmd_run:  # the daemon runs on uvloop when installed (failover.eventloop)
        try:
            _, factory = eventloop.choose()
        except eventloop.EventLoopError as exc:
            parser.error(str(exc))
    try:
        code: int = eventloop.run(args.func(args), factory)
        sys.stdout.flush()
        return code
    except ConfigError as exc:
        where = getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
        lines = str(exc).splitlines()
        print(f"failover: configuration error in {where}:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
        _json_error("config_error", f"configuration error in {where}: " + "; ".join(lines))
        return EXIT_USAGE
    except DaemonUnreachable as exc:
        print(f"failover: {exc}", file=sys.stderr)
        hint = exc.hint
        if args.command == "promote":
            hint += " During an incident: failover promote ... --direct -c FILE."
        if hint:
            print(f"  {hint.strip()}", file=sys.stderr)
        _json_error("unreachable", str(exc))
        return EXIT_UNREACHABLE
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        body = exc.body or {"error": "failed", "message": str(exc).removeprefix("failover: ")}
        _json_document(body)
        return exc.code
    except (StoreLockedError, StoreCorruptError) as exc:
        print(f"failover: {exc}", file=sys.stderr)
        _json_error("state", str(exc))
        return EXIT_FAILED
    except StoreUnwritableError as exc:  # the environment the configuration names: exit 2
        print(f"failover: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            message = f"{exc.strerror or exc}{where}"
        else:
            message = (
                f"internal error: {type(exc).__name__}: {exc} "
                "(run with --debug for the traceback, and please report it)"
            )
        print(f"failover: {message}", file=sys.stderr)
        _json_error("failed", message)
        return EXIT_FAILED


def _json_error(code: str, message: str) -> None:
    _json_document({"error": code, "message": message})


def _json_document(body: dict[str, object]) -> None:
    """With --json, stdout carries one JSON document even when the command fails."""
    if JsonOutput.wanted and not JsonOutput.printed:
        JsonOutput.printed = True
        print(json.dumps(body, indent=2, sort_keys=True))
