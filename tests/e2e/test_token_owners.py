"""`csms tokens` with token owners: `--owner CC*PID` and the CSV `owner` column mark a token
as another party's (its sessions are that party's over OCPI); `tokens show` and `list` say
whose a token is; a bad owner is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import csms, empty_database, workdir

__all__ = ["empty_database", "workdir"]  # the fixtures, shared with test_cli


def test_tokens_of_other_parties(workdir: Path) -> None:
    csms(workdir, "tokens", "add", "EMS01", "--owner", "de*ems")
    csms(workdir, "tokens", "add", "OWN01")
    shown = json.loads(csms(workdir, "tokens", "show", "ems01", "--json").stdout)
    assert shown["uid"] == "EMS01" and shown["origin"] == "DE*EMS"
    human = csms(workdir, "tokens", "show", "EMS01").stdout
    assert "owner:          DE*EMS" in human
    assert "owner:          us (local)" in csms(workdir, "tokens", "show", "OWN01").stdout
    listed = csms(workdir, "tokens", "list").stdout
    assert "DE*EMS" in listed and "local" in listed

    sheet = workdir / "tokens.csv"
    sheet.write_text("uid,owner\nNL01,NL*AB1\nNL02,\nNL03,local\n")
    assert "3 new" in csms(workdir, "tokens", "import", str(sheet)).stdout
    tokens = {
        t["uid"]: t["origin"] for t in json.loads(csms(workdir, "tokens", "list", "--json").stdout)
    }
    assert tokens == {
        "EMS01": "DE*EMS",
        "OWN01": "local",
        "NL01": "NL*AB1",
        "NL02": "local",
        "NL03": "local",
    }

    bad = csms(workdir, "tokens", "add", "X1", "--owner", "Germany", ok=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "owner must be COUNTRY*PARTY" in bad.stderr and "NL*EMS" in bad.stderr
    sheet.write_text("uid,owner\nNL04,NL*EMS\nNL05,NLD*EMS\n")
    bad = csms(workdir, "tokens", "import", str(sheet), ok=False)
    assert bad.returncode == 1 and "line 3" in bad.stderr and "NLD*EMS" in bad.stderr
    missing = csms(workdir, "tokens", "show", "NOPE", ok=False)
    assert missing.returncode == 1 and "no token NOPE" in missing.stderr
