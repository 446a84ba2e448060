"""Bank statements (camt.053 and CODA): read, matched to open invoices by structured
communication and amount, imported once, refused whole when broken; the rest matched by
hand. The sample files are ours: tests/subscriptions/statements/make_samples.py."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from magazine.db import db
from magazine.errors import DomainError
from magazine.models import AuditEvent
from magazine.roles import Role
from subscriptions import reconciliation, services
from subscriptions.bank_models import BANK_ENTRY_TRANSITIONS, BankEntry, BankEntryState
from subscriptions.models import Order, Payment, Subscription
from subscriptions.statements import (
    CAMT053,
    CODA,
    StatementError,
    StatementProblems,
    detect_format,
    find_communication,
    parse_camt053,
    parse_coda,
    parse_statement,
)
from subscriptions.states import OrderState, PaymentState, SubscriptionState
from tests.factories import make_user
from tests.subscriptions.factories import make_plan, place

SAMPLES = Path(__file__).parent / "statements"
URL = "/business/subscriptions/bank-statement"

EXACT, PARTLY, OVER = "100000010138", "100000020242", "100000030346"
UNKNOWN, TYPED, CLOSED = "100000040450", "100000050554", "100000060658"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# ---------------------------------------------------------------- parsing

def test_format_is_told_from_the_content_not_the_name():
    assert detect_format(sample("camt053_day1.xml")) == CAMT053
    assert detect_format(b"\xef\xbb\xbf\n" + sample("camt053_day1.xml")) == CAMT053
    assert detect_format(sample("coda_day1.cod")) == CODA
    for data in (b"", b"%PDF-1.4", b"Datum;Bedrag\n20/11;65,00", b"0000"):
        with pytest.raises(StatementError):
            detect_format(data)


def test_camt_entries_with_reference_amount_direction_and_communication():
    statement = parse_camt053(sample("camt053_day1.xml"))
    assert statement.account == "BE71096123456769"
    assert statement.skipped == 1  # the pending entry
    entries = {e.reference: e for e in statement.entries}
    first = entries["2026112000001"]
    assert (first.amount_cents, first.credit, first.communication, first.position) == (
        6500, True, EXACT, 1)
    assert first.payer == "Sofie Peeters" and first.payer_account == "BE68539007547034"
    assert first.booked_on.isoformat() == "2026-11-20"
    assert entries["2026112000005"].communication == TYPED  # typed as free text
    assert entries["2026112000007"].communication == ""
    assert entries["2026112000008"].credit is False


def test_coda_movements_with_reference_amount_direction_and_communication():
    statement = parse_coda(sample("coda_day1.cod"))
    assert statement.account == "BE71096123456769"
    assert statement.statement_ref == "2026/231"
    by_position = {e.position: e for e in statement.entries}
    first = statement.entries[0]
    assert (first.reference, first.amount_cents, first.credit, first.communication) == (
        "EPIB00001AWIUBTK001/0000", 6500, True, EXACT)
    assert first.payer == "SOFIE PEETERS" and first.payer_account == "BE68539007547034"
    assert first.booked_on.isoformat() == "2026-11-20"
    assert [e.communication for e in statement.entries][:4] == [EXACT, PARTLY, OVER, UNKNOWN]
    typed = statement.entries[4]
    assert typed.communication == TYPED and "abonnement" in typed.text
    no_reference = statement.entries[6]  # no bank reference: statement + sequence
    assert no_reference.reference == "2026/231/0007/0000"
    assert statement.entries[7].credit is False
    assert len(by_position) == 8


def test_only_valid_check_digits_count_as_a_communication():
    assert find_communication("+++100/0000/10138+++") == EXACT
    assert find_communication("+++100/0000/10139+++") == ""  # wrong check digits
    assert find_communication("rekening BE71096123456769") == ""


def test_half_good_files_list_every_bad_entry_with_its_number():
    with pytest.raises(StatementProblems) as camt_error:
        parse_statement(sample("camt053_half_bad.xml"))
    assert [(p.kind, p.number) for p in camt_error.value.problems] == [
        ("entry", 2), ("entry", 3)]
    with pytest.raises(StatementProblems) as coda_error:
        parse_statement(sample("coda_half_bad.cod"))
    assert [(p.kind, p.number) for p in coda_error.value.problems] == [
        ("line", 6), ("line", 9)]


@pytest.mark.parametrize("data", [
    sample("camt053_malformed.xml"),
    sample("coda_malformed.cod"),
    b"not a statement at all",
    b"<Document/>",
    b"<html><body>camt.053</body></html>",
    b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]><Document>&a;</Document>',
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&x;</Document>',
    b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"></Document>',
    sample("coda_day1.cod")[:129],
    sample("coda_day1.cod").replace(b"\r\n2", b"\r\n2" + b"x" * 10, 1),
])
def test_broken_files_are_refused(data):
    with pytest.raises((StatementError, StatementProblems)):
        parse_statement(data)


def test_bank_entry_transitions_whole():
    assert {
        BankEntryState.UNMATCHED: {BankEntryState.MATCHED, BankEntryState.IGNORED},
        BankEntryState.MATCHED: set(),
        BankEntryState.IGNORED: {BankEntryState.UNMATCHED},
    } == BANK_ENTRY_TRANSITIONS
    assert set(BANK_ENTRY_TRANSITIONS) == set(BankEntryState)


# ---------------------------------------------------------------- import

def _orders() -> dict[str, int]:
    """Open orders carrying the samples' communications (and one expired)."""
    plan = make_plan(price_cents=6500)
    big = make_plan(price_cents=27500)
    ids = {}
    for key, communication, chosen in [
        ("exact", EXACT, plan), ("partly", PARTLY, plan), ("over", OVER, plan),
        ("typed", TYPED, big), ("closed", CLOSED, plan), ("rups", "100000070762", plan),
    ]:
        buyer = make_user(name="Kinderdagverblijf De Rups" if key == "rups" else None)
        order = place(chosen, buyer)
        order.structured_communication = communication
        ids[key] = order.id
    db.session.commit()
    services.close_unpaid_order(db.session.get(Order, ids["closed"]), to=OrderState.EXPIRED,
                                actor=None, reason="test")
    db.session.commit()
    return ids


def _upload(client, data: bytes, name: str = "statement"):
    return client.post(URL, data={"statement": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def _state(ids: dict[str, int]) -> dict[str, OrderState]:
    return {key: db.session.get(Order, order_id).state for key, order_id in ids.items()}


@pytest.mark.parametrize("day1, overlap", [
    ("camt053_day1.xml", "camt053_overlap.xml"),
    ("coda_day1.cod", "coda_overlap.cod"),
])
def test_import_matches_by_communication_and_amount_once(app, login_as, day1, overlap):
    with app.app_context():
        ids = _orders()
    client = login_as(Role.COORDINATOR)
    response = _upload(client, sample(day1), "export.bin")  # the name says nothing
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="statement-result"' in page
    with app.app_context():
        states = _state(ids)
        assert states == {"exact": OrderState.PAID, "partly": OrderState.AWAITING_PAYMENT,
                          "over": OrderState.PAID, "typed": OrderState.PAID,
                          "closed": OrderState.EXPIRED, "rups": OrderState.AWAITING_PAYMENT}
        exact = db.session.get(Order, ids["exact"])
        [payment] = [p for p in exact.payments if p.state == PaymentState.PAID]
        assert payment.provider == "bank_transfer" and payment.amount_cents == 6500
        assert payment.received_on.isoformat() == "2026-11-20"
        assert exact.subscriptions[0].state == SubscriptionState.ACTIVE
        partly = db.session.get(Order, ids["partly"])
        assert reconciliation.amount_due(partly) == 2500
        assert partly.subscriptions[0].state == SubscriptionState.PENDING_PAYMENT
        [over] = reconciliation.open_surpluses()
        assert (over.order_id, over.applied_cents, over.surplus_cents) == (ids["over"], 6500,
                                                                          1000)
        unmatched = {e.reason for e in reconciliation.unmatched_entries()}
        assert unmatched == {"unknown_communication", "order_closed", "no_communication"}
        counts = db.session.scalar(sa.select(sa.func.count()).select_from(BankEntry))
        assert counts == 7  # the credits; the debit and the pending entry are left out
        events = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "bank_statement.imported"))
        assert events == 1

    # The same file again: nothing changes.
    again = _upload(client, sample(day1))
    assert again.status_code == 200
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BankEntry)) == 7
        assert _state(ids) == states
        paid = db.session.scalar(sa.select(sa.func.count()).select_from(Payment).where(
            Payment.state == PaymentState.PAID))
        assert paid == 3

    # An overlapping statement: only the new transfer counts; it completes the partial one.
    _upload(client, sample(overlap))
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BankEntry)) == 8
        partly = db.session.get(Order, ids["partly"])
        assert partly.state == OrderState.PAID
        assert [p.amount_cents for p in partly.payments if p.state == PaymentState.PAID] == [
            6500]
        assert partly.subscriptions[0].state == SubscriptionState.ACTIVE
        assert reconciliation.partly_paid_orders() == []


@pytest.mark.parametrize("name", ["camt053_half_bad.xml", "coda_half_bad.cod"])
def test_a_half_good_file_imports_nothing_and_lists_the_bad_entries(app, login_as, name):
    with app.app_context():
        ids = _orders()
    client = login_as(Role.COORDINATOR)
    response = _upload(client, sample(name))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="statement-problems"' in page and "field-error" in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BankEntry)) == 0
        assert _state(ids)["exact"] == OrderState.AWAITING_PAYMENT


@pytest.mark.parametrize("data", [
    sample("camt053_malformed.xml"), sample("coda_malformed.cod"), b"%PDF-1.4 nope",
    b"", b"\x00\xff" * 300, "0000 Ω".encode(),
])
def test_a_malformed_or_unknown_file_gets_a_message_at_the_field(app, login_as, data):
    client = login_as(Role.COORDINATOR)
    response = _upload(client, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="statement-error"' in page or "statement-error" in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BankEntry)) == 0


def test_partial_payments_add_up_by_hand_and_surplus_is_settled(app, login_as):
    with app.app_context():
        ids = _orders()
    client = login_as(Role.COORDINATOR)
    _upload(client, sample("camt053_day1.xml"))
    with app.app_context():
        rups = db.session.scalar(sa.select(BankEntry).where(
            BankEntry.payer_name == "Kinderdagverblijf De Rups"))
        unknown = db.session.scalar(sa.select(BankEntry).where(
            BankEntry.communication == UNKNOWN))
        over = reconciliation.open_surpluses()[0]
        rups_id, unknown_id, over_id = rups.id, unknown.id, over.id
        # The payer's name finds the order; so does the amount.
        assert [c.order.id for c in reconciliation.suggestions_for(rups)].count(
            ids["rups"]) == 1
        assert ids["rups"] in [c.order.id for c in
                               reconciliation.search_open_invoices("de rups")]
        assert ids["rups"] in [c.order.id for c in
                               reconciliation.search_open_invoices("65,00")]
        assert ids["partly"] in [c.order.id for c in
                                 reconciliation.search_open_invoices("€ 25")]
        assert ids["exact"] not in [c.order.id for c in
                                    reconciliation.search_open_invoices("65")]

    page = client.get(f"/business/subscriptions/bank-entries/{rups_id}?q=rups")
    assert page.status_code == 200 and 'id="candidates"' in page.get_data(as_text=True)
    assert client.get("/business/subscriptions/bank-entries").status_code == 200

    # Link the unknown transfer (65.00) to the partly paid order (25.00 due): paid, 40.00
    # too much.
    response = client.post(f"/business/subscriptions/bank-entries/{unknown_id}/link",
                           data={"order_id": ids["partly"]})
    assert response.status_code == 302
    # Linking it again (a second click) changes nothing.
    client.post(f"/business/subscriptions/bank-entries/{unknown_id}/link",
                data={"order_id": ids["rups"]})
    with app.app_context():
        entry = db.session.get(BankEntry, unknown_id)
        assert (entry.state, entry.order_id, entry.applied_cents, entry.surplus_cents) == (
            BankEntryState.MATCHED, ids["partly"], 2500, 4000)
        assert db.session.get(Order, ids["partly"]).state == OrderState.PAID
        assert db.session.get(Order, ids["rups"]).state == OrderState.AWAITING_PAYMENT

    # Settle a surplus: with a note only, once.
    url = f"/business/subscriptions/bank-entries/{over_id}/surplus"
    client.post(url, data={"note": ""})
    with app.app_context():
        assert db.session.get(BankEntry, over_id).surplus_settled_at is None
    client.post(url, data={"note": "teruggestort op 2 december"})
    client.post(url, data={"note": "nog eens"})
    with app.app_context():
        settled = db.session.get(BankEntry, over_id)
        assert settled.surplus_settled_at is not None
        assert settled.note == "teruggestort op 2 december"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "bank_entry.surplus_settled")) == 1

    # Not ours: set aside with a note, and back.
    url = f"/business/subscriptions/bank-entries/{rups_id}"
    client.post(url + "/ignore", data={"note": ""})
    with app.app_context():
        assert db.session.get(BankEntry, rups_id).state == BankEntryState.UNMATCHED
    client.post(url + "/ignore", data={"note": "gift"})
    with app.app_context():
        assert db.session.get(BankEntry, rups_id).state == BankEntryState.IGNORED
    client.post(url + "/restore")
    client.post(url + "/link", data={"order_id": ids["rups"]})
    with app.app_context():
        assert db.session.get(BankEntry, rups_id).state == BankEntryState.MATCHED
        assert db.session.get(Order, ids["rups"]).state == OrderState.PAID
        actions = set(db.session.scalars(sa.select(AuditEvent.action).where(
            AuditEvent.object_type == "bank_entry")))
        assert {"bank_entry.matched", "bank_entry.ignored", "bank_entry.unmatched",
                "bank_entry.surplus_settled"} <= actions


def test_a_partial_link_by_hand_leaves_the_order_open(app, login_as):
    with app.app_context():
        ids = _orders()
    client = login_as(Role.COORDINATOR)
    _upload(client, sample("coda_day1.cod"))
    with app.app_context():
        entry = db.session.scalar(sa.select(BankEntry).where(
            BankEntry.payer_name == "KINDERDAGVERBLIJF DE RUPS"))
        entry_id = entry.id
    # 65.00 towards the 275.00 order... which is paid already by the typed communication:
    # refused, the transfer stays on the list.
    client.post(f"/business/subscriptions/bank-entries/{entry_id}/link",
                data={"order_id": ids["typed"]})
    with app.app_context():
        assert db.session.get(BankEntry, entry_id).state == BankEntryState.UNMATCHED
        big = make_plan(price_cents=10000)
        order = place(big, make_user())
        order_id = order.id
    client.post(f"/business/subscriptions/bank-entries/{entry_id}/link",
                data={"order_id": order_id})
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert order.state == OrderState.AWAITING_PAYMENT
        assert reconciliation.amount_due(order) == 3500
        assert [(o.id, received, due) for o, received, due
                in reconciliation.partly_paid_orders()] == [
            (ids["partly"], 4000, 2500), (order_id, 6500, 3500)]
        [subscription] = db.session.scalars(sa.select(Subscription).where(
            Subscription.order_id == order_id)).all()
        assert subscription.state == SubscriptionState.PENDING_PAYMENT
    page = client.get(f"/business/subscriptions/orders/{order_id}?lang=en")
    assert 'id="order-bank-entries"' in page.get_data(as_text=True)


def test_subscribers_cannot_import_or_match(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    assert _upload(client, sample("camt053_day1.xml")).status_code == 403
    assert client.get("/business/subscriptions/bank-entries").status_code == 403


# ---------------------------------------------------------------- hostile input

def _coda_with(changes: dict[tuple[int, int], str]) -> bytes:
    """The day-1 CODA sample with one field of its first movement (line 3) replaced."""
    lines = sample("coda_day1.cod").decode().split("\r\n")
    line = lines[2]
    for (start, end), value in changes.items():
        line = line[:start] + value.ljust(end - start)[: end - start] + line[end:]
    lines[2] = line
    return "\r\n".join(lines).encode("latin-1")


HOSTILE = [
    _coda_with({(32, 47): "999999999999990"}),                    # a billion euro
    sample("coda_day1.cod").replace(b"SOFIE PEETERS", b"SOFIE\x00PEETERS"),
    sample("camt053_day1.xml").replace(b">65.00<", b">1E+30<", 1),
    sample("camt053_day1.xml").replace(b">65.00<", b">NaN<", 1),
    sample("camt053_day1.xml").replace(b">65.00<", b">-65.00<", 1),
    sample("camt053_day1.xml").replace(b"2026-11-20", b"2026-13-45", 1),
    sample("coda_day1.cod").split(b"\r\n", 1)[0] + b"\r\n" + b"21" * 5000,
    b"\r\n".join([*sample("coda_day1.cod").split(b"\r\n")[:2], *[b"x"] * 5000,
                  *sample("coda_day1.cod").split(b"\r\n")[-3:]]),
    b"<?xml version='1.0'?>" + b"<a>" * 5000 + b"</a>" * 5000,
    sample("camt053_day1.xml").replace(b"BE71096123456769", b"B" * 500, 1),
]


@pytest.mark.parametrize("data", HOSTILE)
def test_hostile_files_never_break_the_page(app, login_as, data):
    client = login_as(Role.COORDINATOR)
    response = _upload(client, data)
    assert response.status_code in (200, 400)
    if response.status_code == 200:  # read and imported: what went in is sane
        with app.app_context():
            for entry in db.session.scalars(sa.select(BankEntry)):
                assert 0 < entry.amount_cents < 10**9 and "\x00" not in entry.payer_name


def test_problems_are_capped_with_a_count():
    with pytest.raises(StatementProblems) as error:
        parse_statement(HOSTILE[7])
    assert error.value.count == 5000 and len(error.value.problems) == 200


def test_random_bytes_only_ever_raise_statement_errors():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    header = sample("coda_day1.cod")[:260]
    camt_head = sample("camt053_day1.xml")[:600]

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from([b"", header, camt_head]), st.binary(max_size=600))
    def check(prefix, tail):
        with contextlib.suppress(StatementError, StatementProblems):
            parse_statement(prefix + tail)

    check()


def test_a_partly_paid_order_is_not_expired_by_the_clock(app, login_as, runner):
    from datetime import timedelta

    from magazine.clock import shifted

    with app.app_context():
        ids = _orders()
    client = login_as(Role.COORDINATOR)
    _upload(client, sample("camt053_day1.xml"))
    with shifted(timedelta(days=60)):
        result = runner.invoke(args=["jobs", "run", "expire-orders"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.get(Order, ids["partly"]).state == OrderState.AWAITING_PAYMENT
        assert db.session.get(Order, ids["rups"]).state == OrderState.EXPIRED


def _samples_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_coda_globalised_movement_yields_its_details_not_the_total():
    samples = _samples_module()
    day, statement = "201126", "231"
    total = samples.movement(1, cents=10500, day=day, statement=statement,
                             free="collective", bank_ref="GLOBAL0001")
    total[0] = total[0][:124] + "1" + total[0][125:]  # globalisation code 1
    details = (samples.movement(1, cents=6500, day=day, statement=statement, detail=1,
                                communication=EXACT, bank_ref="GLOBAL0001")
               + samples.movement(1, cents=4000, day=day, statement=statement, detail=2,
                                  communication=PARTLY, bank_ref="GLOBAL0001"))
    lines = [samples.record0(day), samples.record1(statement, day, 0), *total, *details,
             samples.record8(statement, day, 10500), samples.record9(5, 0, 10500)]
    parsed = parse_coda("\n".join(lines).encode())
    assert [(e.reference, e.amount_cents, e.communication) for e in parsed.entries] == [
        ("GLOBAL0001/0001", 6500, EXACT), ("GLOBAL0001/0002", 4000, PARTLY)]


def test_the_same_statement_imported_at_once_is_recorded_once(app):
    """Four coordinators import the same file at the same moment: every transfer is
    recorded once and each order paid once; the others see "imported before" or are told
    someone imported it at the same moment (never an error page)."""
    from tests.subscriptions.test_concurrency import run_at_once

    with app.app_context():
        ids = _orders()
        coordinator_ids = [make_user(roles={Role.COORDINATOR}).id for _ in range(4)]
    data = sample("camt053_day1.xml")

    def work(i):
        from magazine.models import User

        actor = db.session.get(User, coordinator_ids[i])
        return reconciliation.import_bank_statement(data, actor=actor)

    results = run_at_once(app, work, count=4)
    assert all(isinstance(r, reconciliation.ImportResult | DomainError) for r in results), \
        results
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BankEntry)) == 7
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Payment).where(
            Payment.state == PaymentState.PAID)) == 3
        assert _state(ids)["partly"] == OrderState.AWAITING_PAYMENT
        assert reconciliation.amount_due(db.session.get(Order, ids["partly"])) == 2500
