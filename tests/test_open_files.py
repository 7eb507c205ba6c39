"""`csms serve` raises its soft limit of open files to the hard limit
(csms.app.raise_open_files_limit); the process's own limits are restored afterwards."""

from __future__ import annotations

import pytest

from csms.app import raise_open_files_limit

resource = pytest.importorskip("resource")


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip("no finite hard limit above 256 to raise to")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raised = raise_open_files_limit()
        assert raised is not None and raised[0] == 256
        now_soft, now_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert (now_soft, now_hard) == (hard, hard) and raised[1] == hard
        assert raise_open_files_limit() is None  # nothing left to raise
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
