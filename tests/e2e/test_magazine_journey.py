"""The whole magazine as one story, in Debian's Chromium, on a phone and on a desktop:

1. the board makes an issue: the chief plans issue 7.1, a board member pitches, the chief
   commissions the article, the author writes it, a board member reads it, the chief accepts
   it, it goes through production into the issue's flatplan, and the print package downloads;
2. four subscribers subscribe and pay: an organisation by bank transfer (the coordinator marks
   it paid), a reader by bank transfer found on an imported camt.053 statement, a digital
   reader by card at Stripe (localstripe's hosted page) and a reader by Bancontact at Mollie
   (the fake Mollie's hosted page), both stand-ins driven in the browser as a person would;
3. the issue goes to the printer, is published with its PDF, and the coordinator dispatches
   it and downloads the mailing file; the digital reader's download link works;
4. the coordinator sees the figures move on /business/ (before, after the orders, after the
   payments, after the dispatch).

Every page visited is screenshot to tests/artifacts/journey/<viewport>/NN-name.png, and no
page of ours may be wider than the window (the layout check behind the screenshots).
"""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import sqlalchemy as sa

from editorial.models import Article, Issue, IssueState
from editorial.services import move_article
from editorial.states import PRODUCTION_LINE
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from magazine.models import User
from magazine.roles import Role
from subscriptions.models import Order, PlanKind, ProviderEvent
from tests.conftest import ARTIFACTS, link_in
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.fakes.localstripe import API_KEY as STRIPE_KEY
from tests.fakes.mollie import API_KEY as MOLLIE_KEY
from tests.subscriptions.factories import make_plan

pytestmark = pytest.mark.browser

VIEWPORTS = {
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True,
              "has_touch": True, "device_scale_factor": 1},
    "desktop": {"viewport": {"width": 1366, "height": 900}},
}
WEBHOOK_SECRET = "whsec_magazine_journey"
PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
ARTICLE = """# Buiten spelen in de regen

Regen is geen reden om binnen te blijven. In onze leefgroep trekken de kinderen laarzen en
regenjassen aan en gaan ze plassen zoeken.

## Wat je nodig hebt

Een rek voor natte kleren, een handdoek per kind en ouders die weten dat vuil mag.
"""
CAMT = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"

# What a page of ours must not do on a phone: be wider than the window. Returns the
# offending elements (tag#id.class and width), outermost first; empty when all is well.
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width + 1) return [];
  const found = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.right <= width + 1 || box.width === 0) continue;
    // A scroll box clips what it contains, but not an absolutely positioned descendant
    // whose containing block lies outside it.
    let contained = !/(absolute|fixed)/.test(getComputedStyle(el).position);
    let parent = el.parentElement, clipped = false;
    while (parent && parent !== document.body) {
      const style = getComputedStyle(parent);
      if (style.position !== 'static') contained = true;
      if (contained && /(auto|scroll|hidden|clip)/.test(style.overflowX)) {
        clipped = true; break;
      }
      parent = parent.parentElement;
    }
    if (clipped) continue;
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (typeof el.className === 'string' && el.className ? '.' +
       el.className.trim().split(/\\s+/).join('.') : '');
    found.push(name + ' ' + Math.round(box.right) + 'px');
    if (found.length >= 5) break;
  }
  return found.length ? found : ['html ' + document.documentElement.scrollWidth + 'px'];
}"""


@pytest.fixture
def stand_ins(app, localstripe, mollie_fake, monkeypatch):
    """The live app pointed at localstripe and the fake Mollie, as tests/payments does."""
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", STRIPE_KEY)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", localstripe.url)
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setitem(app.config, "MOLLIE_API_KEY", MOLLIE_KEY)
    monkeypatch.setitem(app.config, "MOLLIE_API_ENDPOINT", mollie_fake.url)
    monkeypatch.setitem(app.config, "PROVIDER_TIMEOUT_SECONDS", 5)
    return localstripe, mollie_fake


@dataclass
class Story:
    """The people of the story, each in a browser context of their own, and the camera."""

    browser: object
    base_url: str
    viewport: str
    shots: int = 0
    logins: int = 0
    people: dict = field(default_factory=dict)
    too_wide: list = field(default_factory=list)

    def __post_init__(self):
        self.folder = ARTIFACTS / "journey" / self.viewport
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink(missing_ok=True)

    def person(self, who: str, email: str | None = None, password: str = DEFAULT_PASSWORD):
        """`who`'s page; logged in through the login form the first time when `email`."""
        if who not in self.people:
            context = self.browser.new_context(
                base_url=self.base_url, locale="nl-BE", timezone_id="Europe/Brussels",
                **VIEWPORTS[self.viewport])
            context.set_default_timeout(15_000)
            page = context.new_page()
            self.people[who] = page
            if email:
                # The login form and the account page it leads to are shot the first time.
                first = not self.logins
                self.logins += 1
                page.goto("/login")
                if first:
                    self.shot(page, "login")
                page.locator("#email").fill(email)
                page.locator("#password").fill(password)
                with page.expect_navigation():
                    page.locator("main form button[type=submit]").click()
                assert page.url.endswith("/account"), page.url
                if first:
                    self.shot(page, f"{who}-account")
        return self.people[who]

    def shot(self, page, name: str, ours: bool = True) -> None:
        """Screenshot the page (whole length) and check that it fits the window."""
        page.wait_for_load_state()
        self.shots += 1
        page.screenshot(path=str(self.folder / f"{self.shots:02d}-{name}.png"),
                        full_page=True)
        if ours:
            wide = page.evaluate(OVERFLOW_JS)
            if wide:
                self.too_wide.append(f"{self.shots:02d}-{name} ({page.url}): {wide}")

    def go(self, page, path: str, name: str) -> None:
        response = page.goto(path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        self.shot(page, name)

    def submit(self, page, button, name: str) -> None:
        """Click a button that sends a form, wait for the page it leads to, screenshot it."""
        with page.expect_navigation():
            button.click()
        self.shot(page, name)
        errors = page.locator(".flash-error")
        assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"

    def close(self) -> None:
        for page in self.people.values():
            page.context.close()


def move(story: Story, page, target: str, name: str) -> None:
    story.submit(page, page.locator(f"form.moves-form button[name=to][value={target}]"), name)


def desk_figures(story: Story, page, name: str) -> dict[str, str]:
    """The coordinator's "now" figures on /business/, by the start of their label."""
    story.go(page, "/business/", name)
    figures = {}
    for stat in page.locator("#now ~ .stats .stat").all():
        label = stat.locator(".stat-label").inner_text().strip()
        figures[label] = stat.locator(".stat-value").inner_text().strip()
    return figures


def figure(figures: dict[str, str], pattern: str) -> str:
    found = [v for k, v in figures.items() if re.match(pattern, k, re.I)]
    assert len(found) == 1, f"no single figure {pattern!r} among {figures}"
    return found[0]


def number(text: str) -> int:
    return int(re.sub(r"\D", "", text) or 0)


def statement_with(amount_cents: int, communication: str, payer: str) -> bytes:
    """A camt.053 statement as a Belgian bank exports it, with one incoming transfer."""
    day = now_utc().astimezone(BRUSSELS).date().isoformat()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{CAMT}"><BkToCstmrStmt><GrpHdr><MsgId>journey-1</MsgId></GrpHdr>
<Stmt><Id>journey-1</Id><Acct><Id><IBAN>BE71096123456769</IBAN></Id></Acct>
<Ntry><Amt Ccy="EUR">{amount_cents // 100}.{amount_cents % 100:02d}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>{day}</Dt></BookgDt>
<ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>JOURNEY-0001</AcctSvcrRef>
<NtryDtls><TxDtls><RltdPties><Dbtr><Nm>{payer}</Nm></Dbtr></RltdPties>
<RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>BBA</Issr></Tp>
<Ref>{communication}</Ref></CdtrRefInf></Strd></RmtInf></TxDtls></NtryDtls></Ntry>
</Stmt></BkToCstmrStmt></Document>""".encode()


def order_of(app, email: str) -> tuple[int, str, str, int]:
    """(id, reference, structured communication digits, total) of someone's latest order."""
    with app.app_context():
        order = db.session.scalars(sa.select(Order).where(Order.billing_email == email)
                                   .order_by(Order.id.desc())).first()
        result = (order.id, order.reference, order.structured_communication,
                  order.total_cents)
        db.session.remove()
        return result


def stripe_events(app) -> int:
    with app.app_context():
        found = db.session.scalar(sa.select(sa.func.count()).select_from(ProviderEvent)
                                  .where(ProviderEvent.provider == "stripe"))
        db.session.remove()
        return found


def wait_until(condition, timeout: float = 15.0) -> bool:
    """Wait for a state outside the browser (no Playwright wait applies), bounded."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def subscribe(story: Story, who: str, plan_code: str, name: str, email: str,
              provider: str, *, copies: int = 0, organisation: str = "",
              address: tuple[str, str, str] | None = None, save_method: bool = False):
    """A newcomer orders at /checkout from the plans page, making the account on the way."""
    page = story.person(who)
    story.go(page, "/plans", f"{who}-plans")
    with page.expect_navigation():
        page.locator(f"a[href$='/checkout?plan={plan_code}']").first.click()
    story.shot(page, f"{who}-checkout")
    if copies:
        page.locator("#copies").fill(str(copies))
    page.locator("#account_name").fill(name)
    page.locator("#account_email").fill(email)
    page.locator("#account_password").fill(DEFAULT_PASSWORD)
    if address:
        page.locator("#addresses-0-name").fill(name)
        if organisation:
            page.locator("#addresses-0-organisation").fill(organisation)
        street, postcode, city = address
        page.locator("#addresses-0-street").fill(street)
        page.locator("#addresses-0-postcode").fill(postcode)
        page.locator("#addresses-0-city").fill(city)
    if organisation:
        page.locator("#billing_organisation").fill(organisation)
    page.locator(f"input[name=provider][value={provider}]").check()
    if save_method:
        page.locator("#save_method").check()
    story.submit(page, page.locator("button[name=preview]").last, f"{who}-summary")
    assert page.locator("table.summary").count() == 1, page.locator("main").inner_text()
    # The password is not sent back to the browser: type it again, and place the order.
    page.locator("#account_password").fill(DEFAULT_PASSWORD)
    page.locator("button[name=place]").click()
    return page


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_the_magazine_end_to_end(app, browser, live_server, stand_ins, outbox, viewport):
    localstripe, mollie = stand_ins
    localstripe.register_webhook("journey", f"{live_server}/webhooks/stripe", WEBHOOK_SECRET)
    today = now_utc().astimezone(BRUSSELS).date()
    print_date = today + timedelta(days=45)
    with app.app_context():
        chief_user = make_user(roles={Role.EDITOR_IN_CHIEF}, email="chief@journey.example",
                               name="Katrien Wouters")
        board = make_user(roles={Role.BOARD_MEMBER}, email="board@journey.example",
                          name="Jonas Claes")
        author = make_user(roles={Role.AUTHOR}, email="author@journey.example",
                           name="Fatima El Amrani")
        make_user(roles={Role.COORDINATOR}, email="coordinator@journey.example",
                  name="Mieke Janssens")
        make_plan(kind=PlanKind.ORGANISATION, price_cents=6500, code="organisatie",
                  bands=[(5, 5500), (10, 4900)])
        make_plan(kind=PlanKind.PRINT_DIGITAL, price_cents=6500, code="papier")
        make_plan(kind=PlanKind.DIGITAL, price_cents=3900, code="digitaal")
        ids = {"board": board.id, "author": author.id, "chief": chief_user.id}
        db.session.remove()

    story = Story(browser, live_server, viewport)
    try:
        # ---- 1. The board makes an issue ---------------------------------------------------
        chief = story.person("chief", "chief@journey.example")
        story.go(chief, "/editorial/issues/new", "chief-new-issue")
        chief.locator("#volume").fill("7")
        chief.locator("#number").fill("1")
        chief.locator("#theme").fill("Buiten spelen")
        chief.locator("#print_date").fill(print_date.isoformat())
        chief.locator("#page_budget").fill("4")
        story.submit(chief, chief.locator("main form button[type=submit]"), "chief-issue")
        with app.app_context():
            issue_id = db.session.scalar(sa.select(Issue.id).where(Issue.volume == 7))
            db.session.remove()

        member = story.person("board", "board@journey.example")
        story.go(member, "/editorial/pitches/new", "board-new-pitch")
        member.locator("#title").fill("Buiten spelen in de regen")
        member.locator("#summary").fill("Waarom regen geen reden is om binnen te blijven, "
                                        "en wat een leefgroep daarvoor nodig heeft.")
        member.locator("#target_issue").select_option(str(issue_id))
        story.submit(member, member.locator("main form button[type=submit]"), "board-pitch")
        pitch_path = member.url.removeprefix(live_server)
        assert re.search(r"/editorial/pitches/\d+$", pitch_path), pitch_path
        move(story, member, "on_agenda", "board-pitch-on-agenda")
        member.locator("input[name=vote][value=for]").check()
        member.locator("#reason").fill("Past bij het thema.")
        story.submit(member, member.locator("form[action$='/vote'] button[type=submit]"),
                     "board-voted")

        story.go(chief, "/editorial/pitches", "chief-agenda")
        story.go(chief, pitch_path, "chief-pitch")
        chief.locator("#author").select_option(str(ids["author"]))
        chief.locator("#issue").select_option(str(issue_id))
        chief.locator("#target_words").fill("300")
        with chief.expect_navigation(url=re.compile(r".*/editorial/articles/\d+$")):
            chief.locator("form[action$='/accept'] button[type=submit]").click()
        story.shot(chief, "chief-commissioned")
        article_path = chief.url.removeprefix(live_server)

        writer = story.person("author", "author@journey.example")
        story.go(writer, "/editorial/", "author-my-work")
        story.go(writer, f"{article_path}/write", "author-write")
        writer.locator("#body").fill(ARTICLE)
        writer.locator("#live-preview h1").wait_for()
        story.shot(writer, "author-write-preview")
        story.submit(writer, writer.locator("#save"), "author-saved")
        move(story, writer, "draft_submitted", "author-submitted")

        story.go(chief, article_path, "chief-draft")
        chief.locator("#reader").select_option(str(ids["board"]))
        chief.locator("#due_date").fill((today + timedelta(days=7)).isoformat())
        story.submit(chief, chief.locator("form[action$='/readers'] button[type=submit]"),
                     "chief-reader-asked")
        story.go(member, "/editorial/reviews", "board-reviews")
        with member.expect_navigation():
            member.locator("main table a").last.click()
        story.shot(member, "board-reading")
        member.locator("input[name=recommendation][value=accept]").check()
        member.locator("#comments_for_author").fill("Helder en praktisch. Zo laten.")
        story.submit(member, member.locator("main form button[type=submit]"), "board-reviewed")

        story.go(chief, article_path, "chief-review-in")
        move(story, chief, "accepted", "chief-accepted")
        # Copy editing, the author's approval, layout and proof are walked page by page in
        # test_editorial_journey.py; here the chief's production line is fast-forwarded.
        article_id = int(article_path.rsplit("/", 1)[1])
        with app.app_context():
            article = db.session.get(Article, article_id)
            chief_user = db.session.get(User, ids["chief"])
            for target in PRODUCTION_LINE[1:]:
                move_article(article, target, actor=chief_user)
            db.session.commit()
            db.session.remove()
        story.go(chief, article_path, "chief-press-ready")

        story.go(chief, f"/editorial/issues/{issue_id}", "chief-flatplan")
        for label, pages, article in (("Cover en inhoud", 2, None), (None, None, True),
                                      ("Achterflap", 1, None)):
            if article:
                chief.locator("#article").select_option(str(article_id))
            else:
                chief.locator("#label").fill(label)
                chief.locator("#pages").fill(str(pages))
            story.submit(chief, chief.locator("form[action$='/slots'] button[type=submit]"),
                         "chief-slot")
        assert chief.locator("table.flatplan tbody tr").count() == 3
        package = chief.request.get(
            chief.locator("a[href$='/package.zip']").get_attribute("href"))
        assert package.status == 200, package.status
        with zipfile.ZipFile(io.BytesIO(package.body())) as archive:
            names = archive.namelist()
        assert any(name.endswith(".csv") for name in names), names
        assert any("regen" in name.lower() for name in names), names

        # ---- 2. Subscribers subscribe and pay ------------------------------------------
        office = story.person("coordinator", "coordinator@journey.example")
        before = desk_figures(story, office, "coordinator-desk-before")
        assert number(figure(before, r"lopende|running")) == 0

        # An organisation, five copies, by bank transfer.
        els = subscribe(story, "els", "organisatie", "Els Peeters", "els@derups.example",
                        "bank_transfer", copies=5, organisation="Kinderdagverblijf De Rups",
                        address=("Kerkstraat 12", "9000", "Gent"))
        els.wait_for_url(re.compile(r".*/account/orders/\d+$"))
        story.shot(els, "els-order")
        assert els.locator(".payment-box img").evaluate("img => img.naturalWidth > 100")
        # A reader by bank transfer, paid with the structured communication.
        jan = subscribe(story, "jan", "papier", "Jan Wouters", "jan@example.be",
                        "bank_transfer", address=("Stationsstraat 3 bus 2", "2000",
                                                  "Antwerpen"))
        jan.wait_for_url(re.compile(r".*/account/orders/\d+$"))
        story.shot(jan, "jan-order")

        ordered = desk_figures(story, office, "coordinator-desk-ordered")
        assert number(figure(ordered, r"onbetaald|unpaid")) > 0

        # A digital reader by card at Stripe (localstripe's hosted checkout).
        an = subscribe(story, "an", "digitaal", "An Claes", "an@example.be", "stripe")
        an.wait_for_url(f"{localstripe.url}/_checkout/*")
        an.get_by_label("Card", exact=True).check()
        an.get_by_label("Pay", exact=True).check()
        story.shot(an, "an-stripe-checkout", ours=False)
        with an.expect_navigation(url=re.compile(r".*/payments/\d+$")):
            an.get_by_role("button", name="Continue").click()
        story.shot(an, "an-paid")
        assert re.search(r"betaling is binnen|payment is received",
                         an.locator("main").inner_text()), an.locator("main").inner_text()

        # A reader by Bancontact at Mollie, renewing automatically (the fake Mollie's page).
        bart = subscribe(story, "bart", "papier", "Bart Maes", "bart@example.be", "mollie",
                         address=("Markt 1", "3000", "Leuven"), save_method=True)
        bart.wait_for_url(f"{mollie.url}/checkout/*")
        bart.get_by_label("Bancontact").check()
        bart.get_by_label("Paid").check()
        story.shot(bart, "bart-mollie-checkout", ours=False)
        with bart.expect_navigation(url=re.compile(r".*/payments/\d+$")):
            bart.get_by_role("button", name="Continue").click()
        story.shot(bart, "bart-paid")
        assert mollie.webhooks_sent and mollie.webhooks_sent[0][2] == 200

        # The coordinator records Els's transfer by hand ...
        _, els_ref, _, _ = order_of(app, "els@derups.example")
        story.go(office, "/business/subscriptions/", "coordinator-subscriptions")
        office.locator("#q").fill("De Rups")
        story.submit(office, office.locator("form[role=search] button"), "coordinator-search")
        with office.expect_navigation():
            office.locator(f"main a:text('{els_ref}')").first.click()
        story.shot(office, "coordinator-order")
        story.submit(office, office.locator(
            "form[action$='/transfer'] button[type=submit]").first, "coordinator-transfer")
        # ... and finds Jan's on the bank statement.
        _, _, communication, total = order_of(app, "jan@example.be")
        story.go(office, "/business/subscriptions/bank-statement", "coordinator-statement")
        office.locator("input[type=file]").set_input_files({
            "name": "afschrift.xml", "mimeType": "application/xml",
            "buffer": statement_with(total, communication, "Jan Wouters")})
        story.submit(office, office.locator("main form button[type=submit]").last,
                     "coordinator-statement-imported")

        for who in ("els", "jan", "an", "bart"):
            page = story.people[who]
            story.go(page, "/account", f"{who}-account")
            text = page.locator("main").inner_text()
            assert re.search(r"\bactief\b|\bactive\b", text, re.I), f"{who}: {text}"
        assert "6769" in story.people["bart"].locator("main").inner_text()  # the mandate

        paid = desk_figures(story, office, "coordinator-desk-paid")
        assert number(figure(paid, r"lopende|running")) == 4
        assert number(figure(paid, r"onbetaald|unpaid")) == 0
        printed = number(figure(paid, r"te drukken|copies to print"))
        assert printed == number(figure(before, r"te drukken|copies to print")) + 5 + 1 + 1

        # ---- 3. To the printer, published, dispatched ----------------------------------
        story.go(chief, f"/editorial/issues/{issue_id}", "chief-issue-ready")
        for target in ("copy_closed", "in_layout", "at_printer"):
            move(story, chief, target, f"chief-issue-{target.replace('_', '-')}")
        chief.locator("#pdf-file").set_input_files({
            "name": "kinderopvang-7-1.pdf", "mimeType": "application/pdf", "buffer": PDF})
        story.submit(chief, chief.locator("form.upload-form button[type=submit]"),
                     "chief-pdf-uploaded")
        move(story, chief, "published", "chief-issue-published")

        story.go(office, "/business/subscriptions/dispatch/", "coordinator-dispatch")
        story.go(office, f"/business/subscriptions/dispatch/{issue_id}",
                 "coordinator-dispatch-issue")
        story.submit(office, office.locator("form[action$='/start'] button[type=submit]"),
                     "coordinator-dispatched")
        mailing = office.request.get(
            office.locator("a[href$='/mailing.csv']").get_attribute("href"))
        assert mailing.status == 200, mailing.status
        rows = list(csv.DictReader(io.StringIO(mailing.body().decode("utf-8-sig"))))
        copies = {row["name"]: int(row["copies"]) for row in rows}
        assert copies["Els Peeters"] == 5 and copies["Jan Wouters"] == 1, copies
        assert copies["Bart Maes"] == 1 and "An Claes" not in copies, copies
        assert sum(copies.values()) == printed, copies
        jan_row = next(row for row in rows if row["name"] == "Jan Wouters")
        assert (jan_row["street"], jan_row["house_number"], jan_row["box"]) == (
            "Stationsstraat", "3", "2")
        with app.app_context():
            assert db.session.get(Issue, issue_id).state == IssueState.DISPATCHED

        # The digital reader's link to the PDF works.
        [mail] = [m for m in outbox("an@example.be") if "/issues/download/" in m.body_text]
        response = story.people["an"].request.get(link_in(mail, "/issues/download/"))
        assert response.status == 200 and response.body().startswith(b"%PDF")

        # Stripe's signed webhook reached the live app too (localstripe sends it about a
        # second after the payment; long since, by now).
        assert wait_until(lambda: stripe_events(app) > 0), "no Stripe webhook recorded"

        # ---- 4. The figures moved -------------------------------------------------------
        after = desk_figures(story, office, "coordinator-desk-dispatched")
        assert number(figure(after, r"lopende|running")) == 4
        # The money came in this month, by each way of paying.
        revenue = office.request.get(office.locator(
            "a.csv-link[href*='revenue-by-provider']").get_attribute("href"))
        assert revenue.status == 200
        received = {row[0]: row[1] for row in
                    csv.reader(io.StringIO(revenue.body().decode("utf-8-sig")), delimiter=";")}
        for way, amount in (("stripe", "39,00"), ("mollie", "65,00"),
                            ("transfer|overschrijving", "340,00")):
            [value] = [v for k, v in received.items() if re.search(way, k, re.I)]
            assert amount in value, received
        # The dispatched issue is counted in the period of its print date.
        office.locator("#start").fill(f"{today:%Y-%m}")
        office.locator("#end").fill(f"{print_date:%Y-%m}")
        story.submit(office, office.locator("form.filter-form button[type=submit]"),
                     "coordinator-desk-period")
        issues_table = office.locator("#issues + .table-wrap table")
        assert "7.1" in issues_table.inner_text(), office.locator("main").inner_text()
        story.go(chief, f"/editorial/issues/{issue_id}", "chief-issue-dispatched")
    finally:
        story.close()

    assert not story.too_wide, "pages wider than the window:\n" + "\n".join(story.too_wide)
