"""Players for ``embed_media``, built here from the link alone.

Caco asks each provider's oEmbed endpoint for the player's HTML; that needs the internet, which
a local runtime may not have and should not need for this. Every provider Caco lists has a
documented embed URL that follows from the link, so the player's HTML is built here: an iframe,
or for a post on X the quote oEmbed gives (the page sanitises what it shows, and every value put
into the HTML is escaped). Any other link is refused: only these players are known to be safe to
frame. Offline there is no title or author to ask for, so they are what the link says (the
handle of an X post, the user of a SoundCloud track) or None.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

PROVIDERS = ("YouTube", "Vimeo", "SoundCloud", "Spotify", "Twitter/X")
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_SPOTIFY_KINDS = ("track", "album", "playlist", "episode", "show")
_SPOTIFY_ID = re.compile(r"^[A-Za-z0-9]{10,40}$")
_SOUNDCLOUD_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Embed:
    provider: str
    #: The provider's id of the media (``providerKey`` in the metadata).
    key: str
    html: str
    url: str
    title: str | None = None
    author: str | None = None
    thumbnail_url: str | None = None


def _iframe(src: str, title: str, width: str, height: int, allow: str = "") -> str:
    attributes = [
        f'src="{html.escape(src, quote=True)}"',
        f'title="{html.escape(title, quote=True)}"',
        f'width="{width}"',
        f'height="{height}"',
        'frameborder="0"',
        'loading="lazy"',
        "allowfullscreen",
    ]
    if allow:
        attributes.append(f'allow="{allow}"')
    return f"<iframe {' '.join(attributes)}></iframe>"


def _youtube(host: str, path: str, query: dict[str, list[str]]) -> str | None:
    if host == "youtu.be":
        candidate = path.strip("/").split("/")[0]
    elif path == "/watch":
        candidate = (query.get("v") or [""])[0]
    else:
        parts = path.strip("/").split("/")
        candidate = parts[1] if len(parts) >= 2 and parts[0] in ("embed", "shorts") else ""
    return candidate if _YOUTUBE_ID.match(candidate) else None


def embed_for(url: str) -> Embed | None:
    """The player for ``url``, or None when it is not a link of a known provider."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower().removeprefix("www.").removeprefix("m.")
    query = parse_qs(parts.query)
    if host in ("youtube.com", "youtu.be", "music.youtube.com", "youtube-nocookie.com"):
        video = _youtube(host, parts.path, query)
        if video is None:
            return None
        src = f"https://www.youtube-nocookie.com/embed/{video}"
        allow = "accelerometer; autoplay; clipboard-write; encrypted-media; gyroscope; picture-in-picture"
        return Embed(
            "YouTube",
            video,
            _iframe(src, "YouTube video player", "560", 315, allow),
            url,
            thumbnail_url=f"https://img.youtube.com/vi/{video}/hqdefault.jpg",
        )
    if host in ("vimeo.com", "player.vimeo.com"):
        match = re.search(r"/(?:video/)?([0-9]{3,12})(?:/|$)", parts.path)
        if match is None:
            return None
        src = f"https://player.vimeo.com/video/{match.group(1)}"
        return Embed("Vimeo", match.group(1), _iframe(src, "Vimeo player", "640", 360, "autoplay; fullscreen"), url)
    if host == "soundcloud.com":
        names = [name for name in parts.path.split("/") if name]
        if len(names) < 2 or not all(_SOUNDCLOUD_NAME.match(name) for name in names[:3]):
            return None
        key = "/".join(names[:3])  # <user>/<track>, or <user>/sets/<playlist>
        src = "https://w.soundcloud.com/player/?url=" + quote(f"https://soundcloud.com/{key}", safe="") + "&visual=true"
        return Embed("SoundCloud", key, _iframe(src, "SoundCloud player", "100%", 166), url, author=names[0])
    if host == "open.spotify.com":
        segments = [s for s in parts.path.split("/") if s and not s.startswith("intl-")]
        if len(segments) < 2 or segments[0] not in _SPOTIFY_KINDS or not _SPOTIFY_ID.match(segments[1]):
            return None
        kind, key = segments[0], segments[1]
        src = f"https://open.spotify.com/embed/{kind}/{key}"
        height = 152 if kind in ("track", "episode") else 352
        return Embed("Spotify", f"{kind}/{key}", _iframe(src, "Spotify player", "100%", height, "encrypted-media"), url)
    if host in ("twitter.com", "x.com", "mobile.twitter.com"):
        match = re.match(r"^/([A-Za-z0-9_]{1,15})/status/([0-9]{1,25})", parts.path)
        if match is None:
            return None
        handle, status = match.groups()
        # oEmbed's own form without its widgets.js (which the page's sanitiser drops anyway): a
        # quote linking to the post, which needs nothing from the network to show.
        link = html.escape(f"https://twitter.com/{handle}/status/{status}", quote=True)
        label = html.escape(f"Post by @{handle} on X", quote=True)
        quote_html = f'<blockquote class="twitter-tweet"><p><a href="{link}">{label}</a></p></blockquote>'
        return Embed("Twitter/X", status, quote_html, url, title=f"Post by @{handle}", author=f"@{handle}")
    return None
