"""Whether a store looks for the other region's copy of a private chat (Store.crosses_regions,
docs/architecture.md, "Regions"): only a server given a region table, set before it serves."""

from __future__ import annotations

from pathlib import Path

from pigeon.server.backends import make_store
from pigeon.server.settings import Settings
from pigeon.testing_regions import write_table


def test_only_a_server_with_regions_crosses(tmp_path: Path) -> None:
    table = write_table(tmp_path / "regions.json", [9000, 9001])
    url = "postgresql://pigeon@127.0.0.1:5432/never_opened"
    assert make_store(Settings(data=tmp_path)).crosses_regions is False
    assert make_store(Settings(store=url)).crosses_regions is False
    assert make_store(Settings(store=url, region="a", regions=table)).crosses_regions is True
