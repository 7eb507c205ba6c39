"""The CLI's client of the operator API: finds the URL and the bearer token from the config
and turns connection and HTTP problems into one-line errors.

Standard library HTTP only (the CLI starts fast); no command logic here.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from csms.api.token import TokenError, resolve_token
from csms.cli.common import CliError
from csms.config import Config


def api_url(config: Config, given: str | None) -> str:
    if given:
        return given.rstrip("/")
    host = config.api.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - listening everywhere; we call locally
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.api.port}"


def api_token(config: Config) -> str:
    try:
        token = resolve_token(config.api, create=False)
    except TokenError as exc:
        raise CliError(str(exc)) from None
    if token is None:
        raise CliError(
            f"no API token at {config.api.token_file} (`csms serve` writes it there at its "
            "first start): point at the server's data directory with --data-dir or "
            "CSMS_DATA_DIR, or set api.token"
        )
    return token


def request(
    config: Config,
    given_url: str | None,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    wait: float = 60.0,
) -> tuple[int, Any]:
    """(HTTP status, decoded JSON) of one API call; refusals of the token, unreachable
    servers and non-JSON answers become CliErrors."""
    base = api_url(config, given_url)
    url = base + path
    if query:
        url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
    data = None if body is None else orjson.dumps(body)
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--api must be an http:// or https:// URL, not {base!r}")
    req.add_header("Authorization", f"Bearer {api_token(config)}")
    req.add_header("X-CSMS-Source", "cli")
    user = _user()
    if user:
        req.add_header("X-CSMS-User", user)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=wait) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise CliError(
            f"cannot reach the CSMS API at {base} ({exc.reason}); is `csms serve` running?"
        ) from None
    except TimeoutError:
        raise CliError(f"the CSMS API at {base} did not answer within {wait:g} s") from None
    if status == 401:
        raise CliError(
            f"the API at {base} refused the token: check api.token or {config.api.token_file}"
        )
    try:
        decoded = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise CliError(f"unexpected answer from {base} (HTTP {status}, not JSON)") from None
    if status in (403, 429) and isinstance(decoded, dict) and "error" in decoded:
        # A role too small for the request, or the back-off after wrong tokens.
        raise CliError(f"the API at {base} refused: {decoded['error']}")
    return status, decoded


def charger_path(cp_id: str, rest: str) -> str:
    return f"/api/chargers/{quote(cp_id, safe='')}/{rest}"


def _user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
