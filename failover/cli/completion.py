"""Shell completion: `failover completion bash|zsh` prints a script that asks
`failover __complete -- WORDS…` for candidates, so one Python function knows the commands,
their options and the choices, and completes services and targets from the running daemon
(or, when it does not answer, from the config file).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from failover.cli.common import EXIT_OK, client_for, find_config
from failover.client import DaemonUnreachable
from failover.config.loader import ConfigError, load_config

LOOKUP_TIMEOUT = 2.0  # seconds: a completion must never hang a shell

BASH = """# failover completion for bash: eval "$(failover completion bash)" in ~/.bashrc
_failover_complete() {
    local IFS=$'\\n'
    COMPREPLY=($(failover __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _failover_complete failover
"""

ZSH = """#compdef failover
# failover completion for zsh: eval "$(failover completion zsh)" in ~/.zshrc (after compinit),
# or save it as _failover in a directory of $fpath
_failover() {
    local -a candidates
    candidates=(${(f)"$(failover __complete -- ${words[2,CURRENT]} 2>/dev/null)"})
    if (( ${#candidates} )); then
        compadd -Q -- $candidates
    else
        _files
    fi
}
if (( $+functions[compdef] )); then
    compdef _failover failover
fi
"""

SERVICE_FIRST = {"promote", "release", "pause", "resume", "ack", "history", "drill", "probe"}
SERVICE_FIRST |= {"switchover", "drain", "undrain"}
TARGET_SECOND = {"promote", "probe", "switchover", "drain", "undrain"}


async def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(BASH if args.shell == "bash" else ZSH)
    return EXIT_OK


async def cmd_complete(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words and words[0] == "--":
        words = words[1:]
    for line in await candidates(args.parser_factory(), words):
        print(line)
    return EXIT_OK


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {k: v for k, v in action.choices.items() if not k.startswith("__")}
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        flag: action
        for action in parser._actions
        for flag in action.option_strings
        if action.help != argparse.SUPPRESS
    }


async def candidates(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """What may come at the last of `words` (the word being typed, maybe empty)."""
    current = words[-1] if words else ""
    before = words[:-1]
    commands = _subparsers(parser)
    active = parser
    command: str | None = None
    positionals: list[str] = []
    i = 0
    while i < len(before):
        word = before[i]
        options = _options(active)
        if word.startswith("-"):
            action = options.get(word.split("=", 1)[0])
            if action is not None and action.nargs != 0 and "=" not in word:
                i += 1  # its value
        elif command is None and word in commands:
            command, active = word, commands[word]
        elif command is not None:
            positionals.append(word)
        i += 1
    options = _options(active)
    previous = before[-1] if before else ""
    if previous in options and options[previous].nargs != 0 and not current.startswith("-"):
        action = options[previous]
        if action.choices:
            return _matching([str(c) for c in action.choices], current)
        if previous == "--to" and command == "drill" and positionals:
            return _matching(await _names(before, positionals[0]), current)
        return []  # a file or free text: the shell's default completion
    if current.startswith("-"):
        return _matching(sorted(options), current)
    if command is None:
        return _matching(sorted(commands), current)
    choices = _positional_choices(active, len(positionals))
    if choices:
        return _matching(choices, current)
    if command in SERVICE_FIRST and not positionals:
        return _matching(await _names(before, None), current)
    if command in TARGET_SECOND and len(positionals) == 1:
        return _matching(await _names(before, positionals[0]), current)
    return []


def _positional_choices(parser: argparse.ArgumentParser, index: int) -> list[str]:
    positional = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
    if index < len(positional) and positional[index].choices:
        return [str(c) for c in positional[index].choices or ()]
    return []


def _matching(words: list[str], prefix: str) -> list[str]:
    return [w for w in words if w.startswith(prefix)]


async def _names(words: list[str], service: str | None) -> list[str]:
    """Service names (service None) or the targets of `service`: from the daemon found as the
    command line being completed says (--socket, -c…), else from the config file."""
    args = _where(words)
    try:
        status, body = await client_for(args, timeout=LOOKUP_TIMEOUT).call("GET", "/v1/status")
        if status == 200 and isinstance(body, dict):
            services: dict[str, Any] = body.get("services") or {}
            if service is None:
                return sorted(services)
            return list((services.get(service) or {}).get("targets") or {})
    except (TimeoutError, DaemonUnreachable, ConfigError, OSError):
        pass
    try:
        path = find_config(args)
        if path is None:
            return []
        config = load_config(path, missing_secrets=[])
    except Exception:  # a completion never fails loudly
        return []
    if service is None:
        return sorted(config.services)
    svc = config.services.get(service)
    return [t.name for t in svc.targets] if svc else []


def _where(words: list[str]) -> argparse.Namespace:
    found: dict[str, str | None] = {"socket": None, "url": None, "token_file": None, "config": None}
    names = {"--socket": "socket", "--url": "url", "--token-file": "token_file"}
    names.update({"-c": "config", "--config": "config"})
    for i, word in enumerate(words[:-1]):
        if word in names:
            found[names[word]] = words[i + 1]
    return argparse.Namespace(**found)
