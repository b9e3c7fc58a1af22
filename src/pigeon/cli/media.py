"""``pigeon upload`` and ``pigeon download``: files over the HTTP media API, with a progress
bar (rich) when standard error is a terminal, silent otherwise. Both resume: an upload
interrupted (Ctrl-C, a dropped connection) continues with the parts the server lacks when
run again; a download continues its ``PATH.part``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from pigeon.protocol.media import FILE_ID

from .context import Ctx, resolve_chat, run, sent_from_here, session
from .output import echo, human_size, visible
from .search import keep
from .secret import PREFIX, is_secret_ref, resolve_secret, secret_session

pass_ctx = click.make_pass_decorator(Ctx)


@contextmanager
def progress_bar(label: str, total: int | None) -> Iterator[tuple[Callable[[int], None],
                                                                  Callable[[int], None]]]:
    """(advance, set_total): a rich progress bar on a terminal; on anything else, nothing."""
    if not sys.stderr.isatty():
        yield (lambda _n: None), (lambda _t: None)
        return
    from rich.console import Console  # only on a terminal: a piped run never loads rich
    from rich.progress import (
        BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn,
    )
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(visible(label), total=total)
        yield (lambda n: bar.advance(task, n)), (lambda t: bar.update(task, total=t))


@click.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--to", "to", required=True, help="@username, user:ID, chat:ID or secret:ID")
@click.option("--caption", default="", help="Text shown with the file.")
@click.option("--document", "as_document", is_flag=True,
              help="Send a picture as a file, untouched (no thumbnail, no resizing).")
@click.option("--keep-location", is_flag=True,
              help="Keep the photo's GPS location (EXIF); it is removed otherwise.")
@pass_ctx
@run
async def upload(ctx: Ctx, file: Path, to: str, caption: str, as_document: bool,
                 keep_location: bool) -> None:
    """Send FILE to a chat: a photo (JPEG, PNG, WebP, GIF, checked by the server) or any
    other file as a document. Run it again to resume an interrupted upload. To secret:ID,
    the file is encrypted on this device first and the server stores only ciphertext."""
    if is_secret_ref(to):
        await _upload_secret(ctx, file, to, caption)
        return
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, to)
        size = file.stat().st_size
        with progress_bar(file.name, size) as (advance, _total):
            media = await client.files.upload(file, kind="document" if as_document else "auto",
                                              keep_location=keep_location, progress=advance)
        sent = await sent_from_here(client, chat_id, lambda: client.messages.send(
            chat_id, caption, media=media.file_id))
        await keep(ctx, [(sent.message, None)])
    echo(f"sent {visible(media.kind)} {visible(media.name)} ({human_size(media.size)}, "
         f"{visible(media.mime)}) as chat:{sent.message.chat_id} #{sent.message.id}; "
         f"file {media.file_id}")


async def _upload_secret(ctx: Ctx, file: Path, to: str, caption: str) -> None:
    async with secret_session(ctx) as client:
        chat = await resolve_secret(client, to)
        with progress_bar(file.name, None) as (advance, _total):
            sent = await client.secret.send_file(chat, file, caption, progress=advance)
    assert sent.file is not None
    echo(f"sent document {visible(file.name)} ({human_size(sent.file.size)}, encrypted on "
         f"this device) as {PREFIX}{sent.chat_id} {sent.message_id[:8]}; file "
         f"{sent.file.file_id}")


# A file id may begin with "-" (ids of URL-safe base64 made before new_id() avoided it):
# taken as the argument, not an option it is not.
@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("file_id")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write it; an interrupted download resumes from OUT.part.")
@pass_ctx
@run
async def download(ctx: Ctx, file_id: str, out: Path) -> None:
    """Download the file FILE_ID (shown by `receive` and `history`) to --out."""
    if not FILE_ID.match(file_id):
        raise click.UsageError(f"{file_id!r} is not a file id")
    # A secret chat's file is decrypted with the key its message holds, in the device's
    # secret history: looked up when the keys can be unlocked (a passphrase file, or a
    # terminal to ask on); otherwise a plain download, as before secret chats.
    if ctx.has_secrets() and (ctx.passphrase_file is not None or sys.stdin.isatty()):
        async with secret_session(ctx) as client:
            sealed = client.secret.file(file_id)
            with progress_bar(out.name, None) as (advance, total):
                if sealed is not None:
                    path = await client.secret.download_file(sealed, out, progress=advance,
                                                             total=total)
                else:
                    path = await client.files.download(file_id, out, progress=advance,
                                                       total=total)
        echo(f"saved {visible(str(path))} ({human_size(path.stat().st_size)})"
             + (", decrypted" if sealed is not None else ""))
        return
    async with session(ctx) as client:
        with progress_bar(out.name, None) as (advance, total):
            path = await client.files.download(file_id, out, progress=advance, total=total)
    echo(f"saved {visible(str(path))} ({human_size(path.stat().st_size)})")
