"""A tiny SMTP server on 127.0.0.1 for tests (Python's stdlib no longer has one, and aiosmtpd is not a
dependency). It speaks enough of RFC 5321 for smtplib: EHLO/HELO, MAIL, RCPT, DATA with
dot-unstuffing, RSET, NOOP, QUIT. `temporary_failures` answers the first N DATA commands with 451.

    with SmtpServer() as server:
        send_smtp(message, server.url)
        server.messages[0].envelope_to, server.messages[0].data
"""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser


@dataclass
class Received:
    envelope_from: str
    envelope_to: list[str]
    data: bytes

    @property
    def message(self):
        return BytesParser(policy=policy.default).parsebytes(self.data)


@dataclass
class _State:
    messages: list[Received] = field(default_factory=list)
    temporary_failures: int = 0
    commands: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(socketserver.StreamRequestHandler):
    state: _State

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self.reply("220 fake-smtp ESMTP ready")
        sender, recipients = None, []
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            with self.state.lock:
                self.state.commands.append(verb)
            if verb == "EHLO":
                self.reply("250-fake-smtp")
                self.reply("250-8BITMIME")
                self.reply("250 SMTPUTF8")
            elif verb == "HELO":
                self.reply("250 fake-smtp")
            elif verb == "MAIL":
                sender, recipients = line.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                if sender is None or not recipients:
                    self.reply("503 need MAIL and RCPT first")
                    continue
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while True:
                    data_line = self.rfile.readline(1 << 20)
                    if not data_line or data_line in (b".\r\n", b".\n"):
                        break
                    lines.append(data_line[1:] if data_line.startswith(b"..") else data_line)
                with self.state.lock:
                    fail = self.state.temporary_failures > 0
                    if fail:
                        self.state.temporary_failures -= 1
                    else:
                        self.state.messages.append(Received(sender, recipients, b"".join(lines)))
                self.reply("451 try again later" if fail else "250 OK queued")
                sender, recipients = None, []
            elif verb == "RSET":
                sender, recipients = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 command not implemented")


class SmtpServer:
    def __init__(self, temporary_failures: int = 0):
        self.state = _State(temporary_failures=temporary_failures)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.server.server_address[1]}"

    @property
    def messages(self) -> list[Received]:
        return self.state.messages

    def __enter__(self) -> "SmtpServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
