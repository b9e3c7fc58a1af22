"""The profile: concurrent writers (issue 11, bug 1) and where a name lives (bug 4)."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.client.profile import (
    Profile, is_profile_name, list_profiles, profiles_home, resolve_profile,
)


def test_a_save_keeps_what_another_process_saved_meanwhile(tmp_path):
    Profile(directory=tmp_path, server="http://s", token="t1", pts=3).save()
    follower, sender = Profile.load(tmp_path), Profile.load(tmp_path)
    follower.pts = 9
    follower.save()
    sender.phone = "+12025550101"  # changed here; its pts (3) is stale and was not changed
    sender.save()
    on_disk = Profile.load(tmp_path)
    assert (on_disk.pts, on_disk.phone, on_disk.token) == (9, "+12025550101", "t1")
    follower.save(pts=5)  # an earlier position than in memory: what was handled
    assert Profile.load(tmp_path).pts == 5
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind


def test_a_forgotten_session_says_why(tmp_path):
    Profile(directory=tmp_path, server="http://s", token="t", user_id=1, pts=4).save()
    profile = Profile.load(tmp_path)
    profile.forget_session("this device was logged out from another device")
    profile.save()
    again = Profile.load(tmp_path)
    assert again.token is None and again.pts == 0
    assert again.ended == "this device was logged out from another device"


def test_sends_of_this_device(tmp_path):
    Profile(directory=tmp_path, pts=10).save()
    profile = Profile.load(tmp_path)
    mark = profile.begin_send(chat_id=7)
    assert profile.sent_here(11, 7) is None     # in flight: not known yet
    assert profile.sent_here(11, 8) is False    # another chat: not ours
    profile.end_send(mark, 11)
    assert profile.sent_here(11, 7) is True
    failed = profile.begin_send(chat_id=7)
    profile.end_send(failed, None)
    assert profile.sent_here(12, 7) is False
    reader = Profile.load(tmp_path)
    reader.pts = 11
    reader.save()  # receive passed pts 11: forgotten
    assert Profile.load(tmp_path).own_pts == []


def _add_sends(directory: str, first: int, count: int) -> None:
    profile = Profile.load(Path(directory))
    for pts in range(first, first + count):
        profile.end_send(profile.begin_send(1), pts)
        profile.pts = 0
        profile.save()


def test_processes_writing_at_once_lose_nothing(tmp_path):
    Profile(directory=tmp_path, server="http://s").save()
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_add_sends, [str(tmp_path)] * 4, range(1, 400, 100), [50] * 4))
    own = Profile.load(tmp_path).own_pts
    assert sorted(own) == [p for start in range(1, 400, 100) for p in range(start, start + 50)]
    assert not list(tmp_path.glob("*.tmp"))


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


names = st.text(st.characters(exclude_characters="/\0"), min_size=1, max_size=40).filter(
    lambda s: s not in (".", "..", "default") and not s.startswith("~"))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
def test_a_bare_name_stays_inside_the_profiles_directory(config_home, name):
    path = resolve_profile(name)
    assert is_profile_name(name)
    assert path.parent == config_home / "pigeon" / "profiles" == profiles_home()
    assert path.name == name


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.sampled_from(["./", "/", "../", "~/", "a/"]), rest=names)
def test_anything_with_a_slash_is_a_path(config_home, head, rest):
    assert not is_profile_name(head + rest)
    assert resolve_profile(head + rest) == Path(head + rest).expanduser()


def test_the_default_profile_and_the_listing(config_home, monkeypatch):
    assert resolve_profile(None) == resolve_profile("default") == config_home / "pigeon"
    assert list_profiles() == []
    Profile(directory=resolve_profile("work"), token="t").save()
    Profile(directory=resolve_profile(None), token="t").save()
    assert [name for name, _ in list_profiles()] == ["default", "work"]
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the spec: absolute only
    assert resolve_profile(None) == Path(os.environ["HOME"]) / ".config" / "pigeon"
