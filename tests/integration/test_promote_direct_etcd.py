"""`promote --direct` with coordination, against a real etcd and a real BIND shared by fo-a (whose
daemon is down: the operator runs --direct with its file) and fo-b.

- nobody leads: the command leads itself, writes the pin to etcd and applies it; fo-b, started
  afterwards, honours the pin;
- fo-b leads: the pin goes to etcd and fo-b publishes it; the command reads it back;
- etcd does not answer: refused (an instance may still lead), unless --etcd-down.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from tests.coord.etcd_cluster import EtcdCluster
from tests.providers.bind import BindServer
from tests.providers.peers import bind_peer
from tests.support import DaemonProcess, TargetServer, cli, config_text, free_port, wait_until

PRIMARY, SECONDARY = "127.0.0.71", "127.0.0.72"
POLICY = "{failback: manual, cooldown: 1s, startup_grace: 1s}"


def test_direct_promote_goes_through_etcd(
    tmp_path: Path, etcd_single: EtcdCluster, bind: BindServer
) -> None:
    etcd = etcd_single
    peer = bind_peer(bind, tmp_path)
    primary, secondary = TargetServer(PRIMARY).start(), TargetServer(SECONDARY).start()
    prefix = f"/direct-{uuid.uuid4().hex[:8]}"
    coordination = (
        "coordination:\n"
        f"  etcd: {{endpoints: [{etcd.endpoints[0]}], prefix: {prefix}, lease_ttl: 3s,"
        " timeout: 600ms}\n"
    )
    files: dict[str, Path] = {}
    ports: dict[str, int] = {}
    for name in ("fo-a", "fo-b"):
        workdir = tmp_path / name
        workdir.mkdir()
        ports[name] = free_port()
        files[name] = workdir / "failover.yaml"
        files[name].write_text(
            config_text(
                workdir,
                peer,
                primary,
                secondary,
                metrics_port=ports[name],
                instance=name,
                policy=POLICY,
                extra=coordination,
            )
        )
    fo_b = DaemonProcess(files["fo-b"], ports["fo-b"], tmp_path / "fo-b" / "admin.sock")

    def answer() -> list[str]:
        return bind.values("shop.example.test")

    def direct(target: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli(
            "promote", "shop", target, "--reason", "drill", "--yes", "--direct",
            "-c", str(files["fo-a"]), *extra,
        )  # fmt: skip

    def pin_in_etcd() -> str | None:
        out = etcd.etcdctl("get", f"{prefix}/intents/shop", "--print-value-only")
        assert out.returncode == 0, out.stderr
        pin = json.loads(out.stdout)["pin"] if out.stdout.strip() else None
        return pin["target"] if pin else None

    try:
        # nobody leads: this command leads, pins in etcd and applies the change itself
        done = direct("secondary")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "nobody leads" in done.stdout
        assert "this command leads and applies" in done.stderr
        assert answer() == [SECONDARY]
        assert pin_in_etcd() == "secondary"
        leader = etcd.etcdctl("get", f"{prefix}/leader", "--print-value-only")
        assert leader.stdout.strip() == ""  # its lease revoked: a daemon may lead at once

        fo_b.start()  # honours the pin it finds in etcd, flips nothing
        status = wait_until(
            lambda: (s := cli_status(fo_b)) and s["leader"] and s, 30, "fo-b to lead"
        )
        shop = status["services"]["shop"]
        assert shop["mode"] == "pinned" and shop["pin"]["target"] == "secondary"
        assert answer() == [SECONDARY]

        # fo-b leads: the pin goes to etcd and fo-b publishes it
        back = direct("primary")
        assert back.returncode == 0, back.stdout + back.stderr
        assert "fo-b leads" in back.stdout
        assert "the leader (fo-b) published primary" in back.stdout
        assert answer() == [PRIMARY]
        assert pin_in_etcd() == "primary"
        shop = cli_status(fo_b)["services"]["shop"]
        assert shop["pin"]["target"] == "primary" and shop["active"] == "primary"

        # fo-b's history shows what the command did as fo-a: the history is shared in etcd
        history = cli("history", "--socket", str(fo_b.socket), "--limit", "100")
        assert history.returncode == 0, history.stderr
        assert history.stdout.startswith("history: every instance's entries")
        assert "the leader is fo-b" in history.stdout.splitlines()[0]
        entries = json.loads(
            cli("history", "--json", "--socket", str(fo_b.socket), "--limit", "100").stdout
        )
        direct_entries = [(e["instance"], e["kind"]) for e in entries if e.get("direct")]
        assert direct_entries == [("fo-a", "pin"), ("fo-a", "switch"), ("fo-a", "pin")]

        # etcd does not answer: history says it shows this instance's journal only
        etcd.kill(0)
        alone = cli("history", "--socket", str(fo_b.socket), "--limit", "100")
        assert alone.returncode == 0, alone.stderr
        assert alone.stdout.startswith("history: the journal of fo-b only: etcd does not answer")
        assert "direct promote by" not in alone.stdout  # fo-a's switch lives in fo-a's journal
        assert fo_b.stop() == 0

        # etcd does not answer: refused, nothing changes; --etcd-down applies it anyway
        refused = direct("secondary")
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "etcd does not answer" in refused.stderr and "--etcd-down" in refused.stderr
        assert answer() == [PRIMARY]
        forced = direct("secondary", "--etcd-down")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "waiting 3s, one lease_ttl" in forced.stderr
        assert "state file only" in forced.stderr  # a warning: stderr, stdout stays the result
        assert answer() == [SECONDARY]
    finally:
        fo_b.stop()
        primary.close()
        secondary.close()


def cli_status(daemon: DaemonProcess) -> dict[str, object]:
    out = cli("status", "--json", "--socket", str(daemon.socket))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]
