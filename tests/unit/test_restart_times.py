"""What a going-away notice announces when restart_downtime is not set: the last stop's and
start's measured seconds (server/restart_times.py), and a sane guess without them."""

import json

from hypothesis import given, strategies as st

from pigeon.protocol import limits
from pigeon.server import restart_times
from pigeon.server.restart_times import FACTOR, FLOOR, MARGIN, RestartTimes


def test_measured_times_are_announced_with_a_margin():
    assert RestartTimes(stop=0.5, start=1.0).downtime(1.0) == round(1.5 * FACTOR + MARGIN, 2)


def test_unknown_parts_are_guessed_and_the_announcement_is_bounded():
    guessed = RestartTimes().downtime(1.0)
    assert guessed == round((1.0 + restart_times.STORE_CLOSE_GUESS + restart_times.START_GUESS)
                            * FACTOR + MARGIN, 2)
    assert RestartTimes(stop=0.0, start=0.0).downtime(0.0) == FLOOR
    assert RestartTimes(stop=59.0, start=59.0).downtime(0.0) <= limits.MAX_RETRY_SECONDS


def test_each_part_is_recorded_and_the_other_kept(tmp_path):
    assert restart_times.read(tmp_path) == RestartTimes()
    restart_times.record(tmp_path, start=0.8)
    restart_times.record(tmp_path, stop=0.3)
    assert restart_times.read(tmp_path) == RestartTimes(stop=0.3, start=0.8)
    restart_times.record(tmp_path, start=0.9)
    assert restart_times.read(tmp_path) == RestartTimes(stop=0.3, start=0.9)
    assert [p.name for p in tmp_path.iterdir()] == [restart_times.FILE]  # no temporary left


def test_implausible_values_are_not_believed(tmp_path):
    (tmp_path / restart_times.FILE).write_text(json.dumps(
        {"stop_seconds": -1, "start_seconds": 3600}))
    assert restart_times.read(tmp_path) == RestartTimes()
    (tmp_path / restart_times.FILE).write_text(json.dumps(
        {"stop_seconds": True, "start_seconds": "1"}))
    assert restart_times.read(tmp_path) == RestartTimes()


@given(st.binary(max_size=300))
def test_any_file_content_reads_as_times_or_unknowns(content):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / restart_times.FILE).write_bytes(content)
        times = restart_times.read(Path(tmp))
    for part in (times.stop, times.start):
        assert part is None or 0.0 <= part <= restart_times.BELIEVED
    assert FLOOR <= times.downtime(1.0) <= limits.MAX_RETRY_SECONDS


def test_this_process_knows_its_age():
    age = restart_times.process_age()
    assert age is None or age >= 0.0
