"""Unit tests of the firmware and upload helpers both simulators share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulators.clock import parse_wire_time
from simulators.firmware import new_firmware_version, reachable, seconds_until

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_the_new_version_comes_from_the_file_name_or_counts_up() -> None:
    assert new_firmware_version("https://fw.example.com/img/sim-2.1.0.bin", "1.0") == "2.1.0"
    assert new_firmware_version("https://fw.example.com/latest.bin", "1.0.9") == "1.0.10"
    assert new_firmware_version("https://fw.example.com/latest.bin", "beta") == "beta.1"


def test_only_network_locations_are_reachable() -> None:
    assert reachable("https://fw.example.com/a.bin")
    assert reachable("ftp://user@logs.example.com/upload")
    assert not reachable("file:///tmp/a.bin")
    assert not reachable("not a url")


def test_waits_and_wire_times() -> None:
    assert seconds_until(T0 + timedelta(seconds=90), T0) == 90
    assert seconds_until(T0 - timedelta(seconds=90), T0) == 0
    assert seconds_until(None, T0) == 0
    assert parse_wire_time("2025-01-01T00:00:00Z") == T0
    assert parse_wire_time("2025-01-01T01:00:00+01:00") == T0
    assert parse_wire_time("2025-01-01T00:00:00") == T0
    assert parse_wire_time("yesterday") is None
    assert parse_wire_time(None) is None
