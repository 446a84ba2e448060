"""Importing a camt.053 bank statement records the transfers that pay an order, once."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from magazine.db import db
from magazine.roles import Role
from subscriptions.models import Order, Payment
from subscriptions.statements import StatementError, find_communication, parse_camt053
from subscriptions.states import OrderState, PaymentState
from tests.factories import make_user
from tests.subscriptions.factories import make_plan, place

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


def entry(amount: str, *, ref: str = "", ustrd: str = "", credit: bool = True,
          bank_ref: str = "", payer: str = "De Rups vzw", day: str = "2026-11-20") -> str:
    strd = (f"<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>BBA</Issr>"
            f"</Tp><Ref>{ref}</Ref></CdtrRefInf></Strd>") if ref else ""
    free = f"<Ustrd>{ustrd}</Ustrd>" if ustrd else ""
    direction = "CRDT" if credit else "DBIT"
    return f"""<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{direction}</CdtDbtInd>
      <Sts>BOOK</Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>
      {f"<AcctSvcrRef>{bank_ref}</AcctSvcrRef>" if bank_ref else ""}
      <NtryDtls><TxDtls><RltdPties><Dbtr><Nm>{payer}</Nm></Dbtr></RltdPties>
      <RmtInf>{free}{strd}</RmtInf></TxDtls></NtryDtls></Ntry>"""


def statement(*entries: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{NS}"><BkToCstmrStmt><GrpHdr><MsgId>1</MsgId></GrpHdr>
<Stmt><Id>1</Id><Acct><Id><IBAN>BE71096123456769</IBAN></Id></Acct>
{"".join(entries)}</Stmt></BkToCstmrStmt></Document>""".encode()


def test_parser_reads_amount_direction_date_and_communication():
    [first, second, third] = parse_camt053(statement(
        entry("275.00", ref="859373712812", bank_ref="B1"),
        entry("65.00", ustrd="abonnement +++859/3737/12812+++ dank je"),
        entry("12.30", credit=False, ustrd="kantoorgerief"),
    ))
    assert (first.amount_cents, first.credit, first.communication, first.reference) == (
        27500, True, "859373712812", "B1")
    assert first.booked_on.isoformat() == "2026-11-20" and first.payer == "De Rups vzw"
    assert second.communication == "859373712812" and second.reference.startswith("sha1:")
    assert third.credit is False and third.communication == ""


def test_only_valid_check_digits_count_as_a_communication():
    assert find_communication("+++859/3737/12813+++") == ""  # wrong check digits
    assert find_communication("rekening BE71096123456769") == ""


@pytest.mark.parametrize("data", [
    b"not xml at all",
    b"<Document/>",
    b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]><Document>&a;</Document>',
])
def test_parser_refuses_what_is_not_a_statement(data):
    with pytest.raises(StatementError):
        parse_camt053(data)


def test_import_records_matching_transfers_once_and_lists_the_rest(app, login_as):
    with app.app_context():
        plan = make_plan(price_cents=6500)
        paid = place(plan, make_user())
        short = place(plan, make_user())
        expired = place(plan, make_user())
        from subscriptions import services

        services.close_unpaid_order(expired, to=OrderState.EXPIRED, actor=None, reason="x")
        db.session.commit()
        ids = (paid.id, short.id, expired.id)
        data = statement(
            entry("65.00", ref=paid.structured_communication, bank_ref="B1"),
            entry("60.00", ref=short.structured_communication, bank_ref="B2"),
            entry("65.00", ref=expired.structured_communication, bank_ref="B3"),
            entry("65.00", ref="000000004242", bank_ref="B4"),
            entry("10.00", ustrd="gift zonder mededeling", bank_ref="B5"),
        )
    client = login_as(Role.COORDINATOR)
    page = client.get("/business/subscriptions/bank-statement")
    assert page.status_code == 200
    response = client.post("/business/subscriptions/bank-statement", data={
        "statement": (io.BytesIO(data), "statement.xml")},
        content_type="multipart/form-data")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "ander bedrag" in text and "geen bestelling met deze gestructureerde mededeling" in text
    assert "bestelling vervallen of geannuleerd" in text
    with app.app_context():
        order = db.session.get(Order, ids[0])
        assert order.state == OrderState.PAID
        [payment] = [p for p in order.payments if p.state == PaymentState.PAID]
        assert payment.provider_ref == "B1" and payment.received_on.isoformat() == "2026-11-20"
        assert db.session.get(Order, ids[1]).state == OrderState.AWAITING_PAYMENT
    again = client.post("/business/subscriptions/bank-statement", data={
        "statement": (io.BytesIO(data), "statement.xml")},
        content_type="multipart/form-data")
    assert "al eerder geregistreerd" in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Payment).where(
            Payment.state == PaymentState.PAID)) == 1


def test_import_refuses_a_file_that_is_not_a_statement(app, login_as):
    client = login_as(Role.COORDINATOR)
    response = client.post("/business/subscriptions/bank-statement", data={
        "statement": (io.BytesIO(b"<html></html>"), "statement.xml")},
        content_type="multipart/form-data")
    assert response.status_code == 400
    assert "geen rekeninguittreksel in camt.053-formaat" in response.get_data(as_text=True)
    response = client.post("/business/subscriptions/bank-statement", data={
        "statement": (io.BytesIO(b"x"), "statement.pdf")}, content_type="multipart/form-data")
    assert response.status_code == 400
