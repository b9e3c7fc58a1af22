"""`pigeon siege`: small bounded runs against real servers, and its safety rules.

Each run is a real `pigeon siege` process (which starts its own servers and an attacker
process); the tests check the JSON report, that legitimate users were served, that the run
ended by itself within its bounds, and that nothing it started outlives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pigeon.siege import SiegeError, check_loopback
from pigeon.siege.stats import percentile
from pigeon.siege.wire import FrameParser, encode_frame, is_refusal

pytestmark = pytest.mark.slow

PHASES = ("baseline", "attack", "recovery", "all")


def siege(tmp_path: Path, *args: str,
          timeout: float = 40.0) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    # cwd and TMPDIR in tmp_path: every process the siege starts can be found afterwards.
    proc = subprocess.run(
        [sys.executable, "-m", "pigeon", "siege", "-q", *args], cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True, text=True, timeout=timeout, check=False)
    return proc, time.monotonic() - started


def leftovers(tmp_path: Path) -> list[str]:
    """Processes still running that the siege started (by their cwd or data directory)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if p.info["cwd"] == str(tmp_path) or str(tmp_path) in cmd:
                found.append(f"{p.info['pid']}: {cmd}")
        except psutil.Error:
            continue
    return found


def check_report(doc: dict, mode: str, duration: float) -> dict:
    assert doc["tool"] == "pigeon siege" and doc["version"] == 1
    assert doc["parameters"]["mode"] == mode
    (run,) = doc["runs"]
    assert run["stopped"]["reason"] == "completed"
    start, end = run["attack_window_s"]
    assert 0 < start < end <= duration
    assert run["seconds"] == len(run["series"]) >= duration
    for t, row in enumerate(run["series"]):
        assert row["t"] == t
        assert row["phase"] in PHASES[:3]
        assert {"sent", "ok", "failed", "success_rate", "p50_ms", "p99_ms",
                "delivered"} <= row["legit"].keys()
        assert {"conns_accepted", "answered", "refused", "held", "admitted",
                "by_mode"} <= row["attack"].keys()
        assert {"cpu_percent", "rss_mb"} <= row["server"].keys()
    assert {r["phase"] for r in run["series"]} == set(PHASES[:3])
    assert set(run["totals"]) == set(PHASES)
    for phase in PHASES:
        legit = run["totals"][phase]["legit"]
        assert legit["sent"] > 0
        assert legit["ok"] + legit["failed"] == legit["sent"]
    legit = run["totals"]["all"]["legit"]
    assert legit["success_rate"] > 0, legit
    assert legit["delivered"] > 0
    assert run["totals"]["baseline"]["legit"]["success_rate"] == 1.0
    server = run["totals"]["all"]["server"]
    assert server["rss_peak_mb"] and server["rss_peak_mb"] > 0
    return run


def test_mixed_siege_serves_legit_users_and_stops_by_itself(tmp_path: Path) -> None:
    out, png = tmp_path / "siege.json", tmp_path / "siege.png"
    proc, took = siege(tmp_path, "--mode", "mixed", "--duration", "6", "--users", "6",
                       "--rate", "20", "--attackers", "300", "--json", str(out),
                       "--plot", str(png))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert took < 40
    run = check_report(json.loads(out.read_text()), "mixed", 6)
    attack = run["totals"]["attack"]["attack"]
    assert set(attack["by_mode"]) == {"connect", "slowloris", "junk", "login", "spam"}
    assert attack["conns_attempted"] > 0 and attack["frames_sent"] > 0
    assert run["totals"]["baseline"]["attack"]["conns_attempted"] == 0  # the attack waited
    assert png.stat().st_size > 10_000
    assert "legit success %" in proc.stdout
    assert not leftovers(tmp_path)


def test_login_flood(tmp_path: Path) -> None:
    """Finding 13: a code-pumping flood that does not solve proof of work gets at most the
    open share of the global SMS budget (it got about 510 codes at 4,000 attackers before
    the budgets adapted and kept a share for solved work)."""
    from pigeon.server.settings import Settings
    from pigeon.shield.ratelimit import Rate

    out = tmp_path / "siege.json"
    proc, _ = siege(tmp_path, "--mode", "login", "--duration", "6", "--users", "4",
                       "--rate", "10", "--attackers", "200", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = check_report(json.loads(out.read_text()), "login", 6)
    login = run["totals"]["attack"]["attack"]["by_mode"]["login"]
    assert login["calls"] > 0
    assert login["answered"] + login["refused"] > 0
    floor, share = Rate.parse(Settings.code_rate_global), Settings.code_budget_open
    budget = share * (floor.burst + floor.per_second * run["seconds"])
    assert run["totals"]["all"]["attack"]["codes_sent"] <= budget + 1, login
    assert not leftovers(tmp_path)


def test_newcomers_who_solve_proof_of_work_get_in_during_a_flood(tmp_path: Path) -> None:
    """Finding 14: people who sign up during a mixed siege, with the SDK (which solves the
    challenges the shield hands out), are logged in within 10 s."""
    out = tmp_path / "siege.json"
    proc, _ = siege(tmp_path, "--mode", "mixed", "--duration", "8", "--users", "4",
                    "--rate", "10", "--attackers", "400", "--newcomers", "10", "--json",
                    str(out), timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = check_report(json.loads(out.read_text()), "mixed", 8)
    legit = run["totals"]["attack"]["legit"]
    assert legit["newcomers"] == 10
    assert legit["newcomers_ok"] >= 9, legit["newcomer_errors"]
    assert "newcomers:" in proc.stdout
    assert not leftovers(tmp_path)


def test_reconnect_storm(tmp_path: Path) -> None:
    out = tmp_path / "siege.json"
    # three processes of idle devices (96 of them, 40 a process): counted as one
    proc, _ = siege(tmp_path, "--mode", "reconnect", "--duration", "6", "--users", "4",
                    "--rate", "10", "--clients", "100", "--devices-per-process", "40",
                    "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    storm = run["reconnect"]
    assert storm["clients"] == 100
    assert storm["sdk_clients"] == 4 and storm["wire_devices"] == 96
    assert storm["synced"] == 100 and storm["all_synced_s"] is not None, storm
    assert storm["server_back_s"] > 0
    # Where the stop's time went: its phases, as the server logged them.
    assert storm["stop_s"] > 0 and storm["start_s"] > 0
    assert any("going-away notice sent to" in phase for phase in storm["stop_phases"]), storm
    assert run["totals"]["recovery"]["legit"]["success_rate"] > 0
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("url", ["http://example.com:8700", "http://10.0.0.1:8700",
                                 "192.168.1.5:8700", "http://[2001:db8::1]:8700"])
def test_refuses_targets_off_this_machine(tmp_path: Path, url: str) -> None:
    proc, took = siege(tmp_path, "--server", url, timeout=20)
    assert proc.returncode == 2
    assert "refusing to attack" in proc.stderr and "loopback" in proc.stderr
    assert took < 10
    assert not leftovers(tmp_path)


def test_loopback_rule() -> None:
    for ok in ("http://127.0.0.1:8700", "ws://127.9.8.7:1/v1/ws", "http://localhost:8700",
               "http://[::1]:8700", "127.0.0.1:8700"):
        check_loopback(ok)
    for bad in ("http://128.0.0.1", "http://localhost.example.com", "http://0.0.0.0:8700",
                "http://[::ffff:8.8.8.8]:1", "ftp://127.0.0.1"):
        with pytest.raises(SiegeError):
            check_loopback(bad)


def test_bounds_are_refused(tmp_path: Path) -> None:
    proc, _ = siege(tmp_path, "--duration", "100000", timeout=20)
    assert proc.returncode == 2 and "--duration" in proc.stderr
    proc, _ = siege(tmp_path, "--compare", "--server", "http://127.0.0.1:1", timeout=20)
    assert proc.returncode == 2 and "--compare" in proc.stderr


def test_pure_parts() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile(list(range(1, 101)), 0.99) == 99
    frame = encode_frame(b"x" * 70_000, mask=b"\x01\x02\x03\x04")
    parser = FrameParser()
    # a server frame is unmasked; ours are masked, and the parser takes both
    assert parser.feed(frame[:10]) == []
    assert parser.feed(frame[10:]) == [(2, b"x" * 70_000)]
    assert is_refusal("RATE_LIMITED") and is_refusal("MALFORMED_FRAME")
    assert not is_refusal("CODE_INVALID") and not is_refusal("PHONE_INVALID")


def test_reconnect_storm_with_every_device_on_the_sdk(tmp_path: Path) -> None:
    out = tmp_path / "siege.json"
    proc, _ = siege(tmp_path, "--mode", "reconnect", "--duration", "6", "--users", "4",
                    "--rate", "10", "--clients", "60", "--sdk-devices", "--json", str(out),
                    timeout=90.0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["parameters"]["sdk_devices"] is True
    storm = doc["runs"][0]["reconnect"]
    assert storm["clients"] == 60 and storm["wire_devices"] == 56
    assert storm["synced"] == 60 and storm["all_synced_s"] is not None, storm
    assert not leftovers(tmp_path)
