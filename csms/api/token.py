"""The operator API's bearer token: from the config, else generated once into a file that
only its owner can read, where the local CLI finds it.

No HTTP here; the server and the CLI both call resolve_token.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from csms.config import ApiConfig


class TokenError(Exception):
    """The token file cannot be read or written; the message says which and why."""


def resolve_token(config: ApiConfig, *, create: bool) -> str | None:
    """The configured token; else the token file's content, creating it when `create`
    (the server) and returning None when it does not exist yet (the CLI)."""
    if config.token:
        return config.token
    path = Path(config.token_file)
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        raise TokenError(f"cannot read the API token file {path}: {exc.strerror}") from None
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
    except FileExistsError:  # another process won the race: use its token
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenError(f"cannot write the API token file {path}: {exc.strerror}") from None
    return token
