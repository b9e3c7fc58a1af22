"""``--plot FILE.png``: legitimate success and p99 latency over time, attack window shaded,
one line per run (two with --compare). Draws from the JSON document only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_COLORS = {"no-shield": "tab:red", "shield": "tab:blue", "target": "tab:green"}


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    fig, (ok_ax, lat_ax) = plt.subplots(2, 1, sharex=True, figsize=(10, 6.5))
    for n, run in enumerate(doc["runs"]):
        color = _COLORS.get(run["label"], f"C{n}")
        t = [row["t"] + 0.5 for row in run["series"]]
        ok = [None if row["legit"]["success_rate"] is None else 100 * row["legit"]["success_rate"]
              for row in run["series"]]
        p99 = [row["legit"]["p99_ms"] for row in run["series"]]
        ok_ax.plot(t, [float("nan") if v is None else v for v in ok], color=color,
                   marker=".", label=run["label"])
        lat_ax.plot(t, [float("nan") if v is None else v for v in p99], color=color,
                    marker=".", label=run["label"])
    windows = {tuple(run["attack_window_s"]) for run in doc["runs"]}
    for n, run in enumerate(doc["runs"]):
        if len(windows) == 1 and n > 0:
            break  # one shared window: shade it once
        shared = len(windows) == 1
        color = "grey" if shared else _COLORS.get(run["label"], f"C{n}")
        start, end = run["attack_window_s"]
        for ax in (ok_ax, lat_ax):
            what = ("restart until all synced" if doc["parameters"]["mode"] == "reconnect"
                    else "attack")
            ax.axvspan(start, end, color=color, alpha=0.12,
                       label=((what if shared else f"{what} ({run['label']})")
                              if ax is ok_ax else None))
    timeout_ms = 1000.0 * doc["parameters"]["timeout"]
    lat_ax.axhline(timeout_ms, color="black", linestyle=":", linewidth=1,
                   label=f"timeout ({timeout_ms:g} ms: failed sends count here)")
    lat_ax.legend(loc="upper left", fontsize="small")
    p = doc["parameters"]
    crowd = (f"{p['clients']} devices reconnecting" if p["mode"] == "reconnect"
             else f"{p['attackers']} attacker addresses")
    ok_ax.set_title(f"pigeon siege --mode {p['mode']}: {p['users']} users at {p['rate']:g} msg/s, "
                    f"{crowd}")
    ok_ax.set_ylabel("legit sends acked in time (%)")
    ok_ax.set_ylim(-2, 102)
    ok_ax.grid(alpha=0.3)
    ok_ax.legend(loc="lower left", fontsize="small")
    lat_ax.set_ylabel("legit p99 latency (ms)")
    lat_ax.set_yscale("log")
    lat_ax.set_xlabel("seconds since start")
    lat_ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
