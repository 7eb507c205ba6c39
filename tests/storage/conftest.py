"""The storage suite runs on every selected database (tests/postgres.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _on_backend(backend: str) -> str:
    return backend
