"""Server settings: defaults, overridden by a TOML file, then by PIGEON_* environment
variables, then by command-line flags (``pigeon serve --help`` lists them all)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pigeon.protocol import limits
from pigeon.shield.ratelimit import Rate
from pigeon.domain.groups import WHO_CAN_ADD
from pigeon.domain.requests import WHO_CAN_MESSAGE
from pigeon.domain.regions import RegionTable, parse_table

from .edge import parse_networks


#: worker processes of one `pigeon serve`, at most
MAX_WORKERS = 64
#: PostgreSQL writers of one machine's workers in all, when store_writers is not set
STORE_WRITERS = 4


class SettingsError(ValueError):
    """A setting has a value the server cannot run with; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    data: Path = Path("pigeon-data")
    # "" (the default): SQLite in `data`. postgresql://USER@HOST:PORT/DB: PostgreSQL, for more
    # than one process; its password from PGPASSWORD or ~/.pgpass, never on the command line.
    store: str = ""
    store_pool: int = 8                     # PostgreSQL connections per process: writers
    store_writers: int = 0                  # and readers (the rest); docs/operations.md
    # (0: STORE_WRITERS in all, shared among the workers: store_writers_here)
    allow_shared_data_dir: bool = False     # start even if group or others can open `data`
    listen: str = "127.0.0.1:8700"
    # N: N worker processes on the listening port (SO_REUSEPORT) under one supervisor that
    # restarts any that dies (server/workers.py); more than one needs a store and a bus that
    # processes share. 0: one per core when both are shared (PostgreSQL and NATS), else one
    # process and no supervisor.
    workers: int = 0
    operator_listen: str = "127.0.0.1:8701"  # /metrics, /shield, /healthz; "off" for none
    operator_token: str | None = None       # bearer token the operator listener requires
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_no_tls: bool = False
    trusted_proxies: str = ""               # CIDRs whose PROXY header / X-Forwarded-For is believed
    proxy_protocol: bool = False            # trusted proxies open with a PROXY v1/v2 header
    code_sender: str = "console"            # console | webhook
    code_webhook_url: str | None = None
    code_ttl: float = 300.0                 # seconds a login code stays valid
    code_attempts: int = 5
    code_rate_phone: str = "5/1h burst 3"   # codes sent by SMS to one number
    code_rate_address: str = "60/1h burst 20"  # code requests and sign-ins from one address
    code_rate_app: str = "5/1h burst 3"     # in-app codes to one number, per requesting prefix
    code_rate_app_phone: str = "20/1h burst 10"  # in-app codes to one number in all
    # Every group message writes one update row per member on the one writer thread: 1,000
    # members cost about 7 ms of it (docs/operations.md, "Groups"). Up to 200,000 allowed.
    max_group_members: int = 1_000
    # A very large group (chats.create_group large=true, "supergroup") writes each message
    # once, on its own stream, whatever its size (docs/operations.md, "Groups").
    max_supergroup_members: int = 200_000
    # Items of a device inbox (end-to-end envelopes) that its device has not acknowledged
    # after this many seconds are deleted; the purge runs every device_inbox_purge_every.
    device_inbox_retention: float = 30 * 86400.0
    device_inbox_purge_every: float = 3600.0
    # Fan-out across processes and nodes: "local" (this process only) or the NATS servers'
    # URLs, comma-separated (nats://host:4222); subjects start with bus_prefix, so that two
    # deployments may share a NATS cluster (docs/operations.md, "Many processes").
    bus: str = "local"
    # The public addresses of this deployment's nodes (comma-separated URLs, as clients
    # take them: https://a.example.org:8700,...): told to every client at hello, so that it
    # fails over to another when its node dies (docs/operations.md, "Many nodes").
    endpoints: str = ""
    bus_prefix: str = "pigeon"
    # Regions (docs/operations.md, "Regions"): this node's region's name, and the region table
    # that every node of every region is given identically (JSON; pigeon/domain/regions.py).
    # Neither: one region, as before. Both need PostgreSQL and NATS with JetStream.
    region: str = ""
    regions: Path | None = None
    # seconds a copy of another region's sticker set is served before a view or an install
    # asks its region again (server/region_stickers.py; 0: every time)
    region_sticker_refresh: float = 60.0
    # bytes of images of other regions' sticker sets this region keeps copies of, in all
    # (a set is at most 120 of 512 KiB): a new copy past it is QUOTA_EXCEEDED
    region_sticker_bytes: int = 2 << 30
    # -- media (issue 10; docs/operations.md, "Media") --
    media_max_file_bytes: int = 2 << 30     # one file (2 GiB)
    media_quota_bytes: int = 20 << 30       # what one account may store, uploads in flight too
    media_max_uploads: int = 4              # uploads one account may have open at once
    media_upload_ttl: float = 86400.0       # seconds before an upload never completed is removed
    media_file_grace: float = 86400.0       # an uploaded file no message refers to is kept this
                                            # long (time to send it), then collected
    media_collect_every: float = 600.0      # how often abandoned uploads and files are collected
    media_max_pixels: int = 50_000_000      # photos: larger ones are refused (decompression bombs)
    default_who_can_add: str = "contacts"   # for accounts that never chose: everyone,
                                            # contacts (who wrote to them) or nobody
    default_who_can_message: str = "contacts"  # for accounts that never chose: everyone,
                                            # contacts (strangers' first messages are requests)
                                            # or nobody (strangers are refused)
    max_groups_joined: int = 500            # groups one account may be in
    max_groups_created_per_day: int = 50    # groups one account may create in 24 hours
    max_pending_invitations: int = 100      # group invitations waiting for one account
    max_connections: int = 10_000
    outbox_frames: int = 1024               # frames queued for one slow connection before it is cut
    outbox_bytes: int = 4 << 20             # bytes queued for one connection past which it is not
                                            # read and its bulk calls wait; 4x: it is cut
    outbox_bytes_account: int = 16 << 20    # ... for all connections of one account together
    slow_consumer_seconds: float = 30.0     # a connection whose peer reads nothing this long while
                                            # frames wait for it is cut (SLOW_CONSUMER)
    bulk_calls_per_account: int = 2         # bulk calls (history, differences, lists) one account
                                            # runs at once; more wait their turn
    max_connections_per_account: int = 32   # logged-in connections of one account; more are
                                            # refused (TOO_MANY_CONNECTIONS)
    max_connections_per_session: int = 16   # ... of one session; a newer one closes the oldest
                                            # (a CLI profile: a follower plus commands at once)
    # A planned stop (SIGTERM) tells every device to come back after restart_downtime plus a
    # delay it picks at random in a window long enough for the server to take them back at
    # restart_reconnect_rate a second, at most restart_window_max (docs/shield.md, issue 13).
    # restart_downtime unset ("auto"): what this server's last stop and start took, measured
    # and kept in the data directory (server/restart_times.py); a number fixes it.
    restart_downtime: float | None = None
    # 500 a second: measured, a restarted server on this 2-core machine took 10,000 devices
    # back at 500 to 600 a second while serving its chatting users (resumption tickets keep a
    # hello off the database); at 250 the pacer's slots, not the server, set the pace and the
    # last device was synced 33 s after the server listened (docs/shield.md, issue 13).
    restart_reconnect_rate: float = 500.0
    # With the measured downtime (about 1 s) every device is back within 30 s of the notice
    # (issue 13's goal) whatever their number; 10,000 spread over 20 s at the rate above.
    restart_window_max: float = 25.0
    # The stop itself is bounded, so that the port is closed no longer than the notice says
    # whatever the peers do: calls in flight get stop_drain_seconds to be answered (one not
    # answered is retried by the SDK with its random_id), then every device gets the notice
    # and its close frame, and stop_close_seconds later the sockets that have not taken them
    # (their peer reads nothing) are dropped (server/stopping.py).
    stop_drain_seconds: float = 2.0
    stop_close_seconds: float = 1.0
    # A logged-in welcome hands the device a resumption ticket; its next hello is checked
    # from memory instead of the database while the ticket is fresh (docs/shield.md).
    resume_ticket_ttl: float = 7 * 86400.0  # seconds a ticket stays valid (at most 30 days)
    resume_max_sessions: int = 1_000_000    # live sessions kept in memory to check them by
    # Bulk work (history, differences, lists) one connection may start, in cost units (one
    # per call or page): past it a call is answered DEFERRED with the wait, so a device
    # catching up after a storm cannot crowd out the sends of the people chatting.
    bulk_rate_connection: str = "20/1s burst 40"
    # -- the shield (docs/shield.md) --
    shield: bool = True                     # False only to measure what it prevents
    max_per_address: int = 64               # unauthenticated connections from one address
    max_per_prefix: int = 256               # ... from one /24 (IPv4) or /64 (IPv6)
    max_unauthenticated: int = 2000         # unauthenticated connections in all
    hello_deadline: float = 5.0             # seconds to finish the first frame (slowloris)
    frame_rate: str = "200/1s burst 400"    # frames read from one logged-in connection
    frame_rate_unauthenticated: str = "10/1s burst 20"  # ... from one not logged in
    lag_target: float = 0.05                # event-loop lag above which new sockets are rationed
    accept_rate_unknown: str = "300/1s burst 600"     # new sockets from unknown addresses
    accept_rate_overloaded: str = "100/1s burst 100"  # ... while the event loop lags
    max_known_addresses: int = 1_000_000    # addresses of logged-in sessions, remembered
    max_known_handshakes: int = 1024        # handshakes from those addresses under way at once;
                                            # past it a socket is told its slot to come back
                                            # (503 Retry-After; 0: no limit; issue 13)
    accept_rate_waiting: str = "50/1s burst 100"  # ... of those, sockets of devices with a call
                                            # waiting (?waiting=1) let in past that limit
    max_probation: int = 1024               # rationed sockets held while their request line
                                            # is read for a proof-of-work ticket
    probation_wait: float = 2.0             # seconds a rationed socket has to send that line
    max_refusals: int = 16                  # refused calls before a connection is closed
    rate_session: str = "50/1s burst 100"   # calls of one logged-in device
    rate_account: str = "100/1s burst 200"  # calls of one account, all devices together
    rate_send: str = "5/1s burst 30"        # messages sent by one account
    rate_fanout: str = "2000/1s burst 5000"  # updates one account's writes make for others:
                                            # a message to an N-member group costs N
    rate_address: str = "20/1s burst 40"    # unauthenticated calls from one address
    rate_prefix: str = "200/1s burst 400"   # unauthenticated calls from one prefix
    http_rate: str = "5/1s burst 20"        # public HTTP requests (not /v1/ws) from one address
    # ... but sticker images (/stickers/files/*) count here instead: a set's page loads up
    # to 120 of them at once, and a browser caches each for good (they never change)
    sticker_file_rate: str = "100/1s burst 300"
    code_rate_country: str = "20/1m burst 20"     # SMS codes to one country code: the floor
                                                  # of its adaptive budget
    code_rate_global: str = "100/1m burst 100"    # SMS codes in all: the floor likewise
    code_budget_factor: float = 3.0         # a budget allows this many times its baseline
    code_budget_halflife: float = 86400.0   # seconds: how slowly a baseline learns
    code_budget_open: float = 0.25          # share of a budget open to calls without proof
    budget_interactive: int = 1024          # concurrent calls per work class; interactive
                                            # calls mostly wait on a group commit, and
                                            # fewer slots would cap its batch size
    budget_bulk: int = 32
    budget_proven: int = 16                 # unauthenticated calls with solved proof of work
    budget_unauthenticated: int = 16
    queue_target: float = 0.05              # CoDel target queue delay, seconds
    queue_interval: float = 0.5             # CoDel interval, seconds
    pow_min_bits: int = 0                   # floor for the proof-of-work difficulty
    pow_max_bits: int = 22
    pow_priority_bits: int = 16             # the least work that buys priority (tickets at
                                            # accept, the proven class, reserved codes)
    pow_calls_per_proof: int = 3            # expensive calls one solution covers on its
                                            # connection (a code, a sign-in, a retry)
    ban_strikes: int = 20                   # limit trips within ban_window that earn a ban
    ban_window: float = 60.0
    ban_seconds: float = 600.0
    ban_shared_window: float = 3600.0       # sessions seen from an address this recently each
                                            # add ban_strikes to the strikes that ban it
    ban_door_rate: str = "1/1s burst 5"     # sockets a banned address with logged-in sessions
                                            # may still open (token-only), per such session
    ban_account_sessions: int = 3           # session bans within ban_seconds that ban the account
    nft_set: str | None = None              # mirror bans into this nftables set
    server_name: str = "pigeon"
    log_level: str = "info"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def endpoint_list(self) -> list[str]:
        return [e.strip() for e in self.endpoints.split(",") if e.strip()]

    @property
    def region_prefix(self) -> str:
        """The subjects of this region's own bus and shield state: the gateway joins the
        regions' NATS clusters, and a region's fan-out must stay in it."""
        return f"{self.bus_prefix}-{self.region}" if self.region else self.bus_prefix

    @property
    def shared_store(self) -> str | None:
        """The store's URL when several processes can share it; None for embedded SQLite."""
        return self.store or None

    @property
    def store_writers_here(self) -> int:
        """Writers in each process: ``store_writers`` if set; otherwise STORE_WRITERS shared
        among the workers, at least one each, leaving a reader. Every writer commits its own
        batches: with 4 in each of 2 workers a batch held half as many messages as with 4 in
        one process, and PostgreSQL spent 40% more CPU a message (docs/architecture.md,
        "Where the time goes")."""
        if self.store_writers:
            return self.store_writers
        return max(1, min(STORE_WRITERS // max(1, self.worker_count), self.store_pool - 1))

    @property
    def worker_count(self) -> int:
        """How many worker processes ``pigeon serve`` runs: ``workers`` if set; otherwise one
        per core when the store and the bus are shared (PostgreSQL and NATS), else 0 (one
        process, no supervisor)."""
        if self.workers:
            return self.workers
        if self.shared_store is not None and self.bus != "local":
            return min(os.cpu_count() or 1, MAX_WORKERS)
        return 0

    @property
    def db_path(self) -> Path:
        return self.data / "pigeon.db"

    def validate(self) -> Settings:
        split_listen(self.listen)
        self._validate_store()
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("--tls-cert and --tls-key go together")
        if self.tls_cert is None and not self.insecure_no_tls and not is_loopback(self.host):
            raise SettingsError(
                f"refusing to listen on {self.host} without TLS: pass --tls-cert and --tls-key, "
                "or --insecure-no-tls if a TLS proxy sits in front"
            )
        self._validate_edge()
        for name in ("outbox_frames", "outbox_bytes", "outbox_bytes_account",
                     "bulk_calls_per_account", "max_connections_per_account",
                     "max_connections_per_session"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        if self.slow_consumer_seconds <= 0:
            raise SettingsError("slow_consumer_seconds must be positive")
        if not ((self.restart_downtime is None
                 or 0 <= self.restart_downtime <= limits.MAX_RETRY_SECONDS)
                and 0 <= self.restart_window_max <= limits.MAX_RETRY_SECONDS
                and self.restart_reconnect_rate > 0):
            raise SettingsError(f"need 0 <= restart_downtime, restart_window_max <= "
                                f"{limits.MAX_RETRY_SECONDS:.0f} and restart_reconnect_rate > 0")
        if not (0 <= self.stop_drain_seconds <= 60 and 0 <= self.stop_close_seconds <= 60):
            raise SettingsError("need 0 <= stop_drain_seconds, stop_close_seconds <= 60")
        if self.bus != "local" and not all(
                url.strip().startswith(("nats://", "tls://")) for url in self.bus.split(",")):
            raise SettingsError(f"bus must be local or nats://HOST:PORT, not {self.bus!r}")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", self.bus_prefix):
            raise SettingsError("bus_prefix must be 1-32 letters, digits, _ or -")
        endpoints = self.endpoint_list
        if len(endpoints) > 16 or not all(
                re.fullmatch(r"(https?|wss?)://[^\s,]{1,240}", e) for e in endpoints):
            raise SettingsError("endpoints: at most 16 URLs, each http(s):// or ws(s)://HOST:PORT")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise SettingsError(f"workers must be 0 (one process) to {MAX_WORKERS}")
        if self.workers > 1 and self.bus == "local":
            raise SettingsError(
                f"--workers {self.workers} needs a bus that processes share (--bus nats://"
                "HOST:PORT): with the local bus a message written by one worker would never "
                "reach devices connected to another")
        if self.workers > 1 and self.shared_store is None:
            raise SettingsError(
                f"--workers {self.workers} needs a store that processes share (PostgreSQL): "
                "the embedded SQLite database has one writer")
        if not 0 < self.resume_ticket_ttl <= 30 * 86400.0 or self.resume_max_sessions < 0:
            raise SettingsError("need 0 < resume_ticket_ttl <= 2592000 (30 days) and "
                                "resume_max_sessions >= 0")
        if self.code_sender not in ("console", "webhook"):
            raise SettingsError(f"code_sender must be console or webhook, not {self.code_sender!r}")
        if self.code_sender == "webhook" and not self.code_webhook_url:
            raise SettingsError("code_sender = webhook needs code_webhook_url")
        if self.code_budget_factor < 1 or self.code_budget_halflife <= 0 \
                or not 0 < self.code_budget_open <= 1:
            raise SettingsError("need code_budget_factor >= 1, code_budget_halflife > 0 and "
                                "0 < code_budget_open <= 1")
        if not 0 <= self.pow_priority_bits <= 64 or self.pow_calls_per_proof < 1 \
                or self.max_known_handshakes < 0 \
                or self.max_probation < 0 or self.probation_wait <= 0:
            raise SettingsError("need 0 <= pow_priority_bits <= 64, pow_calls_per_proof >= 1, "
                                "max_known_handshakes >= 0, max_probation >= 0 and "
                                "probation_wait > 0")
        for name in ("code_rate_phone", "code_rate_address", "code_rate_country",
                     "code_rate_global", "code_rate_app", "code_rate_app_phone",
                     "frame_rate", "frame_rate_unauthenticated",
                     "accept_rate_overloaded", "accept_rate_unknown", "rate_session",
                     "rate_account",
                     "rate_send", "rate_address", "rate_prefix", "http_rate", "sticker_file_rate",
                     "ban_door_rate", "rate_fanout", "bulk_rate_connection"):
            try:
                Rate.parse(getattr(self, name))
            except ValueError as exc:
                raise SettingsError(f"{name}: {exc}") from None
        if self.default_who_can_add not in WHO_CAN_ADD:
            raise SettingsError(f"default_who_can_add must be one of {', '.join(WHO_CAN_ADD)}, "
                                f"not {self.default_who_can_add!r}")
        if self.default_who_can_message not in WHO_CAN_MESSAGE:
            raise SettingsError("default_who_can_message must be one of "
                                f"{', '.join(WHO_CAN_MESSAGE)}, not "
                                f"{self.default_who_can_message!r}")
        if not 1 <= self.max_group_members <= limits.MAX_GROUP_MEMBERS:
            raise SettingsError(f"max_group_members must be 1 to {limits.MAX_GROUP_MEMBERS}")
        if not 1 <= self.max_supergroup_members <= limits.MAX_GROUP_MEMBERS:
            raise SettingsError(
                f"max_supergroup_members must be 1 to {limits.MAX_GROUP_MEMBERS}")
        for name in ("media_max_file_bytes", "media_quota_bytes", "media_max_uploads",
                     "media_max_pixels"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        if min(self.media_upload_ttl, self.media_file_grace, self.media_collect_every) <= 0:
            raise SettingsError("media_upload_ttl, media_file_grace and media_collect_every "
                                "must be positive")
        if self.device_inbox_retention <= 0 or self.device_inbox_purge_every <= 0:
            raise SettingsError("device_inbox_retention and device_inbox_purge_every must be "
                                "positive (seconds)")
        self._validate_regions()
        return self

    def region_table(self) -> RegionTable | None:
        """The region table (read from ``regions``), or None for a single region."""
        if self.regions is None:
            return None
        try:
            text = self.regions.read_text()
        except OSError as exc:
            raise SettingsError(f"cannot read the region table {self.regions}: {exc}") from None
        try:
            return parse_table(json.loads(text))
        except (ValueError, RecursionError) as exc:  # bad JSON, or a RegionTableError
            raise SettingsError(f"{self.regions}: not a region table: {exc}") from None

    def _validate_regions(self) -> None:
        if (self.region == "") != (self.regions is None):
            raise SettingsError("--region and --regions go together")
        table = self.region_table()
        if table is None:
            return
        if not 0 <= self.region_sticker_refresh <= 86400 * 365:
            raise SettingsError("region_sticker_refresh must be 0 to a year, in seconds")
        if not 0 <= self.region_sticker_bytes <= 1 << 50:
            raise SettingsError("region_sticker_bytes must be 0 to 1 PiB")
        if self.region not in table.names():
            raise SettingsError(f"--region {self.region!r} is not in {self.regions} "
                                f"({', '.join(table.names())})")
        if self.shared_store is None or self.bus == "local":
            raise SettingsError("regions need --store postgresql://... (each region's ids "
                                "come from its own sequence) and --bus nats://... (JetStream)")

    @property
    def operator_enabled(self) -> bool:
        return self.operator_listen.strip().lower() not in ("", "off", "none")

    def restart_window(self, connections: int) -> float:
        """The window a going-away notice spreads ``connections`` devices' returns over."""
        return round(min(self.restart_window_max, connections / self.restart_reconnect_rate), 3)

    def _validate_store(self) -> None:
        if not self.store:
            return
        try:
            parts = urlsplit(self.store)
        except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
            raise SettingsError(f"store: {exc}") from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise SettingsError("store must be postgresql://USER@HOST:PORT/DB (or unset, for "
                                f"SQLite in the data directory), not a {parts.scheme or 'bare'}"
                                " address")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise SettingsError(f"store: {exc}") from None
        if not parts.hostname or parts.path.strip("/") == "":
            raise SettingsError("store: postgresql://USER@HOST:PORT/DB needs a host and a "
                                "database name")
        if parts.password is not None:
            raise SettingsError("store: put the password in PGPASSWORD or ~/.pgpass, not in the "
                                "URL (it would show in the process list and in logs)")
        if not 3 <= self.store_pool <= 100 or not 0 <= self.store_writers < self.store_pool:
            raise SettingsError("need 3 <= store_pool <= 100 and 0 <= store_writers < store_pool "
                                "(0: 4 shared among the workers)")

    def _validate_edge(self) -> None:
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(f"trusted_proxies: {exc}") from None
        if self.proxy_protocol and not self.trusted_proxies.strip():
            raise SettingsError("proxy_protocol needs trusted_proxies: the networks of the "
                                "proxies that send the PROXY header")
        if not self.operator_enabled:
            return
        host, _ = split_listen(self.operator_listen, "operator_listen")
        if not is_loopback(host):
            if not self.operator_token:
                raise SettingsError(f"refusing to serve /metrics and /shield on {host} without "
                                    "operator_token (or keep operator_listen on loopback)")
            if self.tls_cert is None and not self.insecure_no_tls:
                raise SettingsError(f"refusing to serve operator endpoints on {host} without "
                                    "TLS: pass --tls-cert and --tls-key, or --insecure-no-tls")
        if self.operator_token is not None and len(self.operator_token) < 16:
            raise SettingsError("operator_token must be at least 16 characters")


def split_listen(listen: str, name: str = "listen") -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    # isascii: str.isdigit also takes digits such as "²" that int() refuses.
    if not sep or not port.isascii() or not port.isdigit() or not host:
        raise SettingsError(f"{name} must be HOST:PORT, not {listen!r}")
    # Issue 11, bug 6: port 99999 was passed on and the system picked a random port.
    if int(port) > 65535:
        raise SettingsError(f"{name}: port {int(port)} is out of range (0-65535; 0 picks a "
                            "free one)")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_ENV_PREFIX = "PIGEON_"


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if value is None:
        return None
    if "Path" in str(kind):
        return Path(value)
    if kind in ("bool", bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if kind in ("int", int):
        return int(value)
    if kind in ("float", float):
        return float(value)
    if kind == "float | None":  # unset, or "auto": the server works it out
        if isinstance(value, str) and value.strip().lower() in ("", "auto"):
            return None
        return float(value)
    if isinstance(value, list):  # e.g. trusted_proxies = ["10.0.0.0/8", "fd00::/8"] in TOML
        return ",".join(str(item) for item in value)
    return str(value)


def load_settings(config: Path | None, overrides: dict[str, Any],
                  environ: dict[str, str] | None = None) -> Settings:
    """Defaults < TOML file < environment < flags (``overrides``, None meaning unset)."""
    environ = dict(os.environ) if environ is None else environ
    names = {f.name for f in fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    config = config or (Path(environ["PIGEON_CONFIG"]) if environ.get("PIGEON_CONFIG") else None)
    if config is not None:
        try:
            table = tomllib.loads(config.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config {config}: {exc}") from None
        unknown = set(table) - names
        if unknown:
            raise SettingsError(f"{config}: unknown settings {sorted(unknown)}")
        values.update(table)
    for name in names:
        env = environ.get(_ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        coerced = {k: _coerce(k, v) for k, v in values.items()}
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"bad setting: {exc}") from None
    return replace(Settings(), **coerced).validate()
