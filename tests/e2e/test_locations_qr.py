"""`csms locations qr` end to end: the labels of a location's EVSEs written as PNG and SVG,
read back (the PNG by an independent decoder), one EVSE alone, and one-line errors."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli import cli_env, csms, ok, one_line_error
from tests.e2e.conftest import Running
from tests.e2e.test_locations_cli import SITE
from tests.qr_reading import png_texts, segno_matrix, svg_matrix, svg_text

PUBLIC = "https://charge.example.com"


async def test_labels_of_a_location(server: Running, tmp_path: Path) -> None:
    env = {
        **cli_env(server),
        "CSMS_OCPI_BASE_URL": PUBLIC + "/",
        "CSMS_PAYMENTS_ENABLED": "true",
    }
    ok(await csms(server, "locations", "add", "AMS-1", *SITE))
    ok(await csms(server, "locations", "add", "EMPTY", *SITE))
    for charger, evse, code in (("CP-A", "1", "NL*CSM*E0001"), ("CP:B", "1", None)):
        extra = ["--evse-id", code] if code else []
        ok(
            await csms(
                server, "locations", "link", "AMS-1", "--charger", charger, "--evse", evse, *extra
            )
        )
    ok(await csms(server, "locations", "link", "AMS-1", "--charger", "CP-A", "--evse", "2"))

    out = tmp_path / "labels"
    ran = await csms(server, "locations", "qr", "AMS-1", "--out", str(out), "--json", env=env)
    assert ran.code == 0 and ran.err == "", ran
    labels = ran.json()
    assert [(x["uid"], x["evse_id"], x["url"]) for x in labels] == [
        ("CP-A*1", "NL*CSM*E0001", f"{PUBLIC}/pay/CP-A*1"),
        ("CP-A*2", "NL*CSM*ECPA*2", f"{PUBLIC}/pay/CP-A*2"),
        ("CP:B*1", "NL*CSM*ECPB*1", f"{PUBLIC}/pay/CP%3AB*1"),
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "CP-A_1.png",
        "CP-A_1.svg",
        "CP-A_2.png",
        "CP-A_2.svg",
        "CP_B_1.png",
        "CP_B_1.svg",
    ]
    for label in labels:
        png, svg = (Path(f) for f in label["files"])
        assert png_texts(png.read_bytes()) == [label["url"]]
        text = svg.read_text()
        assert svg_matrix(text) == segno_matrix(label["url"])
        assert svg_text(text) == label["evse_id"]

    # One EVSE, one format, in words.
    one = tmp_path / "one"
    printed = ok(
        await csms(
            server,
            "locations",
            "qr",
            "AMS-1",
            "--evse",
            "CP-A*2",
            "--out",
            str(one),
            "--format",
            "svg",
            env=env,
        )
    )
    assert [line.split("  ") for line in printed.splitlines()][1] == [
        "CP-A*2",
        "",
        "NL*CSM*ECPA*2",
        f"{PUBLIC}/pay/CP-A*2",
        str(one / "CP-A_2.svg"),
    ]
    assert printed.splitlines()[0].split() == ["EVSE", "UID", "EVSE", "ID", "URL", "FILES"]
    assert [p.name for p in one.iterdir()] == ["CP-A_2.svg"]

    # [payments] public_url, else the OCPI base URL; what keeps the labels from working is
    # said (they are printed anyway).
    ran = await csms(
        server,
        "locations",
        "qr",
        "AMS-1",
        "--evse",
        "CP-A*1",
        "--out",
        str(one),
        "--json",
        env={**env, "CSMS_PAYMENTS_PUBLIC_URL": "https://pay.example.org/cpo"},
    )
    assert ran.json()[0]["url"] == "https://pay.example.org/cpo/pay/CP-A*1"
    ok(await csms(server, "locations", "update", "AMS-1", "--no-publish"))
    ran = await csms(
        server,
        "locations",
        "qr",
        "AMS-1",
        "--evse",
        "CP-A*1",
        "--out",
        str(one),
        "--json",
        env={**cli_env(server), "CSMS_OCPI_BASE_URL": "http://cpo.example.net:9100"},
    )
    assert ran.json()[0]["url"] == "http://cpo.example.net:9100/pay/CP-A*1"
    assert ran.err.splitlines() == [
        "warning: [payments] enabled is false: the pages will say paying is not offered",
        "warning: location AMS-1 is not published: its EVSEs cannot be paid for",
    ]

    one_line_error(
        await csms(server, "locations", "qr", "NOPE", "--out", str(one), env=env), "no location"
    )
    one_line_error(
        await csms(
            server, "locations", "qr", "AMS-1", "--evse", "CP-A*9", "--out", str(one), env=env
        ),
        "EVSE 'CP-A*9' is not at location AMS-1 (its EVSEs: CP-A*1, CP-A*2, CP:B*1)",
    )
    one_line_error(
        await csms(server, "locations", "qr", "EMPTY", "--out", str(one), env=env),
        "location EMPTY has no EVSEs yet",
    )
    (tmp_path / "file").write_text("")
    ran = await csms(server, "locations", "qr", "AMS-1", "--out", str(tmp_path / "file"), env=env)
    assert ran.code == 2 and ran.err.startswith("error: invalid value for '--out'"), ran
    (tmp_path / "ro").write_text("")
    one_line_error(
        await csms(
            server, "locations", "qr", "AMS-1", "--out", str(tmp_path / "ro" / "x"), env=env
        ),
        "cannot make",
    )
