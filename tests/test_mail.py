"""The outbox: written with the change that causes it, delivered over real SMTP on loopback."""

from __future__ import annotations

import socket
from datetime import timedelta
from email import message_from_bytes

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from magazine.clock import shifted
from magazine.db import db
from magazine.mail import Mail, SmtpSettings, deliver_outbox, queue_mail, queue_mails, retry_delay
from magazine.models import MailStatus, OutboxMail


class Recorder:
    """An SMTP handler that keeps what it receives; it can refuse the first N messages."""

    def __init__(self, refuse_first: int = 0, refuse_code: str = "451 4.3.0 try again later"):
        self.messages: list[bytes] = []
        self.refusals_left = refuse_first
        self.refuse_code = refuse_code

    async def handle_DATA(self, server, session, envelope):
        if self.refusals_left:
            self.refusals_left -= 1
            return self.refuse_code
        self.messages.append(envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(app, monkeypatch):
    """A real SMTP server on loopback; MAIL_URL points at it for the test."""
    servers = []

    def start(**handler_options) -> Recorder:
        handler = Recorder(**handler_options)
        controller = Controller(handler, hostname="127.0.0.1", port=free_port())
        controller.start()
        servers.append(controller)
        monkeypatch.setitem(app.config, "MAIL_URL", f"smtp://127.0.0.1:{controller.port}")
        return handler

    yield start
    for controller in servers:
        controller.stop()


def queue(app, count=1, prefix="test"):
    with app.test_request_context():
        for number in range(count):
            queue_mail(
                f"lezer{number}@example.org", "reset_password", key=f"{prefix}:{number}",
                locale="nl_BE",
                user=type("U", (), {"name": f"Lezer {number}"})(),
                reset_url="http://localhost/x", valid_minutes=60,
            )
        db.session.commit()


def statuses(app) -> list[tuple[str, int]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(OutboxMail.status, OutboxMail.attempts).order_by(OutboxMail.id)
        ).all()
        return [(status.value, attempts) for status, attempts in rows]


def test_outbox_delivers_each_mail_once_over_smtp(app, smtp_server):
    server = smtp_server()
    queue(app, count=3)
    with app.app_context():
        result = deliver_outbox()
        assert (result.sent, result.retry, result.failed) == (3, 0, 0)
        again = deliver_outbox()
        assert again.sent == 0
    assert len(server.messages) == 3
    message = message_from_bytes(server.messages[0])
    assert message["To"] == "lezer0@example.org"
    assert message["Subject"] == "Kies een nieuw wachtwoord"
    assert message["Message-ID"].endswith("@kinderopvang.example>")
    assert "Dag Lezer 0" in message.get_payload(decode=True).decode()
    assert statuses(app) == [("sent", 1)] * 3


def test_refused_mail_is_retried_later_and_sent_once(app, smtp_server):
    server = smtp_server(refuse_first=1)
    queue(app)
    with app.app_context():
        first = deliver_outbox()
        assert (first.sent, first.retry) == (0, 1)
        assert statuses(app) == [("pending", 1)]
        # Not due yet: nothing happens.
        assert deliver_outbox().sent == 0
        with shifted(retry_delay(1) + timedelta(seconds=1)):
            second = deliver_outbox()
        assert (second.sent, second.retry) == (1, 0)
    assert len(server.messages) == 1
    assert statuses(app) == [("sent", 2)]


def test_permanent_refusal_gives_up_at_once(app, smtp_server):
    smtp_server(refuse_first=1, refuse_code="550 5.1.1 no such mailbox")
    queue(app)
    with app.app_context():
        result = deliver_outbox()
    assert result.failed == 1
    assert statuses(app) == [("failed", 1)]


def test_unreachable_server_leaves_mails_pending(app, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_URL", f"smtp://127.0.0.1:{free_port()}")
    queue(app, count=2)
    with app.app_context():
        result = deliver_outbox()
    assert result.retry == 2
    assert statuses(app) == [("pending", 1), ("pending", 1)]


def test_gives_up_after_the_maximum_attempts(app, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_URL", f"smtp://127.0.0.1:{free_port()}")
    monkeypatch.setitem(app.config, "MAIL_MAX_ATTEMPTS", 2)
    queue(app)
    with app.app_context():
        deliver_outbox()
        with shifted(timedelta(hours=2)):
            result = deliver_outbox()
    assert result.failed == 1
    assert statuses(app) == [("failed", 2)]


def test_without_mail_url_mails_stay_in_the_outbox(app, caplog):
    assert app.config["MAIL_URL"] == ""
    with caplog.at_level("INFO", logger="magazine.mail"):
        queue(app)
    assert "Kies een nieuw wachtwoord" in caplog.text
    with app.app_context():
        result = deliver_outbox()
    assert result.mail_disabled
    assert statuses(app) == [("pending", 0)]


def test_the_same_key_queues_one_mail(app):
    queue(app, prefix="same")
    queue(app, prefix="same")
    assert len(statuses(app)) == 1


def test_several_mails_at_once_look_their_keys_up_together(app):
    user = type("U", (), {"name": "X"})()

    def mail(key: str, to: str = "x@example.org") -> Mail:
        return Mail(to, "reset_password", key, "nl_BE",
                    {"user": user, "reset_url": "u", "valid_minutes": 1})

    with app.test_request_context():
        queue_mail("first@example.org", "reset_password", key="batch-1", user=user,
                   reset_url="u", valid_minutes=1)
        db.session.commit()
        selects: list[str] = []
        sa.event.listen(db.engine, "before_cursor_execute", listener := (
            lambda _c, _cur, sql, *_a: selects.append(sql) if sql.startswith("SELECT")
            else None))
        try:
            rows = queue_mails([mail("batch-1", "other@example.org"), mail("batch-2"),
                                mail("batch-3"), mail("batch-2", "twice@example.org")])
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listener)
        # Queued before: that row; a key given twice: one row.
        assert rows[0].to_address == "first@example.org" and rows[1] is rows[3]
        assert len(selects) == 1
        db.session.commit()
        assert queue_mails([]) == []
        keys = {key for (key,) in db.session.execute(sa.select(OutboxMail.key))}
        assert keys == {"batch-1", "batch-2", "batch-3"}


def test_a_rolled_back_change_leaves_no_mail(app):
    with app.test_request_context():
        queue_mail("x@example.org", "reset_password", key="rolled-back",
                   user=type("U", (), {"name": "X"})(), reset_url="u", valid_minutes=1)
        db.session.rollback()
    assert statuses(app) == []


def test_a_mail_claimed_by_another_sender_is_not_sent_again(app, smtp_server):
    server = smtp_server()
    queue(app)
    with app.app_context():
        # Another sender claimed it a moment ago and is sending it now.
        db.session.execute(sa.update(OutboxMail).values(
            status=MailStatus.SENDING, claimed_at=OutboxMail.created_at))
        db.session.commit()
        assert deliver_outbox().sent == 0
    assert server.messages == []


def test_a_claim_left_by_a_crashed_sender_is_taken_over(app, smtp_server):
    server = smtp_server()
    queue(app)
    with app.app_context():
        db.session.execute(sa.update(OutboxMail).values(
            status=MailStatus.SENDING, claimed_at=OutboxMail.created_at))
        db.session.commit()
        with shifted(timedelta(minutes=11)):
            assert deliver_outbox().sent == 1
    assert len(server.messages) == 1


def test_english_mail_for_an_english_reader(app):
    with app.test_request_context():
        queue_mail("x@example.org", "reset_password", key="en", locale="en",
                   user=type("U", (), {"name": "X"})(), reset_url="u", valid_minutes=1)
        db.session.commit()
        mail = db.session.scalar(sa.select(OutboxMail))
        assert mail.subject == "Choose a new password"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example:2525", ("mail.example", 2525, "plain", "", "")),
        ("smtp+starttls://u%40x:p%3Aw@mail.example",
         ("mail.example", 587, "starttls", "u@x", "p:w")),
        ("smtps://u:p@mail.example", ("mail.example", 465, "ssl", "u", "p")),
    ],
)
def test_mail_url_forms(url, expected):
    settings = SmtpSettings.from_url(url)
    assert (settings.host, settings.port, settings.mode, settings.username,
            settings.password) == expected


def test_bad_mail_url_says_what_is_expected():
    with pytest.raises(ValueError, match="smtp://host:port"):
        SmtpSettings.from_url("http://mail.example")
