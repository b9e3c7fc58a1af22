"""``pigeon serve``: run a server."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from pigeon.server.settings import SettingsError, load_settings


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Directory for the database and the server key [env PIGEON_DATA; "
                   "default ./pigeon-data].")
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Address to listen on; port 0 picks a free one [env PIGEON_LISTEN; "
                   "default 127.0.0.1:8700].")
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
@click.option("--no-shield", "shield", flag_value=False, default=None,
              help="Switch the shield off (only to measure what it prevents, e.g. with "
                   "`pigeon siege --compare`) [env PIGEON_SHIELD=0].")
@click.option("--nft-set", default=None, metavar="NAME",
              help="Mirror bans into this nftables set so the kernel drops banned addresses "
                   "(needs nft and CAP_NET_ADMIN) [env PIGEON_NFT_SET].")
@click.option("--config", type=click.Path(path_type=Path, exists=True), default=None,
              help="TOML file with any of these settings, plus: code_ttl, code_attempts, "
                   "code_rate_phone, code_rate_address ('5/1h burst 3'), max_group_members, "
                   "max_connections, max_connections_per_account, max_connections_per_session, "
                   "outbox_frames, outbox_bytes, outbox_bytes_account, slow_consumer_seconds, "
                   "bulk_calls_per_account, server_name, and the shield's limits "
                   "(docs/shield.md) [env PIGEON_CONFIG]. "
                   "Flags beat environment beat file.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="[env PIGEON_LOG_LEVEL; default info]")
def serve(config: Path | None, **flags: object) -> None:
    """Run a Pigeon server (HTTP and WebSocket on one port: /v1/ws, /healthz, /metrics).

    SIGTERM or SIGINT stops it cleanly: no new connections, calls in flight answered,
    every queued write committed."""
    try:
        settings = load_settings(config, flags)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pigeon.server.app import serve as run

    from pigeon.runtime import run as run_loop

    run_loop(run(settings))
