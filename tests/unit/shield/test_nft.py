import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from pigeon.shield.bans import BanList
from pigeon.shield.nft import NftMirror

FAKE_NFT = """#!{python}
import json, sys
with open({log!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "stdin": sys.stdin.read()}}) + "\\n")
if "fail" in " ".join(sys.argv[1:]):
    print("Error: no such set", file=sys.stderr)
    sys.exit(1)
if "sleep" in " ".join(sys.argv[1:]):
    import time
    time.sleep(30)
"""


@pytest.fixture
def fake_nft(tmp_path):
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "nft"
    script.write_text(FAKE_NFT.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)

    def calls():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    return str(script), calls


async def test_nft_commands(fake_nft):
    nft, calls = fake_nft
    mirror = NftMirror("bans", nft=nft)
    assert await mirror.ensure()
    assert await mirror.add("192.0.2.1", 599.2)
    assert await mirror.add("2001:db8::/64", 600)
    assert await mirror.add("::ffff:192.0.2.9", 10)  # an IPv4 peer on a dual-stack socket
    assert await mirror.remove("192.0.2.1")
    ensure, *rest = calls()
    assert ensure["argv"] == ["-f", "-"]
    script = ensure["stdin"]
    assert "add table inet pigeon" in script
    assert "add set inet pigeon bans { type ipv4_addr; flags interval,timeout; auto-merge; }" \
        in script
    assert "add set inet pigeon bans6 { type ipv6_addr;" in script
    assert "type filter hook input priority -10; policy accept;" in script
    assert script.index("flush chain inet pigeon input") < script.index("ip saddr @bans drop")
    assert "ip6 saddr @bans6 drop" in script
    assert [c["argv"] for c in rest] == [
        ["add", "element", "inet", "pigeon", "bans", "{ 192.0.2.1 timeout 600s }"],
        ["add", "element", "inet", "pigeon", "bans6", "{ 2001:db8::/64 timeout 600s }"],
        ["add", "element", "inet", "pigeon", "bans", "{ 192.0.2.9 timeout 10s }"],
        ["delete", "element", "inet", "pigeon", "bans", "{ 192.0.2.1 }"],
    ]
    assert mirror.added == 3


async def test_nft_family_ip_only_handles_ipv4(fake_nft):
    nft, calls = fake_nft
    mirror = NftMirror("bans", table="t", family="ip", nft=nft)
    await mirror.ensure()
    assert "bans6" not in calls()[0]["stdin"]
    assert not await mirror.add("2001:db8::1", 5)
    assert not await mirror.add("not-an-address", 5)
    assert len(calls()) == 1
    with pytest.raises(ValueError):
        NftMirror("bans", family="bridge")


async def test_nft_failures_are_logged_not_raised(fake_nft, tmp_path, caplog):
    nft, _ = fake_nft
    caplog.set_level(logging.ERROR, "pigeon.shield.nft")
    assert not await NftMirror("fail", nft=nft).add("192.0.2.1", 5)
    assert "no such set" in caplog.text
    missing = NftMirror("bans", nft=str(tmp_path / "no-such-nft"))
    assert not await missing.ensure()
    assert missing.failed == 1
    slow = NftMirror("sleep", nft=nft, timeout=0.05)
    assert not await slow.add("192.0.2.1", 5)
    assert "timed out" in caplog.text
    assert not NftMirror.available(str(tmp_path / "no-such-nft"))


def _nft_unavailable_reason() -> str | None:
    if shutil.which("nft") is None:
        return "nft is not installed (apt-get install nftables) - kernel mirroring untested"
    if not NftMirror.available():
        return "nft cannot list the ruleset as this user (needs root or CAP_NET_ADMIN)"
    return None


@pytest.mark.skipif(_nft_unavailable_reason() is not None,
                    reason=str(_nft_unavailable_reason()))
async def test_real_nftables_set(clock):
    table = f"pigeon_test_{os.getpid()}"
    mirror = NftMirror("bans", table=table)
    try:
        assert await mirror.ensure()
        assert await mirror.ensure()  # idempotent: a restart keeps one copy of each rule
        bans = BanList(strikes=1, prefix_threshold=2, clock=clock, mirror=mirror)
        # Documentation ranges (RFC 5737, RFC 3849): nothing real is dropped.
        bans.strike("192.0.2.1")
        bans.strike("192.0.2.2")  # bans 192.0.2.0/24 over the addresses: auto-merge
        bans.strike("2001:db8::1")
        await bans.flush()
        assert mirror.failed == 0
        items = json.loads(_nft("-j", "list", "table", "inet", table))["nftables"]
        sets = {i["set"]["name"]: i["set"].get("elem", []) for i in items if "set" in i}
        rules = [i for i in items if "rule" in i]
        assert len(rules) == 2
        v4 = json.dumps(sets["bans"])
        assert "192.0.2.0" in v4 and '"len": 24' in v4
        assert "2001:db8::1" in json.dumps(sets["bans6"])
    finally:
        _nft("delete", "table", "inet", table)


def _nft(*args: str) -> str:
    # Blocking, but only in this test's setup and teardown, never under the code tested.
    return subprocess.run(["nft", *args], capture_output=True, text=True, check=False).stdout
