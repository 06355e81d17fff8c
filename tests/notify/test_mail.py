"""Customer email delivery: MIME shape, file and real SMTP backends, back-off, crash leases,
and several workers claiming at once."""

from __future__ import annotations

import email
import email.policy
import logging
import stat
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.notify_helpers import SmtpServer, closed_port, self_signed_tls
from verifier.core.outbox import queue_email
from verifier.db import new_session
from verifier.models import OutboxEmail
from verifier.notify.mail import (
    DEFAULT_LEASE,
    MAX_EMAIL_ATTEMPTS,
    ClaimedEmail,
    DeliveryReport,
    FileBackend,
    SmtpBackend,
    backend_from_config,
    build_message,
    claim_due_emails,
    deliver_due_emails,
    retry_delay,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LINK = "https://verify.example/c/TOKEN-abcdef0123456789"
FROM = "Demo Shop <no-reply@shop.example>"


def queue(db_session, n: int = 1, *, now: datetime = NOW, to: str = "alice@example.com") -> list:
    rows = [
        queue_email(
            db_session,
            kind="invitation",
            to_address=to,
            subject=f"Please confirm your order A-{i}",
            text_body=f"Hello,\nplease open {LINK}{i}\n",
            html_body=f'<p>Hello, please <a href="{LINK}{i}">open this link</a>.</p>',
            now=now,
        )
        for i in range(n)
    ]
    db_session.commit()
    return [row.id for row in rows]


def fresh(db_session, email_id: int) -> OutboxEmail:
    db_session.rollback()  # end the read snapshot: see what the workers committed
    db_session.expire_all()
    return db_session.get(OutboxEmail, email_id)


def sessions(app):
    return lambda: new_session(app)


class FlakyBackend:
    """Fails while `broken` is set; records what it sent otherwise."""

    def __init__(self, broken: bool = True):
        self.broken, self.sent = broken, []

    def send(self, message):
        if self.broken:
            raise ConnectionRefusedError(111, "Connection refused")
        self.sent.append(message)
        return "memory"


def test_message_is_multipart_alternative_with_stable_message_id():
    claimed = ClaimedEmail(7, "invitation", "alice@example.com", "Confirm your order",
                           "plain words", "<p>html words</p>", NOW, attempt=1)  # fmt: skip
    first = build_message(claimed, FROM, NOW)
    again = build_message(claimed, FROM, NOW + timedelta(minutes=5))
    assert first.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in first.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert first["To"] == "alice@example.com" and first["From"] == FROM
    assert first["Subject"] == "Confirm your order"
    assert first["Date"] == "Mon, 23 Nov 2026 12:00:00 +0000"
    assert first["Message-ID"].endswith("@shop.example>")
    # The same id on a retry lets the receiving side drop a duplicate.
    assert first["Message-ID"] == again["Message-ID"]
    assert "plain words" in first.get_body(("plain",)).get_content()
    assert "html words" in first.get_body(("html",)).get_content()


def test_retry_delay_doubles_from_one_minute_up_to_six_hours():
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert delays[8] == timedelta(minutes=256)
    assert delays[9:] == [timedelta(hours=6)] * 2


def test_file_backend_writes_private_eml_and_logs_no_link(app, db_session, tmp_path, caplog):
    (email_id,) = queue(db_session)
    outbox = tmp_path / "outbox"
    caplog.set_level(logging.INFO, logger="verifier")
    report = deliver_due_emails(sessions(app), FileBackend(outbox), NOW, mail_from=FROM)
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    (path,) = outbox.glob("*.eml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "alice@example.com"
    assert LINK + "0" in message.get_body(("plain",)).get_content()
    row = fresh(db_session, email_id)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, NOW)
    # The link is a bearer token: once sent, the database keeps no copy of it.
    assert (row.text_body, row.html_body) == ("", "")
    assert f"email {email_id} (invitation) sent" in caplog.text
    assert str(path) in caplog.text
    assert "TOKEN" not in caplog.text and "alice@" not in caplog.text
    # Nothing is due any more: a second pass sends nothing.
    assert deliver_due_emails(sessions(app), FileBackend(outbox), NOW).sent == 0


def test_file_backend_is_the_default_and_writes_under_instance(app):
    backend = backend_from_config(app.config)
    assert isinstance(backend, FileBackend)
    assert backend.outbox_dir == app.config["INSTANCE_DIR"] / "outbox"


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "starttls-auth"])
def test_smtp_backend_delivers_to_a_real_server(app, db_session, tmp_path, secure):
    ids = queue(db_session, 2)
    server_tls, client_tls = self_signed_tls(tmp_path) if secure else (None, None)
    credentials = ("mailer", "s3cret-pass") if secure else None
    with SmtpServer(tls_context=server_tls, credentials=credentials) as server:
        backend = SmtpBackend(
            "127.0.0.1", server.port, username=credentials[0] if secure else "",
            password=credentials[1] if secure else "", starttls=secure, timeout=5,
            ssl_context=client_tls,
        )  # fmt: skip
        report = deliver_due_emails(sessions(app), backend, NOW, mail_from=FROM)
    assert report.sent == 2
    assert len(server.received) == 2
    first = server.received[0]
    assert first.recipients == ["alice@example.com"]
    assert first.mail_from == "no-reply@shop.example"
    assert (first.tls, first.user) == ((True, "mailer") if secure else (False, None))
    parsed = email.message_from_bytes(first.data, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [fresh(db_session, i).status for i in ids] == ["sent", "sent"]


def test_refused_connection_is_retried_with_back_off_and_nothing_is_lost(app, db_session):
    (email_id,) = queue(db_session)
    backend = SmtpBackend("127.0.0.1", closed_port(), starttls=False, timeout=5)
    report = deliver_due_emails(sessions(app), backend, NOW, mail_from=FROM)
    assert (report.sent, report.retried) == (0, 1)
    row = fresh(db_session, email_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == NOW + timedelta(minutes=1)
    assert "ConnectionRefusedError" in row.last_error
    # Not due yet: nothing is tried before the back-off ends.
    assert deliver_due_emails(sessions(app), backend, NOW + timedelta(seconds=59)).retried == 0
    later = NOW + timedelta(minutes=1)
    assert deliver_due_emails(sessions(app), backend, later).retried == 1
    assert fresh(db_session, email_id).next_attempt_at == later + timedelta(minutes=2)
    # The server comes back: the same email goes out, once.
    with SmtpServer() as server:
        backend.port = server.port
        report = deliver_due_emails(sessions(app), backend, later + timedelta(minutes=2))
    assert report.sent == 1 and len(server.received) == 1
    row = fresh(db_session, email_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


def test_gives_up_after_max_attempts_and_says_so(app, db_session, caplog):
    (email_id,) = queue(db_session)
    backend, now = FlakyBackend(), NOW
    for _ in range(MAX_EMAIL_ATTEMPTS):
        deliver_due_emails(sessions(app), backend, now)
        row = fresh(db_session, email_id)
        now = row.next_attempt_at if row.status == "pending" else now
    assert (row.status, row.attempts) == ("failed", MAX_EMAIL_ATTEMPTS)
    assert "TOKEN" not in row.text_body + row.html_body
    assert f"email {email_id} (invitation) failed after {MAX_EMAIL_ATTEMPTS}" in caplog.text
    backend.broken = False
    assert deliver_due_emails(sessions(app), backend, now + timedelta(days=1)).sent == 0


def test_recipient_refused_for_good_fails_at_once(app, db_session):
    (email_id,) = queue(db_session, to="nobody@example.com")
    with SmtpServer(refuse_recipients=True) as server:
        backend = SmtpBackend("127.0.0.1", server.port, starttls=False, timeout=5)
        report = deliver_due_emails(sessions(app), backend, NOW)
    assert report.failed == 1
    row = fresh(db_session, email_id)
    assert (row.status, row.attempts) == ("failed", 1)


def test_claim_of_a_crashed_worker_is_retried_after_its_lease(app, db_session):
    (email_id,) = queue(db_session)
    # A worker claims the email and dies before sending it.
    session = new_session(app)
    (stale,) = claim_due_emails(session, NOW, batch=5, lease=DEFAULT_LEASE, report=DeliveryReport())
    session.commit()
    session.close()
    backend = FlakyBackend(broken=False)
    assert deliver_due_emails(sessions(app), backend, NOW + timedelta(minutes=1)).sent == 0
    report = deliver_due_emails(sessions(app), backend, NOW + DEFAULT_LEASE)
    assert report.sent == 1 and len(backend.sent) == 1
    row = fresh(db_session, email_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert stale.attempt == 1


def test_two_workers_at_once_send_each_email_once(app, db_session):
    ids = queue(db_session, 30)
    sent: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    class SlowBackend:
        def send(self, message):
            with lock:
                sent.append(message["Subject"])
            threading.Event().wait(0.005)
            return "memory"

    def work():
        start.wait()
        while deliver_due_emails(sessions(app), SlowBackend(), NOW, batch=4).sent:
            pass

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(sent) == sorted(f"Please confirm your order A-{i}" for i in range(30))
    db_session.rollback()
    statuses = db_session.scalars(select(OutboxEmail.status).where(OutboxEmail.id.in_(ids)))
    assert set(statuses) == {"sent"}


def test_an_invitation_waits_sealed_and_is_opened_only_to_be_sent(
    app, client, auth, db_session, tmp_path
):
    from tests.portal_helpers import create_flagged_order, flag_everything
    from verifier.vault.storage import Keyring

    flag_everything(db_session)
    link = create_flagged_order(client, auth)["case"]["upload_url"]
    stored = db_session.scalar(select(OutboxEmail))
    token = link.rsplit("/", 1)[1]
    # At rest: neither body holds the link's token, not even a piece of it.
    assert token[:16] not in stored.text_body and token[:16] not in stored.html_body
    outbox = tmp_path / "outbox"
    keyring = Keyring.from_config(app.config)
    report = deliver_due_emails(sessions(app), FileBackend(outbox), datetime.now(UTC),
                                mail_from=FROM, keyring=keyring)  # fmt: skip
    assert report.sent == 1
    (path,) = outbox.glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert link in message.get_body(("plain",)).get_content()


def test_a_sealed_body_moved_to_another_row_is_not_sent(app, client, auth, db_session, tmp_path):
    from tests.portal_helpers import create_flagged_order, flag_everything
    from verifier.vault.storage import Keyring

    flag_everything(db_session)
    create_flagged_order(client, auth)
    row = db_session.scalar(select(OutboxEmail))
    row.kind = "reminder"  # the sealed bodies are bound to (case, kind): now they don't open
    db_session.commit()
    report = deliver_due_emails(sessions(app), FileBackend(tmp_path / "out"), datetime.now(UTC),
                                keyring=Keyring.from_config(app.config))  # fmt: skip
    assert (report.sent, report.failed) == (0, 1)
    assert fresh(db_session, row.id).status == "failed"
    assert not list((tmp_path / "out").glob("*.eml"))


def test_a_busy_worker_keeps_its_lease_and_a_dead_one_gives_it_back_within_one_lease(
    app, db_session
):
    from verifier.core.outbox import renewing_claims

    (email_id,) = queue(db_session)
    lease = timedelta(seconds=0.6)
    session = new_session(app)
    (claimed,) = claim_due_emails(session, NOW, batch=5, lease=lease, report=DeliveryReport())
    session.commit()
    session.close()

    def others_claim(at: datetime) -> list:
        with new_session(app) as other:
            found = claim_due_emails(other, at, batch=5, lease=lease, report=DeliveryReport())
            other.commit()
        return found

    # Working on it for several leases (the pass's clock moves with it): nobody else claims it.
    with renewing_claims(sessions(app), OutboxEmail, [(email_id, claimed.attempt)],
                         started=NOW, lease=lease):  # fmt: skip
        threading.Event().wait(1.5)
        assert others_claim(NOW + timedelta(seconds=1.5)) == []
    # The worker stops renewing (killed, here: left the block); one lease on, it is free.
    row = fresh(db_session, email_id)
    assert row.status == "sending"
    renewed_until = row.next_attempt_at.replace(tzinfo=UTC)
    assert NOW + timedelta(seconds=1.0) < renewed_until <= NOW + timedelta(seconds=2.2)
    assert others_claim(renewed_until - timedelta(seconds=0.05)) == []
    (taken,) = others_claim(renewed_until + timedelta(seconds=0.05))
    assert taken.id == email_id and taken.attempt == claimed.attempt + 1
