"""The public page of a sticker set, ``/stickers/<name>``, in a real browser (issue 10,
stickers 3): Playwright drives Debian's chromium, takes a screenshot, and checks that every
sticker image loaded and that what people typed shows as text, never as markup.

Set-up: ``.ci/run`` installs chromium (apt) and the test extra brings playwright (pip). Under
``CI=true`` a missing browser fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from sticker_images import animation, jpeg, png

from pigeon.testing import login

CHROMIUM = "/usr/bin/chromium"
TITLE = 'Owls <script>alert("x")</script> & </title>'
AUTHOR = "Ada <img src=x onerror=alert(1)>"


def browser_or_skip():  # type: ignore[no-untyped-def]
    """Playwright's sync API, or a skip (a failure under CI) naming what is missing."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install chromium)")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test needs {' and '.join(missing)}; .ci/run installs them")
        pytest.skip(f"needs {' and '.join(missing)}")
    return sync_playwright


async def make_set(server, number: str, profile: Path) -> list[str]:  # type: ignore[no-untyped-def]
    artist = await login(server, number, AUTHOR, profile=profile)
    try:
        await artist.stickers.create("night_owls", TITLE, licence="CC BY 4.0 <i>")
        await artist.stickers.add("night_owls", png(300, 200), ["🦉"])
        await artist.stickers.add("night_owls", jpeg(200, 300), ["🌙", "⭐"])
        await artist.stickers.add("night_owls", animation("GIF", frames=3), ["👋"])
        whole = await artist.stickers.publish("night_owls")
        await artist.stickers.create("draft_owls", "Not yet")
        return [s.file_id for s in whole.stickers]
    finally:
        await artist.close()


def test_the_public_page_renders_every_sticker_and_escapes_what_people_typed(
        server, phone, tmp_path):
    sync_playwright = browser_or_skip()
    files = asyncio.run(make_set(server, phone(), tmp_path / "artist"))
    shot = tmp_path / "sticker-page.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            response = page.goto(f"{server.url}/stickers/night_owls", wait_until="load")
            assert response is not None and response.status == 200
            assert "default-src 'none'" in response.headers["content-security-policy"]
            page.wait_for_function(
                "Array.from(document.images).every(i => i.complete)", timeout=10_000)
            loaded = page.evaluate(
                "Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
            assert [src for src, _ in loaded] == [f"/stickers/files/{f}.webp" for f in files]
            assert all(width > 0 for _, width in loaded), loaded
            # What people typed is text on the page, never markup that runs.
            assert page.title() == f"{TITLE} – Pigeon stickers"
            assert page.inner_text("#title") == TITLE
            assert page.inner_text("#author") == AUTHOR
            assert page.locator("script").count() == 0 and dialogs == []
            assert page.inner_text("#command") == "pigeon stickers install night_owls"
            assert page.get_attribute("#link", "href") == "pigeon://stickers/night_owls"
            page.screenshot(path=str(shot), full_page=True)
            # An unpublished set, or no set, has no page.
            for name in ("draft_owls", "no_such_set", "..%2F..%2Fetc"):
                missing = page.goto(f"{server.url}/stickers/{name}")
                assert missing is not None and missing.status == 404
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000  # a real picture of the page, not an empty one
    keep = os.environ.get("PIGEON_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
