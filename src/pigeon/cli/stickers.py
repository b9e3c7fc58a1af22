"""``pigeon stickers ...``: an artist's sets (create, add, remove, move, publish) and
everyone's (search, show, install, uninstall, list); sending one is ``pigeon send --sticker``.

Every name, title and emoji shown here was typed by someone: printed through
:func:`output.visible`, never raw."""

from __future__ import annotations

from pathlib import Path

import click

from pigeon.client import Client
from pigeon.protocol.errors import NotFound
from pigeon.protocol.stickers import StickerSet, StickerSetInfo
from pigeon.protocol.types import SentMessage

from .context import Ctx, run, session
from .output import echo, plural, visible

pass_ctx = click.make_pass_decorator(Ctx)


@click.group()
def stickers() -> None:
    """Sticker sets: make your own, find others', install them."""


def _summary(info: StickerSetInfo) -> str:
    state = "" if info.published else " [not published]"
    mine = " [installed]" if info.installed else ""
    return (f"{visible(info.name)}  {visible(info.title)} by {visible(info.author_name)}, "
            f"{plural(info.count, 'sticker')}{state}{mine}")


def _show(whole: StickerSet, server: str | None = None) -> None:
    echo(_summary(whole.info))
    if whole.info.licence:
        echo(f"licence: {visible(whole.info.licence)}")
    for s in whole.stickers:
        kind = " animated" if s.animated else ""
        echo(f"  {s.index}. {visible(' '.join(s.emoji))}  {s.width}x{s.height}{kind}, "
             f"{s.size} bytes, file {s.file_id}")
    if server and whole.info.published:
        echo(f"page: {server.rstrip('/')}/stickers/{whole.info.name}")


@stickers.command("create")
@click.argument("name")
@click.option("--title", required=True, help="What people see the set as.")
@click.option("--licence", default="", help="e.g. \"CC BY 4.0\" (shown on the set's page).")
@pass_ctx
@run
async def create(ctx: Ctx, name: str, title: str, licence: str) -> None:
    """Make a new sticker set NAME (4-32 letters, digits and _, starting with a letter): its
    link will be /stickers/NAME. It stays yours alone until `stickers publish NAME`."""
    async with session(ctx) as client:
        whole = await client.stickers.create(name, title, licence)
    echo(f"created sticker set {visible(whole.info.name)}; next: "
         f"{ctx.command(f'stickers add {whole.info.name} FILE --emoji E')}")


@stickers.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--emoji", "emoji", multiple=True, required=True,
              help="An emoji this sticker stands for (repeat for more).")
@pass_ctx
@run
async def add(ctx: Ctx, name: str, file: Path, emoji: tuple[str, ...]) -> None:
    """Add FILE (PNG, WebP, JPEG; animated WebP, GIF or APNG up to 3 s) to your set NAME.
    The server makes it a 512 px WebP sticker."""
    async with session(ctx) as client:
        whole = await client.stickers.add(name, file, list(emoji))
    last = whole.stickers[-1]
    echo(f"added sticker {last.index} to {visible(whole.info.name)} "
         f"({last.width}x{last.height}, {last.size} bytes)")


@stickers.command("remove")
@click.argument("name")
@click.argument("n", type=click.IntRange(1, 120))
@pass_ctx
@run
async def remove(ctx: Ctx, name: str, n: int) -> None:
    """Remove sticker N (from 1) of your unpublished set NAME."""
    async with session(ctx) as client:
        whole = await client.stickers.remove(name, n)
    echo(f"removed sticker {n}; {visible(whole.info.name)} has "
         f"{plural(len(whole.stickers), 'sticker')}")


@stickers.command("move")
@click.argument("name")
@click.argument("n", type=click.IntRange(1, 120))
@click.argument("to", type=click.IntRange(1, 120))
@pass_ctx
@run
async def move(ctx: Ctx, name: str, n: int, to: int) -> None:
    """Move sticker N of your unpublished set NAME to place TO."""
    async with session(ctx) as client:
        await client.stickers.move(name, n, to)
    echo(f"moved sticker {n} to {to}")


@stickers.command("publish")
@click.argument("name")
@pass_ctx
@run
async def publish(ctx: Ctx, name: str) -> None:
    """Publish your set NAME: anyone can then find, install and send it. A published set
    only grows (stickers can be added, not removed or moved)."""
    async with session(ctx) as client:
        whole = await client.stickers.publish(name)
        server = client.profile.server
    echo(f"published {visible(whole.info.name)}; share {(server or '').rstrip('/')}"
         f"/stickers/{whole.info.name}")


@stickers.command("search")
@click.argument("query", default="")
@pass_ctx
@run
async def search(ctx: Ctx, query: str) -> None:
    """Published sets whose title or name holds QUERY (none: the newest)."""
    async with session(ctx) as client:
        found = await client.stickers.search(query)
    for info in found:
        echo(_summary(info))
    if not found:
        echo("no sticker set found")


@stickers.command("show")
@click.argument("name")
@pass_ctx
@run
async def show(ctx: Ctx, name: str) -> None:
    """One set and its stickers."""
    async with session(ctx) as client:
        whole = await client.stickers.get(name)
        _show(whole, client.profile.server)


@stickers.command("install")
@click.argument("name")
@pass_ctx
@run
async def install(ctx: Ctx, name: str) -> None:
    """Install the set NAME on all your devices."""
    async with session(ctx) as client:
        await client.stickers.install(name)
    echo(f"installed {visible(name.lower())}")


@stickers.command("uninstall")
@click.argument("name")
@pass_ctx
@run
async def uninstall(ctx: Ctx, name: str) -> None:
    """Uninstall the set NAME from all your devices."""
    async with session(ctx) as client:
        await client.stickers.uninstall(name)
    echo(f"uninstalled {visible(name.lower())}")


@stickers.command("list")
@pass_ctx
@run
async def list_installed(ctx: Ctx) -> None:
    """Your installed sets."""
    async with session(ctx) as client:
        installed = await client.stickers.list_installed()
        for name in installed.names:
            echo(_summary((await client.stickers.get(name)).info))
    if not installed.names:
        echo(f"no sticker sets installed; find some with {ctx.command('stickers search Q')}")


async def send_sticker(client: Client, chat_id: int, ref: str | None,
                       emoji: str | None) -> SentMessage:
    """``--sticker SET:N`` (N from 1), or ``--sticker-emoji E``: the first sticker with that
    emoji in your installed sets, newest installed first."""
    if ref is not None:
        name, _, n = ref.rpartition(":")
        if not name or not (n.isascii() and n.isdigit()) or not 1 <= int(n) <= 120:
            raise click.UsageError(f"--sticker {ref!r}: expected SET:N, N from 1")
        return await client.stickers.send(chat_id, name, int(n))
    assert emoji is not None
    found = await client.stickers.by_emoji(emoji, limit=1)
    if not found:
        raise NotFound(f"no sticker with {visible(emoji)} in your installed sets",
                       code="STICKER_NOT_FOUND")
    return await client.stickers.send(chat_id, found[0].set, found[0].sticker.index)
