"""The garbage-collector policy's pause around pricing in a worker thread."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from csms.gcpolicy import CollectorPause


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
def test_nested_pauses_resume_the_collector_when_the_last_ends() -> None:
    pause = CollectorPause()
    with pause:
        assert not gc.isenabled()
        with pause:
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_failure_inside_still_resumes_it() -> None:
    pause = CollectorPause()
    with pytest.raises(RuntimeError), pause:
        raise RuntimeError("pricing failed")
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with CollectorPause():
        assert not gc.isenabled()
    assert not gc.isenabled()
