"""Real loopback servers for delivery tests: a tiny SMTP server (STARTTLS, AUTH PLAIN) and an
HTTP webhook receiver that checks signatures. Both run in threads on 127.0.0.1."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from verifier.notify.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature


def closed_port() -> int:
    """A loopback port with nothing listening on it (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context that trusts only this certificate) for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


@dataclass
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    data: bytes
    tls: bool
    user: str | None


class _SmtpHandler(socketserver.StreamRequestHandler):
    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        server: SmtpServer = self.server.owner
        tls, user, mail_from, recipients = False, None, None, []
        self.reply("220 test ESMTP ready")
        while line := self.rfile.readline():
            verb, _, arg = line.decode().rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                caps = ["250-127.0.0.1"]
                if server.tls_context and not tls:
                    caps.append("250-STARTTLS")
                if server.credentials and (tls or not server.tls_context):
                    caps.append("250-AUTH PLAIN")
                self.reply("\r\n".join([*caps, "250 8BITMIME"]))
            elif verb == "STARTTLS" and server.tls_context and not tls:
                self.reply("220 go ahead")
                self.connection = server.tls_context.wrap_socket(self.connection, server_side=True)
                self.rfile = self.connection.makefile("rb")
                self.wfile = self.connection.makefile("wb")
                tls = True
            elif verb == "AUTH":
                _, _, initial = arg.partition(" ")
                _, name, password = base64.b64decode(initial).decode().split("\0")
                if (name, password) == server.credentials:
                    user = name
                    self.reply("235 authenticated")
                else:
                    self.reply("535 bad credentials")
            elif server.credentials and user is None and verb in ("MAIL", "RCPT", "DATA"):
                self.reply("530 authentication required")
            elif verb == "MAIL":
                mail_from, recipients = arg.partition(":")[2].strip("<> "), []
                self.reply("250 ok")
            elif verb == "RCPT":
                if server.refuse_recipients:
                    self.reply("550 no such user here")
                else:
                    recipients.append(arg.partition(":")[2].strip("<> "))
                    self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                server.received.append(
                    ReceivedMail(mail_from, recipients, b"".join(lines), tls, user)
                )
                self.reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 ok")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class SmtpServer:
    """A real SMTP server on 127.0.0.1 in a thread; `received` holds every accepted message."""

    def __init__(self, tls_context=None, credentials=None, refuse_recipients=False):
        self.tls_context, self.credentials = tls_context, credentials
        self.refuse_recipients = refuse_recipients
        self.received: list[ReceivedMail] = []
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
        self._server.daemon_threads = True
        self._server.owner = self
        self.port = self._server.server_address[1]

    def __enter__(self) -> SmtpServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class ReceivedHook:
    event_id: str
    header_event_id: str
    content_type: str
    signature: str
    body: bytes
    verified: bool
    answered: int = 0


@dataclass
class WebhookReceiver:
    """The shop's side, on 127.0.0.1 in a thread: checks each signature with verify_signature.

    `fail_first` requests are answered `fail_status`; `clock` is the receiver's "now" (tests
    move time forward instead of sleeping); `delay` slows each answer down; `port` picks the
    port (the default 0 takes any free one).
    """

    secret: str
    fail_first: int = 0
    fail_status: int = 500
    delay: float = 0.0
    redirect_to: str | None = None
    clock: dt.datetime | None = None
    port: int = 0  # 0: any free port
    requests: list[ReceivedHook] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.handle(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/verifier"

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        now = self.clock or dt.datetime.now(dt.UTC)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        hook = ReceivedHook(
            event_id=json.loads(body)["id"],
            header_event_id=request.headers.get(EVENT_ID_HEADER, ""),
            content_type=request.headers.get("Content-Type", ""),
            signature=signature,
            body=body,
            verified=verify_signature(self.secret, signature, body, now),
        )
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.requests.append(hook)
            failing = len(self.requests) <= self.fail_first
        if self.redirect_to:
            hook.answered = 307
        elif failing:
            hook.answered = self.fail_status
        else:
            hook.answered = 204 if hook.verified else 400
        request.send_response(hook.answered)
        if self.redirect_to:
            request.send_header("Location", self.redirect_to)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def delivered_ids(self) -> list[str]:
        """Event ids the receiver accepted (2xx), in arrival order."""
        with self.lock:
            return [h.event_id for h in self.requests if 200 <= h.answered < 300]

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
