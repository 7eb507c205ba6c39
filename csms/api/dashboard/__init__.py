"""The staff dashboard: `GET /dashboard` (one static page) and `/dashboard/static/...` (its
script, style and the vendored uPlot and Leaflet, see static/vendor/README.md).

Both are open paths: the page holds no data. It asks for an API token, keeps it in the
tab's sessionStorage and reads everything through the operator API with it (`/api/overview`,
`/api/events`, `/api/chargers`, `/api/locations`, `/api/stats...`), as any integrator could.
The page is served with a strict Content-Security-Policy: scripts and styles from this
server only (none inline), connections to this server only, images from this server and
the configured map tile server (`api.map_tiles`; none by default, so that the page needs
nothing from outside the operator's network).
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

HERE = Path(__file__).parent
STATIC = HERE / "static"
PREFIX = "/dashboard/static/"
PATHS = frozenset({"/dashboard"})


def is_open(path: str) -> bool:
    """Whether a request path is the page or one of its files (no token needed)."""
    return path in PATHS or path.startswith(PREFIX)


def content_security_policy(tiles: str) -> str:
    images = "'self' data:"
    if tiles:
        parts = urlsplit(tiles.replace("{s}", "a"))
        origin = f"{parts.scheme}://{parts.netloc}"
        if "{s}" in tiles:  # Leaflet's subdomains a, b, c
            origin = f"{parts.scheme}://*.{parts.netloc.split('.', 1)[1]}"
        images += " " + origin
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def add_routes(app: web.Application, tiles: str = "") -> None:
    """The page (its map over `tiles`, an http(s) URL with {z}, {x} and {y}; empty: none)."""
    page = (HERE / "page.html").read_text(encoding="utf-8")
    body = page.replace("{{tiles}}", html.escape(tiles, quote=True)).encode()
    headers = {
        "Content-Security-Policy": content_security_policy(tiles),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }

    async def dashboard(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)

    app.router.add_get("/dashboard", dashboard)
    app.router.add_static(PREFIX.rstrip("/"), STATIC, follow_symlinks=False)
