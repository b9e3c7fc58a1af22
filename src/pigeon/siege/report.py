"""The report: the JSON document and the plain-text tables. Pure functions of the run data.

The JSON document (``--json FILE``)::

    {"tool": "pigeon siege", "version": 1, "parameters": {...},
     "runs": [{"label": "no-shield" | "shield" | "target", "server_args": [...],
               "attack_window_s": [start, end], "seconds": N,
               "series": [{"t", "phase", "legit", "attack", "server", "harness"}, ...],
               "totals": {"baseline" | "attack" | "recovery" | "all":
                          {"legit", "attack", "server"}},
               "reconnect": {...} | null, "stopped": {"reason", "wall_s"}}]}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .stats import PHASES

SCHEMA_VERSION = 1


def document(parameters: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tool": "pigeon siege", "version": SCHEMA_VERSION, "parameters": parameters,
            "runs": runs}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100.0 * x:.1f}"


def _num(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


# Rows of the summary: (label, getter on a phase total, formatter).
_ROWS: list[tuple[str, Callable[[dict[str, Any]], Any], Callable[[Any], str]]] = [
    ("legit sends", lambda t: t["legit"]["sent"], _num),
    ("legit success %", lambda t: t["legit"]["success_rate"], _pct),
    ("legit p50 ms", lambda t: t["legit"]["p50_ms"], lambda x: _num(x, 1)),
    ("legit p99 ms", lambda t: t["legit"]["p99_ms"], lambda x: _num(x, 1)),
    ("pushed to peer %", lambda t: t["legit"]["delivery_rate"], _pct),
    ("sign-ups ok / tried", lambda t: (t["legit"]["logins_ok"], t["legit"]["logins"]),
     lambda x: f"{x[0]}/{x[1]}"),
    ("newcomers in time / tried",
     lambda t: (t["legit"].get("newcomers_ok", 0), t["legit"].get("newcomers", 0)),
     lambda x: f"{x[0]}/{x[1]}"),
    ("attacker conns accepted", lambda t: t["attack"]["conns_accepted"], _num),
    ("attacker conns refused", lambda t: t["attack"]["conns_refused"], _num),
    ("attacker sockets held (peak)", lambda t: t["attack"]["held"], _num),
    ("attacker calls answered", lambda t: t["attack"]["answered"], _num),
    ("attacker calls refused", lambda t: t["attack"]["refused"], _num),
    ("login codes sent to attackers", lambda t: t["attack"]["codes_sent"], _num),
    ("spam messages accepted", lambda t: t["attack"]["messages_sent"], _num),
    ("attacker work admitted", lambda t: t["attack"]["admitted"], _num),
    ("server CPU % (mean)", lambda t: t["server"]["cpu_mean_percent"], _num),
    ("server RSS MiB (peak)", lambda t: t["server"]["rss_peak_mb"], lambda x: _num(x, 1)),
    ("attackers CPU % (mean)", lambda t: t["harness"]["attackers_cpu_mean_percent"], _num),
    ("machine CPU % (all cores)", lambda t: t["harness"]["machine_cpu_mean_percent"], _num),
]


def _table(header: list[str], rows: list[list[str]], lead: int = 1,
           groups: list[str] | None = None) -> str:
    """Left-aligned ``lead`` columns, then right-aligned data; ``groups`` names equal runs
    of data columns with a line above them (the runs of --compare)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = [c.ljust(w) for c, w in zip(cells[:lead], widths[:lead], strict=False)]
        out += [c.rjust(w) for c, w in zip(cells[lead:], widths[lead:], strict=False)]
        return "  ".join(out).rstrip()

    lines = []
    if groups:
        span = (len(header) - lead) // len(groups)
        top = ["  ".join(" " * w for w in widths[:lead])]
        for g in range(len(groups)):
            width = sum(widths[lead + g * span:lead + (g + 1) * span]) + 2 * (span - 1)
            top.append(f" {groups[g]} ".center(width, "-"))
        lines.append("  ".join(top).rstrip())
    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths))
    lines += [line(row) for row in rows]
    return "\n".join(lines)


def _groups(runs: list[dict[str, Any]]) -> list[str] | None:
    return [run["label"] for run in runs] if len(runs) > 1 else None


def summary_table(runs: list[dict[str, Any]]) -> str:
    """Metrics down, phases across: one run, or two side by side (--compare)."""
    header = [""] + [p for _ in runs for p in (*PHASES, "all")]
    rows = []
    for label, get, fmt in _ROWS:
        row = [label]
        for run in runs:
            row += [fmt(get(run["totals"][p])) for p in (*PHASES, "all")]
        rows.append(row)
    return _table(header, rows, 1, _groups(runs))


def seconds_table(runs: list[dict[str, Any]]) -> str:
    """One line a second: legitimate success and p99, attacker work, server CPU and memory."""
    header = ["t", "phase"]
    for _ in runs:
        header += ["sent", "ok%", "p99 ms", "atk admitted", "atk refused", "cpu%", "MiB"]
    rows = []
    for t in range(max(run["seconds"] for run in runs)):
        phase = next((r["series"][t]["phase"] for r in runs if t < r["seconds"]), "")
        row = [str(t), phase]
        for run in runs:
            if t >= run["seconds"]:
                row += [""] * 7
                continue
            s = run["series"][t]
            row += [_num(s["legit"]["sent"]), _pct(s["legit"]["success_rate"]),
                    _num(s["legit"]["p99_ms"], 0), _num(s["attack"]["admitted"]),
                    _num(s["attack"]["refused"] + s["attack"]["conns_refused"]),
                    _num(s["server"].get("cpu_percent")), _num(s["server"].get("rss_mb"))]
        rows.append(row)
    return _table(header, rows, 2, _groups(runs))


def reconnect_lines(run: dict[str, Any]) -> list[str]:
    r = run.get("reconnect")
    if not r:
        return []

    def s(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f} s"

    lines = [
        (f"[{run['label']}] reconnect storm: {r['clients']} devices ({r['sdk_clients']} SDK "
         f"clients chatting, {r['wire_devices']} idle on the "
         f"{'SDK' if r.get('idle_devices_on') == 'sdk' else 'wire protocol'}); "
         f"{'outage (kill -9)' if r.get('restart') == 'kill' else 'restart (SIGTERM)'} at "
         f"{s(r['restart_at_s'])}, server listening again {s(r['server_back_s'])} later"),
        (f"[{run['label']}]   back: {r['reconnected']}/{r['clients']} (all within "
         f"{s(r['all_back_s'])}); synced: {r['synced']}/{r['clients']} (all within "
         f"{s(r['all_synced_s'])} of the restart, {s(r['all_synced_after_listening_s'])} of "
         f"listening again; p50 {s(r['p50_synced_s'])}, p99 {s(r['p99_synced_s'])})")]
    if r.get("stop_s") is not None:
        lines.append(f"[{run['label']}]   the process stopped in {s(r['stop_s'])} and "
                     f"listened again {s(r['start_s'])} after that")
        lines += [f"[{run['label']}]     {phase}" for phase in r.get("stop_phases", [])]
    if r["reconnect_failures"] or r["sync_errors"]:
        lines.append(f"[{run['label']}]   failed connection attempts "
                     f"{r['reconnect_failures']}; sync errors {r['sync_errors']}")
    if r.get("not_back_by_phase"):
        lines.append(f"[{run['label']}]   not back at the end, by where each was: "
                     f"{r['not_back_by_phase']}")
    if r.get("failures_before_storm"):
        lines.append(f"[{run['label']}]   (not counted: failed attempts while the idle devices "
                     f"first connected, before the storm: {r['failures_before_storm']})")
    return lines


def newcomer_lines(run: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    legit = run["totals"]["all"]["legit"]
    if not legit.get("newcomers"):
        return []

    def s(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f} s"

    errors = ", ".join(f"{k} {v}" for k, v in legit["newcomer_errors"].items()) or "none"
    return [f"[{run['label']}] newcomers: {legit['newcomers_ok']}/{legit['newcomers']} signed "
            f"up within {parameters.get('newcomer_timeout', 10):g} s during the attack "
            f"(p50 {s(legit['newcomer_p50_s'])}, max {s(legit['newcomer_max_s'])}; "
            f"failures: {errors})"]


def render(doc: dict[str, Any], per_second: bool = True) -> str:
    runs = doc["runs"]
    p = doc["parameters"]
    crowd = (f"{p['clients']} devices in the storm" if p["mode"] == "reconnect"
             else f"{p['attackers']} attacker addresses")
    out = [(f"pigeon siege: mode {p['mode']}, {p['users']} users at {p['rate']:g} msg/s, "
            f"{crowd}, {p['duration']:g} s")]
    for run in runs:
        w = run["attack_window_s"]
        out.append(f"[{run['label']}] server args {' '.join(run['server_args']) or '(default)'}; "
                   f"attack {w[0]:g}-{w[1]:g} s; stopped: {run['stopped']['reason']} "
                   f"after {run['stopped']['wall_s']:.0f} s")
        out += reconnect_lines(run)
        out += newcomer_lines(run, p)
        out += [f"[{run['label']}] note: {note}" for note in run.get("notes", [])]
    if per_second:
        out += ["", seconds_table(runs)]
    out += ["", summary_table(runs)]
    return "\n".join(out)


def progress_line(label: str, sec: int, seconds: int, second: dict[str, Any],
                  storm: dict[str, Any] | None = None) -> str:
    """The status line shown while running, from one row of the series (and, in reconnect
    mode, the idle devices' counts)."""
    legit, attack, server = second["legit"], second["attack"], second["server"]
    if storm is not None:
        middle = (f"idle devices: {storm.get('connected', 0):>5} connected "
                  f"{storm.get('back', 0):>5} back {storm.get('synced', 0):>5} synced")
    else:
        middle = (f"attackers: {attack['admitted']:>6} admitted "
                  f"{attack['refused'] + attack['conns_refused']:>6} refused "
                  f"{attack['held']:>5} held")
    return (f"[{label}] {sec + 1:>3}/{seconds}s {second['phase']:<8} "
            f"legit {legit['sent']:>4} sent {_pct(legit['success_rate']):>5}% ok "
            f"p99 {_num(legit['p99_ms'], 0):>5} ms | {middle} | server "
            f"{_num(server.get('cpu_percent')):>4}% cpu {_num(server.get('rss_mb')):>5} MiB")
