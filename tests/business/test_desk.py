"""The desk over HTTP: the page, its period filter, the CSV downloads, the accountant's
export and the reminder action."""

from __future__ import annotations

from datetime import timedelta

import pytest

from magazine.clock import frozen
from magazine.roles import Role
from tests.business.fixture import NOW, build_history


@pytest.fixture
def history(app):
    with app.app_context(), frozen(NOW):
        yield build_history()


@pytest.fixture
def coordinator(login_as):
    return login_as(Role.COORDINATOR)


def test_desk_shows_the_figures_charts_and_definitions(history, coordinator):
    with frozen(NOW):
        page = coordinator.get("/business/?start=2026-01&end=2026-04").get_data(as_text=True)
    assert "2026-01 – 2026-04" in page
    assert page.count("<svg") == 3 and page.count("<title id=") == 3
    assert page.count("<details") >= 10  # every figure's definition, one click away
    assert "€ 41,66" in page or "41,66" in page  # MRR 4166 cents
    assert "heat-10" in page  # the cohort table's full cohort
    assert 'type="month"' in page


def test_a_past_period_shows_its_figures_at_its_end(history, coordinator):
    with frozen(NOW):
        page = coordinator.get("/business/?start=2026-01&end=2026-03").get_data(as_text=True)
        csv = coordinator.get("/business/export/by-plan.csv?start=2026-01&end=2026-03")
    now = page[page.index('id="now"'):page.index('id="today"')]
    assert "44,41" in now and "41,66" not in now  # MRR at the end of March
    assert "31 maart 2026" in now or "2026-03-31" in now
    lines = csv.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[1:3] == ["Individueel;2;3;5,11", "Organisatie;2;10;39,30"]


def test_a_wrong_period_says_so_next_to_the_field_and_shows_the_default(history, coordinator):
    with frozen(NOW):
        response = coordinator.get("/business/?start=2026-05&end=2026-01")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "The period ends before it starts." in page or "eindigt voor" in page
    assert "2025-05 – 2026-04" in page


def test_every_table_downloads_as_csv(history, coordinator):
    with frozen(NOW):
        response = coordinator.get("/business/export/by-plan.csv?start=2026-01&end=2026-04")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[1:] == ["Individueel;3;4;10,22", "Organisatie;2;8;31,44", "totaal;5;12;41,66"] \
        or lines[1:] == ["Individueel;3;4;10,22", "Organisatie;2;8;31,44", "total;5;12;41,66"]
    with frozen(NOW):
        revenue = coordinator.get("/business/export/revenue.csv?start=2026-01&end=2026-04")
    rows = revenue.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert rows[2] == "2026-02;400,00;10,00;0,00;390,00;22,07;367,93"
    for name in ("by-kind", "by-status", "by-country", "print-run", "movements",
                 "revenue-by-provider", "revenue-by-plan", "issues", "ageing", "unpaid",
                 "renewals", "cohorts"):
        with frozen(NOW):
            assert coordinator.get(f"/business/export/{name}.csv").status_code == 200, name
    assert coordinator.get("/business/export/nothing.csv").status_code == 404


def test_accountant_export_lists_invoices_and_credit_notes_with_vat(history, coordinator):
    with frozen(NOW):
        response = coordinator.get("/business/export/accounting.csv?start=2026-04&end=2026-04")
    rows = [line.split(";") for line in
            response.get_data(as_text=True).lstrip("\ufeff").splitlines()]
    invoices = [row for row in rows[1:] if row[1].startswith("2026-")]
    notes = [row for row in rows[1:] if row[1].startswith("CN")]
    # April: H's renewal, C and G are invoiced; G gets a credit note.
    assert len(invoices) == 3 and len(notes) == 1
    h2 = next(row for row in invoices if row[1] == history.invoices["H2"].number)
    assert h2[2:] == ["2026-04-01", "Klant H", "", "", "6%", "141,51", "8,49", "150,00", "",
                      f"B{history.orders['H2'].id:06d}", "bank_transfer", "2026-04-02"]
    assert notes[0][1:] == ["CN2026-000001", "2026-04-02", "Klant G", "", "", "6%", "-14,15",
                            "-0,85", "-15,00", history.invoices["G"].number,
                            f"B{history.orders['G'].id:06d}", "", ""]


def test_reminder_goes_once_per_invoice_per_day(app, history, coordinator, outbox):
    invoice_id = history.invoices["F"].id
    with frozen(NOW):
        first = coordinator.post(f"/business/invoices/{invoice_id}/remind")
        coordinator.post(f"/business/invoices/{invoice_id}/remind")
    assert first.status_code == 302 and first.headers["Location"].endswith("#unpaid")
    mails = outbox("f@example.be")
    assert len(mails) == 1
    invoice, order = history.invoices["F"], history.orders["F"]
    assert mails[0].template == "business_invoice_reminder"
    assert mails[0].key == f"invoice-reminder:{invoice_id}:1"
    assert mails[0].subject == f"Herinnering: factuur {invoice.number} is nog niet betaald"
    body = mails[0].body_text
    for text in (f"Factuur: {invoice.number}", "Nog te betalen:", "65,00",
                 "Vervaldag: 4 februari 2026",
                 order.formatted_communication, app.config["BANK_IBAN"],
                 f"/account/orders/{order.id}"):
        assert text in body, text
    with frozen(NOW + timedelta(days=1)):
        coordinator.post(f"/business/invoices/{invoice_id}/remind")
    mails = outbox("f@example.be")
    assert len(mails) == 2
    assert {mail.key for mail in mails} == {f"invoice-reminder:{invoice_id}:1",
                                            f"invoice-reminder:{invoice_id}:2"}
    assert any(mail.subject.startswith("2e herinnering") for mail in mails)


def test_reminder_mail_shows_what_is_left_after_a_credit_note(app, history, coordinator,
                                                              outbox):
    with frozen(NOW):
        coordinator.post(f"/business/invoices/{history.invoices['G'].id}/remind")
    (mail,) = outbox("g@example.be")
    assert "50,00" in mail.body_text  # 65,00 invoiced, 15,00 credited


def test_no_reminder_for_a_paid_invoice(history, coordinator, outbox):
    with frozen(NOW):
        response = coordinator.post(
            f"/business/invoices/{history.invoices['A'].id}/remind", follow_redirects=True)
    assert response.status_code == 200
    assert outbox("a@example.be") == []


def test_reminder_for_a_missing_invoice_is_404(history, coordinator):
    assert coordinator.post("/business/invoices/99999/remind").status_code == 404


def test_only_coordinator_and_admin_see_the_desk(history, login_as):
    """(Anonymous visitors: see the access table.)"""
    for role in (Role.COORDINATOR, Role.ADMIN):
        assert login_as(role).get("/business/").status_code == 200
    for role in (Role.SUBSCRIBER, Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER):
        assert login_as(role).get("/business/export/accounting.csv").status_code == 403
