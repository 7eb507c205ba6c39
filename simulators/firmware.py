"""Firmware updates and diagnostics or log uploads of a simulated charger, both OCPP versions: the
status steps a real charger reports, their pacing, and the version a new image brings.

The steps are sent through callbacks the version gives; no frame is built here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from simulators.errors import NotConnectedError

__all__ = [
    "STEP_SECONDS",
    "Device",
    "new_firmware_version",
    "reachable",
    "seconds_until",
    "update_firmware",
    "upload",
]

#: Pause between the status notifications of a firmware update or an upload.
STEP_SECONDS = 0.5
#: Where a simulated charger can download from and upload to; other schemes fail.
_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "sftp"})
_VERSION = re.compile(r"\d+(?:\.\d+)+")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")

#: Sends one status step (FirmwareStatusNotification, DiagnosticsStatusNotification...).
Send = Callable[[str], Awaitable[object]]


class Device(Protocol):
    """What an update or an upload reads and sets of the charger (simulators.charger's
    ChargerBase, which imports this module's pacing)."""

    firmware_version: str
    firmware_state: str
    upload_state: str
    step_seconds: float

    def now(self) -> datetime: ...

    async def wait_idle(self) -> None: ...


def reachable(location: str) -> bool:
    """Whether a download or upload location is one the simulated charger can use."""
    parts = urlsplit(location)
    return parts.scheme.lower() in _SCHEMES and bool(parts.netloc)


def new_firmware_version(location: str, current: str) -> str:
    """The version an image brings: the version in its file name (`fw-2.1.0.bin` gives
    `2.1.0`), else the current one with its last number counted up (`1.0.0` gives `1.0.1`)."""
    name = urlsplit(location).path.rsplit("/", 1)[-1]
    found = _VERSION.search(name)
    if found is not None:
        return found.group(0)
    if _LAST_NUMBER.search(current):
        return _LAST_NUMBER.sub(lambda m: str(int(m.group(1)) + 1), current)
    return f"{current}.1"


def seconds_until(moment: datetime | None, now: datetime) -> float:
    """Seconds to wait for `moment` (0 when it has passed or is unknown)."""
    return 0.0 if moment is None else max(0.0, (moment - now).total_seconds())


async def update_firmware(
    cp: Device,
    location: str,
    retrieve_at: datetime | None,
    send: Send,
    reboot: Callable[[], Awaitable[None]],
    *,
    installed_after_reboot: bool,
    signed: bool = False,
) -> None:
    """At `retrieve_at`: Downloading, Downloaded (DownloadFailed for an unusable location),
    SignatureVerified when signed; once no transaction runs Installing, then Installed and a
    reboot (1.6) or InstallRebooting, reboot, Installed (2.0.1). The reboot boots with the
    new `firmware_version`. `firmware_state` is Idle again at the end."""
    try:
        await asyncio.sleep(seconds_until(retrieve_at, cp.now()))
        await _step(send, "Downloading")
        await asyncio.sleep(cp.step_seconds)
        if not reachable(location):
            await _step(send, "DownloadFailed")
            return
        await _step(send, "Downloaded")
        if signed:
            await asyncio.sleep(cp.step_seconds)
            await _step(send, "SignatureVerified")
        await cp.wait_idle()  # a charger installs between sessions
        await asyncio.sleep(cp.step_seconds)
        await _step(send, "Installing")
        await asyncio.sleep(cp.step_seconds)
        cp.firmware_version = new_firmware_version(location, cp.firmware_version)
        if installed_after_reboot:
            await _step(send, "InstallRebooting")
            await reboot()
            await _step(send, "Installed")
        else:
            await _step(send, "Installed")
            cp.firmware_state = "Idle"  # what the rebooted charger knows
            await reboot()
    finally:
        cp.firmware_state = "Idle"


async def upload(cp: Device, location: str, send: Send, *, done: str, failed: str) -> None:
    """Uploading, then `done` (or `failed` for an unusable location); Idle again after."""
    try:
        await _step(send, "Uploading")
        await asyncio.sleep(cp.step_seconds)
        await _step(send, done if reachable(location) else failed)
    finally:
        cp.upload_state = "Idle"


async def _step(send: Send, status: str) -> None:
    """Send one step; offline the step still happens, it is just not reported."""
    try:
        await send(status)
    except NotConnectedError:
        return
