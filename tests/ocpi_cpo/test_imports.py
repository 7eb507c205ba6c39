"""The OCPI bridge never imports OCPP code."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import ocpi_cpo.app, ocpi_cpo.transport, ocpi_cpo.registration, ocpi_cpo.client
bad = sorted(m for m in sys.modules if m.startswith(("csms.handlers", "csms.gateway", "ocpp")))
print(",".join(bad))
"""


def test_ocpi_cpo_does_not_import_ocpp_code() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
