"""The public page of a sticker set, ``/stickers/<name>``: the link an artist shares.

Everything a person typed (title, author's name, licence, emoji) is escaped with
:func:`html.escape` (quotes too, since some of it goes in attributes), and the page is
served with a Content-Security-Policy that runs no script at all.
"""

from __future__ import annotations

from html import escape

from pigeon.protocol.stickers import StickerSet

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;
color:#222;background:#fafafa}
h1{margin-bottom:.2rem}.by{color:#555;margin-top:0}
.grid{display:flex;flex-wrap:wrap;gap:1rem;margin:1.5rem 0}
figure{margin:0;width:128px;text-align:center}
figure img{width:128px;height:128px;object-fit:contain;background:#eee;border-radius:8px}
figcaption{font-size:1.2rem}
code{background:#eee;padding:.2rem .4rem;border-radius:4px}
"""


def install_command(name: str) -> str:
    return f"pigeon stickers install {name}"


def pigeon_link(name: str) -> str:
    """What a Pigeon app opens to install the set (the name is [a-z0-9_] only)."""
    return f"pigeon://stickers/{name}"


def render_page(whole: StickerSet) -> str:
    info = whole.info
    name, title = escape(info.name), escape(info.title)
    figures = "\n".join(
        f'<figure><img src="/stickers/files/{escape(s.file_id)}.webp" '
        f'alt="{escape(" ".join(s.emoji))}" width="{s.width}" height="{s.height}" '
        f'loading="eager"><figcaption>{s.index}. {escape(" ".join(s.emoji))}</figcaption>'
        "</figure>" for s in whole.stickers)
    licence = f"<p>Licence: {escape(info.licence)}</p>" if info.licence else ""
    count = f"{info.count} sticker" + ("" if info.count == 1 else "s")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – Pigeon stickers</title>
<style>{_STYLE}</style></head>
<body>
<h1 id="title">{title}</h1>
<p class="by">by <span id="author">{escape(info.author_name)}</span> · {count} ·
<code>{name}</code></p>
{licence}
<div class="grid" id="stickers">
{figures}
</div>
<h2>Install</h2>
<p>In a Pigeon app: <a id="link" href="{escape(pigeon_link(info.name))}">{escape(
    pigeon_link(info.name))}</a></p>
<p>On the command line: <code id="command">{escape(install_command(info.name))}</code></p>
</body></html>
"""
