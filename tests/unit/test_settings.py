from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.server.settings import SettingsError, load_settings
from pigeon.shield.ratelimit import KeyedLimiter, Rate


def test_flags_beat_environment_beat_file(tmp_path):
    config = tmp_path / "pigeon.toml"
    config.write_text('listen = "127.0.0.1:1111"\nserver_name = "from-file"\ncode_ttl = 60\n')
    env = {"PIGEON_LISTEN": "127.0.0.1:2222", "PIGEON_DATA": "/srv/pigeon"}
    s = load_settings(config, {"listen": "127.0.0.1:3333", "data": None}, environ=env)
    assert (s.listen, s.server_name, s.code_ttl, s.data) == (
        "127.0.0.1:3333", "from-file", 60.0, Path("/srv/pigeon"))


def test_refuses_public_address_without_tls():
    with pytest.raises(SettingsError, match="without TLS"):
        load_settings(None, {"listen": "0.0.0.0:8700"}, environ={})
    s = load_settings(None, {"listen": "0.0.0.0:8700", "insecure_no_tls": True}, environ={})
    assert s.host == "0.0.0.0"
    assert load_settings(None, {"listen": "[::1]:8700"}, environ={}).host == "::1"


@pytest.mark.parametrize("bad", [
    {"listen": "nonsense"}, {"code_sender": "carrier-pigeon"}, {"code_sender": "webhook"},
    {"code_rate_phone": "lots"}, {"tls_cert": "/x.pem"},
    {"code_rate_app": "often"}, {"code_budget_factor": 0.5}, {"code_budget_open": 0},
    {"pow_priority_bits": 65}, {"probation_wait": 0},
    {"max_supergroup_members": 0}, {"max_supergroup_members": 200_001},
    {"device_inbox_retention": 0}, {"device_inbox_purge_every": -1},
    {"restart_downtime": -1}, {"restart_downtime": 3601}, {"restart_window_max": 3601},
    {"restart_reconnect_rate": 0},
    {"stop_drain_seconds": -1}, {"stop_drain_seconds": 61}, {"stop_close_seconds": -0.5},
    {"stop_close_seconds": 61},
])
def test_bad_settings_are_refused_with_a_reason(bad):
    with pytest.raises(SettingsError):
        load_settings(None, bad, environ={})


def test_unknown_key_in_file(tmp_path):
    config = tmp_path / "pigeon.toml"
    config.write_text("lisen = '127.0.0.1:1'\n")
    with pytest.raises(SettingsError, match="unknown settings"):
        load_settings(config, {}, environ={})


def test_token_bucket_with_a_fake_clock():
    now = [0.0]
    limiter = KeyedLimiter(Rate.parse("6/1m burst 3"), max_keys=2, clock=lambda: now[0])
    assert [limiter.take("+1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("+1") == pytest.approx(10.0)  # one token every 10 s
    now[0] = 10.0
    assert limiter.take("+1") == 0.0
    limiter.take("+2")
    limiter.take("+3")  # evicts the least recently used key: memory stays bounded
    assert len(limiter) == 2


@pytest.mark.parametrize("bad,reason", [
    ({"trusted_proxies": "10.0.0.0/8, nonsense"}, "trusted_proxies"),
    ({"proxy_protocol": True}, "proxy_protocol needs trusted_proxies"),
    ({"operator_listen": "0.0.0.0:8701", "insecure_no_tls": True}, "without operator_token"),
    ({"operator_listen": "0.0.0.0:8701", "operator_token": "x" * 20}, "without TLS"),
    ({"operator_listen": "127.0.0.1:8701", "operator_token": "short"}, "16 characters"),
    ({"operator_listen": "nowhere"}, "operator_listen must be HOST:PORT"),
])
def test_edge_and_operator_settings_are_checked(bad, reason):
    with pytest.raises(SettingsError, match=reason):
        load_settings(None, bad, environ={})


def test_trusted_proxies_as_a_toml_list(tmp_path):
    config = tmp_path / "pigeon.toml"
    config.write_text('trusted_proxies = ["10.0.0.1/32", "fd00::/8"]\nproxy_protocol = true\n'
                      'operator_listen = "off"\n')
    s = load_settings(config, {}, environ={})
    assert (s.trusted_proxies, s.proxy_protocol, s.operator_enabled) == (
        "10.0.0.1/32,fd00::/8", True, False)


@pytest.mark.parametrize(("connections", "window"), [(0, 0.0), (1, 0.002), (5_000, 10.0),
                                                     (10_000, 20.0), (20_000, 25.0),
                                                     (100_000, 25.0)])
def test_the_restart_window_fits_the_reconnect_rate_up_to_its_cap(connections, window):
    """A planned restart spreads its devices' returns over connections / rate seconds."""
    assert load_settings(None, {}, environ={}).restart_window(connections) == window


@pytest.mark.parametrize(("store", "reason"), [
    ("mysql://u@h:1/db", "postgresql://"),
    ("/var/lib/pigeon.db", "bare address"),
    ("postgresql://u@h:99999/db", "store: Port"),
    ("postgresql://u@h:5432", "needs a host and a database"),
    ("postgresql:///db", "needs a host and a database"),
    ("postgresql://u:secret@h:5432/db", "PGPASSWORD"),
    ("postgresql://u@[::1/db", "Invalid IPv6"),
    ("postgresql://u@h:x/db", "store: Port"),
])
def test_a_store_that_is_not_a_postgresql_url_is_refused_with_a_reason(store, reason):
    with pytest.raises(SettingsError, match=reason) as info:
        load_settings(None, {"store": store}, environ={})
    assert "secret" not in str(info.value)


def test_the_store_comes_from_the_flag_or_the_environment():
    url = "postgresql://pigeon@127.0.0.1:5432/pigeon"
    assert load_settings(None, {"store": url}, environ={}).store == url
    assert load_settings(None, {}, environ={"PIGEON_STORE": url}).store == url
    assert load_settings(None, {}, environ={}).store == ""  # SQLite in the data directory
    for bad in ({"store_pool": 2}, {"store_writers": -1}, {"store_writers": 8}):
        with pytest.raises(SettingsError, match="store_pool"):
            load_settings(None, {"store": url, **bad}, environ={})


def test_writers_are_four_in_all_shared_among_the_workers_unless_set():
    url = "postgresql://pigeon@127.0.0.1:5432/pigeon"
    here = {workers: load_settings(None, {"store": url, "workers": workers, "bus": "nats://n:4222"},
                                   environ={}).store_writers_here for workers in (1, 2, 3, 4, 8)}
    assert here == {1: 4, 2: 2, 3: 1, 4: 1, 8: 1}
    assert load_settings(None, {"store": url}, environ={}).store_writers_here == 4
    assert load_settings(None, {"store": url, "store_pool": 3},
                         environ={}).store_writers_here == 2  # a reader is left
    assert load_settings(None, {"store": url, "workers": 2, "bus": "nats://n:4222",
                                "store_writers": 3}, environ={}).store_writers_here == 3


@given(st.text(max_size=80) | st.builds("postgresql://{}".format, st.text(max_size=40)))
def test_any_store_value_is_taken_or_refused_with_a_reason(store):
    try:
        settings = load_settings(None, {"store": store}, environ={})
    except SettingsError:
        return
    assert settings.store == store
    assert store == "" or store.startswith(("postgresql://", "postgres://"))


@pytest.mark.parametrize("endpoints, ok", [
    ("https://a.example.org:8700, https://b.example.org:8700", True),
    ("ws://127.0.0.1:1,wss://[::1]:2", True),
    ("", True),
    ("ftp://a.example.org", False),
    ("https://a b", False),
    (",".join(f"https://n{i}.example.org" for i in range(17)), False),
])
def test_endpoints_are_urls_and_bounded(endpoints, ok):
    if ok:
        settings = load_settings(None, {"endpoints": endpoints})
        assert len(settings.endpoint_list) == len([e for e in endpoints.split(",") if e.strip()])
    else:
        with pytest.raises(SettingsError, match="endpoints"):
            load_settings(None, {"endpoints": endpoints})


def test_regions_are_checked_at_start(tmp_path):
    """--region and --regions (issue 12, regions): together, a table that parses, a name in
    it, and PostgreSQL with NATS; their own bus subjects."""
    import json

    table = tmp_path / "regions.json"
    table.write_text(json.dumps({"regions": [
        {"name": "eu", "index": 0, "calling_codes": [49], "default": True},
        {"name": "us", "index": 1, "calling_codes": [1]}]}))
    shared = {"store": "postgresql://pigeon@127.0.0.1:5432/pigeon", "bus": "nats://127.0.0.1:4222"}
    s = load_settings(None, {"region": "us", "regions": str(table), **shared}, environ={})
    assert s.region_table().get("us").first_id == 1 << 40
    assert s.region_prefix == "pigeon-us"
    assert load_settings(None, {}, environ={}).region_table() is None
    assert load_settings(None, {}, environ={}).region_prefix == "pigeon"
    for flags, reason in [
        ({"region": "us"}, "go together"),
        ({"regions": str(table)}, "go together"),
        ({"region": "ap", "regions": str(table), **shared}, "not in"),
        ({"region": "us", "regions": str(table)}, "--store postgresql"),
        ({"region": "us", "regions": str(table), "store": shared["store"]}, "--bus nats"),
        ({"region": "us", "regions": str(tmp_path / "none.json"), **shared}, "cannot read"),
    ]:
        with pytest.raises(SettingsError, match=reason):
            load_settings(None, flags, environ={})
    table.write_text('{"regions": [{"name": "eu", "index": 0}]}')  # no default
    with pytest.raises(SettingsError, match="not a region table: exactly one"):
        load_settings(None, {"region": "eu", "regions": str(table), **shared}, environ={})
    table.write_text("{not json")
    with pytest.raises(SettingsError, match="not a region table"):
        load_settings(None, {"region": "eu", "regions": str(table), **shared}, environ={})
