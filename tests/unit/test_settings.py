from pathlib import Path

import pytest

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


@pytest.mark.parametrize(("connections", "window"), [(0, 0.0), (1, 0.004), (5_000, 20.0),
                                                     (10_000, 25.0), (100_000, 25.0)])
def test_the_restart_window_fits_the_reconnect_rate_up_to_its_cap(connections, window):
    """A planned restart spreads its devices' returns over connections / rate seconds."""
    assert load_settings(None, {}, environ={}).restart_window(connections) == window
