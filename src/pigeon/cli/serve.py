"""``pigeon serve``: run a server."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pigeon.server.settings import SettingsError, load_settings


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Directory for the database and the server key [env PIGEON_DATA; "
                   "default ./pigeon-data].")
@click.option("--store", default=None, metavar="postgresql://USER@HOST:PORT/DB",
              help="Keep state in PostgreSQL instead of SQLite in the data directory (for more "
                   "than one process); the password, if any, from PGPASSWORD or ~/.pgpass "
                   "[env PIGEON_STORE; default SQLite].")
@click.option("--allow-shared-data-dir", is_flag=True, default=None,
              help="Start even if group or others can open the data directory (normally a "
                   "refusal: it holds every message) [env PIGEON_ALLOW_SHARED_DATA_DIR].")
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Address to listen on; port 0 picks a free one [env PIGEON_LISTEN; "
                   "default 127.0.0.1:8700].")
@click.option("--operator-listen", default=None, metavar="HOST:PORT",
              help="Where /metrics, /shield and a detailed /healthz are served, apart from the "
                   "public port; 'off' for nowhere. Off loopback it needs operator_token "
                   "(environment or config file, never a flag) [env PIGEON_OPERATOR_LISTEN; "
                   "default 127.0.0.1:8701].")
@click.option("--trusted-proxies", default=None, metavar="CIDRS",
              help="Comma-separated networks of reverse proxies whose PROXY header or "
                   "X-Forwarded-For names the real client [env PIGEON_TRUSTED_PROXIES; "
                   "default none].")
@click.option("--proxy-protocol", is_flag=True, default=None,
              help="Trusted proxies open every connection with a PROXY v1/v2 header "
                   "[env PIGEON_PROXY_PROTOCOL].")
@click.option("--tls-cert", type=click.Path(path_type=Path, exists=True), default=None,
              help="PEM certificate chain for TLS [env PIGEON_TLS_CERT].")
@click.option("--tls-key", type=click.Path(path_type=Path, exists=True), default=None,
              help="PEM private key for TLS [env PIGEON_TLS_KEY].")
@click.option("--insecure-no-tls", is_flag=True, default=None,
              help="Allow a non-loopback address without TLS (only behind a TLS proxy) "
                   "[env PIGEON_INSECURE_NO_TLS].")
@click.option("--code-sender", type=click.Choice(["console", "webhook"]), default=None,
              help="How login codes reach people: console prints 'login code for +N: CODE' "
                   "to stderr; webhook POSTs JSON {phone, code, expires_in} "
                   "[env PIGEON_CODE_SENDER; default console].")
@click.option("--code-webhook-url", default=None,
              help="URL the webhook code sender POSTs to [env PIGEON_CODE_WEBHOOK_URL].")
@click.option("--workers", type=click.IntRange(0, 64), default=None, metavar="N",
              help="Run N server processes on the one port, under a supervisor that restarts "
                   "any that dies; more than one needs PostgreSQL and --bus nats://... "
                   "[env PIGEON_WORKERS; default: one per core with PostgreSQL and NATS, else "
                   "one process and no supervisor].")
@click.option("--bus", default=None, metavar="URL",
              help="Fan-out between processes and nodes: 'local' (this process only) or "
                   "nats://HOST:PORT, comma-separated for a cluster [env PIGEON_BUS; "
                   "default local].")
@click.option("--region", default=None, metavar="NAME",
              help="This node's region (with --regions) [env PIGEON_REGION].")
@click.option("--regions", type=click.Path(path_type=Path, exists=True), default=None,
              metavar="FILE",
              help="The region table, JSON, the same file on every node of every region: "
                   "each region's name, index, endpoints and the phone calling codes homed "
                   "there (docs/operations.md, 'Regions') [env PIGEON_REGIONS].")
@click.option("--no-shield", "shield", flag_value=False, default=None,
              help="Switch the shield off (only to measure what it prevents, e.g. with "
                   "`pigeon siege --compare`) [env PIGEON_SHIELD=0].")
@click.option("--nft-set", default=None, metavar="NAME",
              help="Mirror bans into this nftables set so the kernel drops banned addresses "
                   "(needs nft and CAP_NET_ADMIN) [env PIGEON_NFT_SET].")
@click.option("--config", type=click.Path(path_type=Path, exists=True), default=None,
              help="TOML file with any of these settings, plus: code_ttl, code_attempts, "
                   "code_rate_phone, code_rate_address ('5/1h burst 3'), max_group_members, "
                   "default_who_can_add, default_who_can_message, max_groups_joined, "
                   "max_groups_created_per_day, "
                   "max_pending_invitations, "
                   "max_connections, max_connections_per_account, max_connections_per_session, "
                   "outbox_frames, outbox_bytes, outbox_bytes_account, slow_consumer_seconds, "
                   "bulk_calls_per_account, server_name, restart_downtime, restart_reconnect_rate, "
                   "restart_window_max (the going-away notice on SIGTERM), and the shield's limits "
                   "(docs/shield.md) [env PIGEON_CONFIG]. "
                   "Flags beat environment beat file.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="[env PIGEON_LOG_LEVEL; default info]")
def serve(config: Path | None, **flags: object) -> None:
    """Run a Pigeon server (HTTP and WebSocket on one port: /v1/ws and /healthz; /metrics and
    /shield on the operator listener).

    SIGTERM or SIGINT stops it cleanly: no new connections, calls in flight answered,
    every queued write committed."""
    try:
        settings = load_settings(config, flags)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    from pigeon.server.logs import configure as configure_logs

    configure_logs(settings.log_level, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pigeon.server.app import CannotListen
    from pigeon.server.app import serve as run
    from pigeon.protocol.errors import Unavailable
    from pigeon.server.datadir import DataDirInUse

    from pigeon.runtime import run as run_loop

    # Each refusal at start is one line (issue 11, bug 6): a setting that cannot work is a
    # usage error (2); a directory or a port that another process holds, a failure (1).
    try:
        if settings.worker_count:
            from dataclasses import replace

            from pigeon.server.workers import supervise

            sys.exit(supervise(replace(settings, workers=settings.worker_count)))
        run_loop(run(settings, exit_process=True))
    except (DataDirInUse, CannotListen) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Unavailable as exc:  # the store cannot be opened (PostgreSQL unreachable)
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except SettingsError as exc:  # found at start, e.g. a data directory others can read
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
