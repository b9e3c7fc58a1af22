"""What a siege run is asked to do, checked before anything starts.

The harness attacks, so its bounds are part of its contract: it only ever targets loopback,
every count and every duration has a ceiling, and the run ends by itself.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: the attack modes; ``mixed`` runs the first five together
MODES = ("connect", "slowloris", "junk", "login", "spam", "reconnect", "mixed")
MIXED = ("connect", "slowloris", "junk", "login", "spam")

# Ceilings: a siege is a benchmark on one machine, not a tool to point at anything big.
MAX_DURATION = 600.0
MAX_USERS = 5_000
MAX_ATTACKERS = 50_000
MAX_CLIENTS = 20_000
MAX_RATE = 20_000.0
MAX_SOCKETS = 16_000


class SiegeError(Exception):
    """The siege cannot run as asked; the message says why and what to change."""


@dataclass(frozen=True)
class SiegeConfig:
    mode: str = "mixed"
    users: int = 50                  # legitimate users, chatting in pairs
    rate: float = 100.0              # legitimate messages per second, all users together
    attackers: int = 1000            # distinct attacker source addresses
    duration: float = 20.0           # seconds of measured run (reconnect mode may run longer)
    attack_start: float = 0.25       # the attack runs between these fractions of the run
    attack_end: float = 0.75
    clients: int = 10_000            # reconnect mode: devices in the storm, legitimate included
    server: str | None = None        # target this server instead of starting one
    server_pid: int | None = None    # its pid, for CPU and memory (found by port otherwise)
    code_log: str | None = None      # with --server: its stderr, to read login codes from
    compare: bool = False            # run twice: --no-shield, then the shield on
    serve_args: tuple[str, ...] = ()  # extra `pigeon serve` arguments for servers we start
    spam_accounts: int = 4           # compromised accounts in spam mode
    conns_per_attacker: int = 2      # connections each address holds (connect, slowloris)
    attack_subnets: int = 256        # /24 prefixes the attacker addresses are spread over
    slow_interval: float = 1.0       # slowloris: seconds between bytes
    logins: float = 0.5              # legitimate sign-ups per second during the run (0: none)
    newcomers: int = 0               # people signing up during the attack, each timed
    newcomer_timeout: float = 10.0   # a newcomer succeeds if logged in within this
    timeout: float = 5.0             # a legitimate send succeeds if acknowledged within this
    reconnect_timeout: float = 90.0  # reconnect mode: give up waiting for the storm after this
    sdk_devices: bool = False        # reconnect mode: the idle devices are SDK clients too
    devices_per_process: int = 5_000  # reconnect mode: idle devices one harness process drives
    restart: str = "term"            # reconnect mode: term (planned, warned) or kill (outage)
    max_sockets: int = 8_000         # attacker sockets at once, all modes together
    seed: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> SiegeConfig:
        if self.mode not in MODES:
            raise SiegeError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        _bound("--duration", self.duration, 2.0, MAX_DURATION)
        _bound("--users", self.users, 2, MAX_USERS)
        _bound("--rate", self.rate, 0.1, MAX_RATE)
        _bound("--attackers", self.attackers, 0, MAX_ATTACKERS)
        _bound("--clients", self.clients, 0, MAX_CLIENTS)
        _bound("--spam-accounts", self.spam_accounts, 1, 100)
        _bound("--conns-per-attacker", self.conns_per_attacker, 1, 64)
        _bound("--attack-subnets", self.attack_subnets, 1, 32_768)
        _bound("--slow-interval", self.slow_interval, 0.05, 60.0)
        _bound("--logins", self.logins, 0.0, 100.0)
        _bound("--newcomers", self.newcomers, 0, 1000)
        _bound("--newcomer-timeout", self.newcomer_timeout, 1.0, 60.0)
        _bound("--devices-per-process", self.devices_per_process, 1, MAX_CLIENTS)
        if self.restart not in ("term", "kill"):
            raise SiegeError(f"--restart must be term or kill, not {self.restart!r}")
        if self.sdk_devices and self.mode != "reconnect":
            raise SiegeError("--sdk-devices is for reconnect mode, whose idle devices it makes "
                             "SDK clients")
        if self.newcomers and self.mode == "reconnect":
            raise SiegeError("--newcomers sign up during an attack; reconnect mode has none")
        _bound("--timeout", self.timeout, 0.1, 60.0)
        _bound("--reconnect-timeout", self.reconnect_timeout, 1.0, 600.0)
        _bound("--max-sockets", self.max_sockets, 1, MAX_SOCKETS)
        if not 0.0 <= self.attack_start < self.attack_end <= 1.0:
            raise SiegeError("need 0 <= --attack-start < --attack-end <= 1 (fractions of the run)")
        if self.attackers > self.attack_subnets * 254:
            raise SiegeError(f"{self.attackers} attackers do not fit in {self.attack_subnets} "
                             f"/24 prefixes (254 addresses each): raise --attack-subnets")
        if self.attack_sockets > self.max_sockets:
            raise SiegeError(f"this attack needs {self.attack_sockets} sockets at once, over "
                             f"--max-sockets {self.max_sockets}: fewer --attackers or "
                             "--conns-per-attacker, or a higher --max-sockets")
        if self.server is not None:
            check_loopback(self.server)
            if self.compare:
                raise SiegeError("--compare starts its own two servers (shield off, then on); "
                                 "it cannot be combined with --server")
            if self.mode == "reconnect":
                raise SiegeError("reconnect mode restarts the server, so it needs a server it "
                                 "started itself: drop --server")
        if self.mode == "reconnect" and self.clients and self.clients < self.users:
            raise SiegeError(f"--clients ({self.clients}) counts every device in the storm, "
                             f"the {self.users} legitimate users included: raise it")
        return self

    @property
    def pairs(self) -> int:
        return (self.users + 1) // 2

    @property
    def idle_clients(self) -> int:
        """Reconnect mode: logged-in devices beyond the chatting users."""
        return max(0, self.clients - 2 * self.pairs) if self.mode == "reconnect" else 0

    @property
    def attack_modes(self) -> tuple[str, ...]:
        if self.mode == "mixed":
            return MIXED
        if self.mode == "reconnect":
            return ()
        return (self.mode,)

    @property
    def needs_spammers(self) -> bool:
        return "spam" in self.attack_modes

    def split(self) -> dict[str, int]:
        """Attacker addresses per mode (spam uses accounts, not addresses)."""
        modes = [m for m in self.attack_modes if m != "spam"]
        return {m: self.attackers // len(modes) + (1 if k < self.attackers % len(modes) else 0)
                for k, m in enumerate(modes)}

    @property
    def attack_sockets(self) -> int:
        """Attacker sockets open at once, at most."""
        per = {"connect": self.conns_per_attacker, "slowloris": self.conns_per_attacker}
        spam = self.spam_accounts if self.needs_spammers else 0
        return sum(n * per.get(m, 1) for m, n in self.split().items()) + spam

    def parameters(self) -> dict[str, Any]:
        """For the JSON report: everything that shapes the run."""
        data = asdict(self)
        data["serve_args"] = list(self.serve_args)
        data.pop("extra")
        return data


def _bound(flag: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise SiegeError(f"{flag} must be between {low:g} and {high:g}, not {value:g}")


def check_loopback(url: str) -> str:
    """The host of ``url`` if it is loopback; SiegeError otherwise. A siege floods its target,
    so it must never leave the machine: 127.0.0.0/8, ::1 and ``localhost`` only."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = parts.hostname
    if not host:
        raise SiegeError(f"cannot read a host in --server {url!r}")
    if parts.scheme not in ("http", "ws", "https", "wss"):
        raise SiegeError(f"--server must be an http:// or ws:// URL, not {url!r}")
    if host != "localhost":
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None or not address.is_loopback:
            raise SiegeError(
                f"refusing to attack {host}: pigeon siege only targets loopback "
                "(127.0.0.0/8, ::1 or localhost), so that it never floods another machine")
    try:
        _ = parts.port
    except ValueError:
        raise SiegeError(f"bad port in --server {url!r}") from None
    return host
