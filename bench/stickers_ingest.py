"""Stickers ingested per second: source images sent to a real server over HTTP, normalised
to 512 px WebP, stored by content and added to a set (issue 10).

    python bench/stickers_ingest.py [--stickers 60] [--uploaders 4] [--kind png|jpeg|gif|photo]

Starts a real server (SQLite in a temporary directory), has one artist make sets (a set holds
120 stickers at most) and --uploaders concurrent uploads add --stickers distinct images (each
different, so none is stored once for all). Prints stickers per second end to end, the
latency of one add (p50/p99), and, for comparison, the same normalisation in this process
alone (no HTTP, no store), one thread. Not a test: figures vary with the machine and its
neighbours; the server runs two image jobs at once (StickerWorkshop's default).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from PIL import Image  # noqa: E402
from sticker_images import animation, jpeg, png, save  # noqa: E402

from pigeon.media.stickers import normalise  # noqa: E402
from pigeon.testing import ServerProcess, login  # noqa: E402


def source(kind: str, n: int) -> bytes:
    colour = (n * 37 % 256, n * 91 % 256, 120)
    if kind == "jpeg":
        return jpeg(800 + n % 7, 600)
    if kind == "photo":  # a camera-sized, hard-to-compress picture
        noise = Image.effect_noise((1600, 1200), 40 + n % 20).convert("RGB")
        return save(noise, "JPEG", quality=85)
    if kind == "gif":
        return animation("GIF", frames=4, side=200 + n % 5)
    return png(800 + n % 7, 600, colour=colour)


async def run(count: int, uploaders: int, kind: str) -> None:
    images = [source(kind, i) for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "data") as server:
        artist = await login(server, "+4915100000001", "Bench", profile=Path(tmp) / "artist")
        try:
            sets = [f"bench{i}" for i in range((count + 119) // 120)]
            for name in sets:
                await artist.stickers.create(name, "Bench")
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(count):
                queue.put_nowait(i)
            latencies: list[float] = []

            async def upload() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    start = time.perf_counter()
                    await artist.stickers.add(sets[i // 120], images[i], ["🦉"])
                    latencies.append(time.perf_counter() - start)

            start = time.perf_counter()
            await asyncio.gather(*(upload() for _ in range(uploaders)))
            elapsed = time.perf_counter() - start
        finally:
            await artist.close()
    local_start = time.perf_counter()
    for data in images[: min(count, 20)]:
        normalise(data)
    local = min(count, 20) / (time.perf_counter() - local_start)
    latencies.sort()
    mean_size = sum(len(i) for i in images) / len(images) / 1024
    print(f"{count} {kind} stickers (sources {mean_size:.0f} KiB on average), "
          f"{uploaders} uploaders")
    print(f"  ingested: {count / elapsed:.1f} stickers/s end to end "
          f"({elapsed:.2f} s in all)")
    print(f"  one add: p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms")
    print(f"  normalisation alone, one thread in this process: {local:.1f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stickers", type=int, default=60)
    parser.add_argument("--uploaders", type=int, default=4)
    parser.add_argument("--kind", choices=("png", "jpeg", "gif", "photo"), default="png")
    args = parser.parse_args()
    asyncio.run(run(args.stickers, args.uploaders, args.kind))


if __name__ == "__main__":
    main()
