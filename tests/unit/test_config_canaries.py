"""`canaries:` — probes of always-up things that feed the isolation guard."""

from __future__ import annotations

import pytest

from failover.config.loader import ConfigError, parse_config

BASE = """
instance: {name: t, state_dir: /tmp/x}
providers: {lab: {type: builtin, listen: "127.0.0.1:0"}}
defaults: {probe: {interval: 3s, timeout: 1s}}
services:
  shop:
    records: [{provider: lab, zone: example.test, name: shop.example.test, type: A}]
    targets:
      - {name: a, values: [192.0.2.1], probes: [{type: tcp, address: "192.0.2.1:443"}]}
"""


def test_canaries_parse_with_inherited_timing() -> None:
    config = parse_config(
        BASE
        + "canaries:\n  - name: internet\n    location: internet\n"
        + '    probes: [{type: tcp, address: "192.0.2.53:53"}]\n'
    )
    (canary,) = config.canaries
    assert canary.name == "internet" and canary.location == "internet"
    assert canary.probes[0].interval == 3.0 and canary.probes[0].timeout == 1.0


@pytest.mark.parametrize(
    ("canaries", "expected"),
    [
        ("[{location: x, probes: [{type: tcp, address: 'h:1'}]}]", "canaries[0].name: missing"),
        ("[{name: c, location: x}]", "canaries[0].probes: missing"),
        ("[{name: c, probes: [{type: tcp, address: 'h:1'}], colour: red}]", "canaries[0].colour"),
        (
            "[{name: c, probes: [{type: tcp, address: 'h:1'}]},"
            " {name: c, probes: [{type: tcp, address: 'h:2'}]}]",
            "canaries[1].name: canary 'c' is defined twice",
        ),
        ("{name: c}", "canaries: expected a list of canaries"),
    ],
)
def test_canary_errors_name_the_path(canaries: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + f"canaries: {canaries}\n")
    assert expected in str(info.value)
