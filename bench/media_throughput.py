"""Media over loopback: upload and download throughput, against curl on a plain static route,
and the server's peak memory during a large upload (it must stream, not buffer).

    python bench/media_throughput.py [--mb 200] [--big-mb 2048] [--part-mb 8]

Starts a real server (in a temporary directory), signs a device in, and in the same run:
1. uploads a --mb file of random bytes with the SDK (parts of --part-mb, each hashed, fsynced
   before its acknowledgement, then assembled, hashed and stored), and downloads it with the
   SDK and with curl from /media/<id>;
2. serves the same bytes from a plain aiohttp static route (sendfile, no auth, no checks) and
   fetches them with curl: the ceiling HTTP on this machine sets;
3. uploads a --big-mb file while sampling the server's RSS every 50 ms (psutil).
Prints MB/s (10^6 bytes), the RSS before and at peak, and the load average. Not a test:
figures vary with the machine and its neighbours. Needs `curl` and about 3 x --big-mb of
free disk where --dir (default: the temporary directory) is. If the server dies, its exit
code and the end of its log are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pigeon.testing import ServerProcess, login  # noqa: E402

MB = 1_000_000


def random_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 24))
            f.write(chunk)
            left -= len(chunk)


async def curl(url: str, out: Path, headers: dict[str, str]) -> float:
    """Seconds curl takes; run without blocking the loop (the static route is served by it)."""
    args = ["-sS", "-f", "-o", str(out), url]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec("curl", *args)
    if await proc.wait() != 0:
        raise RuntimeError(f"curl failed on {url}")
    return time.perf_counter() - start


async def static_server(directory: Path) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_static("/static", directory)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


async def sample_rss(pid: int, stop: asyncio.Event, peaks: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        peaks.append(proc.memory_info().rss)
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="pigeon-media-bench-", dir=args.dir))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    part = args.part_mb * (1 << 20)
    env = {"PIGEON_MEDIA_MAX_FILE_BYTES": str(max(args.big_mb, args.mb) * MB * 2),
           "PIGEON_MEDIA_QUOTA_BYTES": str(max(args.big_mb, args.mb) * MB * 4)}
    try:
        with ServerProcess(work / "data", env=env) as server:
            client = await login(server, "+4915112345678", "Bench", profile=work / "profile")
            try:
                source = work / "static" / "file.bin"
                source.parent.mkdir()
                random_file(source, args.mb * MB)
                start = time.perf_counter()
                media = await client.files.upload(source, kind="document", part_size=part)
                up = time.perf_counter() - start
                start = time.perf_counter()
                await client.files.download(media.file_id, work / "sdk.bin")
                down = time.perf_counter() - start
                auth = {"Authorization": f"Bearer {client.profile.token}"}
                media_curl = await curl(f"{server.url}/media/{media.file_id}",
                                        work / "curl.bin", auth)
                runner, port = await static_server(source.parent)
                try:
                    static = await curl(f"http://127.0.0.1:{port}/static/file.bin",
                                        work / "s.bin", {})
                finally:
                    await runner.cleanup()
                assert (work / "curl.bin").stat().st_size == args.mb * MB
                for name in ("sdk.bin", "curl.bin", "s.bin"):
                    (work / name).unlink()
                print(f"{args.mb} MB over loopback, parts of {args.part_mb} MiB:")
                print(f"  upload (SDK, hashed + fsynced parts):   {args.mb / up:8.1f} MB/s")
                print(f"  download (SDK, hash checked):           {args.mb / down:8.1f} MB/s")
                print(f"  download /media/<id> with curl:         {args.mb / media_curl:8.1f} MB/s")
                print(f"  plain static route with curl (ceiling): {args.mb / static:8.1f} MB/s")
                source.unlink()

                if args.big_mb:
                    big = work / "big.bin"
                    random_file(big, args.big_mb * MB)
                    assert server.proc is not None
                    pid = server.proc.pid
                    before = psutil.Process(pid).memory_info().rss
                    peaks: list[int] = []
                    stop = asyncio.Event()
                    sampler = asyncio.create_task(sample_rss(pid, stop, peaks))
                    start = time.perf_counter()
                    await client.files.upload(big, kind="document", part_size=part)
                    took = time.perf_counter() - start
                    stop.set()
                    await sampler
                    print(f"{args.big_mb} MB upload: {args.big_mb / took:.1f} MB/s; server RSS "
                          f"{before / 2**20:.0f} MiB before, {max(peaks) / 2**20:.0f} MiB at "
                          f"peak ({len(peaks)} samples)")
            finally:
                await client.close()
                print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
                if server.proc is not None and server.proc.poll() is not None:
                    print(f"the server exited with {server.proc.returncode}:\n"
                          + "".join(server.log[-30:]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--big-mb", type=int, default=2048)
    parser.add_argument("--part-mb", type=int, default=8)
    parser.add_argument("--dir", default=None, help="where the data and files go")
    asyncio.run(main(parser.parse_args()))
