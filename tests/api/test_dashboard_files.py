"""The dashboard page names only files the package has, each vendored library keeps its
licence beside it, and the policy it is served under allows no inline script or style."""

from __future__ import annotations

import re

from csms.api.dashboard import HERE, PREFIX, STATIC, content_security_policy, is_open


def test_the_page_names_only_files_that_exist() -> None:
    page = (HERE / "page.html").read_text(encoding="utf-8")
    named = re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', page)
    assert len(named) == 6
    for path in named:
        assert (STATIC / path.removeprefix(PREFIX)).is_file(), path
    assert "<script>" not in page and "style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline handlers


def test_vendored_libraries_keep_their_licences() -> None:
    for library in ("uplot", "leaflet"):
        assert "Permission" in (STATIC / "vendor" / library / "LICENSE").read_text() or (
            "Redistribution" in (STATIC / "vendor" / library / "LICENSE").read_text()
        )


def test_policy_and_open_paths() -> None:
    assert content_security_policy("") == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    tiles = content_security_policy("https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://tile.openstreetmap.org;" in tiles
    subdomains = content_security_policy("https://{s}.tile.example.net/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://*.tile.example.net;" in subdomains
    assert is_open("/dashboard") and is_open("/dashboard/static/dashboard.js")
    assert not is_open("/dashboard/other") and not is_open("/api/overview")
