"""The operator API refuses out-of-range input with 400 and a message naming it, on a real
server with a connected charger: date-times past the year 9999 in UTC, integers of 2^63,
bodies nested 1,000 deep, timeouts and limits out of range, bodies over api.max_body_size.
Nothing reaches the database or the charger, no request fails with a 500, and valid
commands still work afterwards."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from structlog.testing import capture_logs

from tests.e2e.conftest import StartServer
from tests.e2e.sim import charger

CP = "BOUNDS-1"
AUTH = {"Authorization": "Bearer test-token"}


def nested(depth: int) -> bytes:
    """A JSON array nested `depth` deep (orjson would refuse to encode it)."""
    return b"[" * depth + b'"x"' + b"]" * depth


async def test_out_of_range_inputs_are_400_with_a_clear_message(
    start_server: StartServer,
) -> None:
    server = await start_server(api={"max_body_size": 4096})
    base = f"{server.api_url}/api"

    async def post(
        command: str, body: Any = None, *, raw: bytes | None = None, query: str = ""
    ) -> tuple[int, dict[str, Any]]:
        data = raw if raw is not None else orjson.dumps(body if body is not None else {})
        async with http.post(
            f"{base}/chargers/{CP}/remote/{command}{query}", data=data, headers=AUTH
        ) as response:
            return response.status, await response.json()

    with capture_logs() as logs:
        async with charger(server.url, CP), aiohttp.ClientSession() as http:
            refused_commands: list[tuple[str, dict[str, Any], str]] = [
                (
                    "firmware",
                    {"location": "https://fw.example/1.bin", "retrieve": late},
                    "parameter 'retrieve' is not an ISO 8601 date/time between the years 1 "
                    f"and 9999 (UTC): '{late}'",
                )
                for late in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00")
            ] + [
                (
                    "stop",
                    {"transaction": big},
                    "parameter 'transaction' must be between 1 and 2147483647, not "
                    "9223372036854775808",
                )
                for big in (2**63, str(2**63))
            ]
            refused_commands += [
                ("unlock", {"evse": 2**64 - 1}, "parameter 'evse' must be between 1 and"),
                ("reserve", {"tag": "T", "expires": "9999-12-31T23:59:59-05:00"}, "'expires'"),
                ("stop", {"transaction": 1.5}, "parameter 'transaction' must be an integer"),
            ]
            for command, body, message in refused_commands:
                status, answer = await post(command, body)
                assert status == 400, (command, body, answer)
                assert answer["outcome"] == "invalid" and message in answer["message"], answer

            refused_requests: list[tuple[str, dict[str, Any], str]] = [
                ("start", {"raw": b'{"tag": ' + nested(1000) + b"}"}, "nests deeper than 32"),
                ("start", {"raw": b"[" * 1100 + b"]" * 1100}, "the body is not valid JSON"),
                ("start", {"raw": b"[1, 2]"}, "the body must be a JSON object"),
                ("reset", {"query": "?timeout=1e999"}, "timeout must be a number > 0 and <= 600"),
                ("reset", {"query": "?timeout=nan"}, "timeout must be a number > 0 and <= 600"),
                ("reset", {"query": "?timeout=601"}, "timeout must be a number > 0 and <= 600"),
                ("reset", {"query": "?timeout=soon"}, "timeout must be a number, not 'soon'"),
                # PostgreSQL's text cannot hold U+0000: refused on both databases.
                ("start", {"raw": b'{"tag": "A\\u0000"}'}, "holds the character U+0000"),
                ("reset", {"query": "?timeout=1&x=%00"}, "the URL holds the character U+0000"),
            ]
            for command, how, message in refused_requests:
                status, answer = await post(command, **how)
                assert status == 400, (command, how, answer)
                assert message in answer["error"], answer
            status, answer = await post("data-transfer", raw=b'{"vendor": "' + b"v" * 5000 + b'"}')
            assert status == 413, answer

            for path in ("/chargers/CP%00X", "/transactions?charger=%00", "/tokens/A%00"):
                async with http.get(f"{base}{path}", headers=AUTH) as response:
                    assert response.status == 400, path
                    assert "U+0000" in (await response.json())["error"]

            for limit in ("9223372036854775808", "0", "-1", "ten"):
                async with http.get(f"{base}/commands?limit={limit}", headers=AUTH) as response:
                    assert response.status == 400
                    assert "limit must be" in (await response.json())["error"]

            # Nothing reached the charger; valid commands still work.
            status, answer = await post(
                "firmware",
                {"location": "https://fw.example/2.bin", "retrieve": "9999-12-31T23:59:59Z"},
            )
            assert status == 200 and answer["outcome"] == "accepted", answer
            async with http.get(f"{base}/commands?limit=100", headers=AUTH) as response:
                history = await response.json()
    sent = [e for e in history if e["outcome"] != "invalid"]
    assert [(e["command"], e["params"]["retrieve"]) for e in sent] == [
        ("firmware", "9999-12-31T23:59:59Z")
    ]
    invalid = [e for e in history if e["outcome"] == "invalid"]
    assert len(invalid) == len(refused_commands)
    assert not [e for e in logs if e["event"] == "api_request_failed"]
    assert not [e for e in logs if e.get("log_level") in ("error", "critical")]
