"""A mail server that takes messages and keeps them (enough SMTP for smtplib: EHLO, MAIL,
RCPT, DATA, QUIT), for tests of the receipts the CSMS e-mails."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from email.message import Message


class FakeSmtp:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        sender, recipients = "", list[str]()
        await say("220 fake ESMTP")
        try:
            while line := await reader.readline():
                command = line.decode().strip()
                verb = command[:4].upper()
                if verb in ("EHLO", "HELO"):
                    await say("250 fake")
                elif verb == "MAIL":
                    sender, recipients = command.partition(":")[2].strip(" <>"), []
                    await say("250 OK")
                elif verb == "RCPT":
                    recipients.append(command.partition(":")[2].strip(" <>"))
                    await say("250 OK")
                elif verb == "DATA":
                    await say("354 go on")
                    data = b""
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    self.messages.append((sender, recipients, message_from_bytes(data)))
                    await say("250 kept")
                elif verb == "QUIT":
                    await say("221 bye")
                    break
                else:
                    await say("250 OK")
        finally:
            writer.close()
