"""Dispatch of an issue: who is in the locked list, the mailing file (exact), the print
run, download links for digital subscribers, the issue's state, and idempotence."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from editorial.models import IssueState
from magazine.clock import frozen
from magazine.db import db
from magazine.jobs import Progress
from magazine.models import JobRun
from subscriptions import dispatch
from subscriptions.jobs import dispatch_job
from subscriptions.models import DeliveryAddress, DispatchEntry, DispatchLine, Subscription
from subscriptions.states import SubscriptionState as S
from tests.factories import make_user
from tests.jobs.factories import make_subscription

AFTER_CUTOFF = datetime(2027, 1, 11, 6, 0, tzinfo=UTC)


def person(name: str, **kwargs):
    return make_user(name=name, email=f"{name.split()[0].lower()}@example.org", **kwargs)


def hand_made(w) -> dict[str, Subscription]:
    """One subscription of each kind the list must (or must not) hold."""
    subs = {}
    subs["annick"] = make_subscription(w.print_plan, person("Annick Peeters"), remaining=3,
                                       addresses=[{"street": "Kerkstraat 12 bus 3"}])
    subs["org"] = make_subscription(
        w.org_plan, person("Bart Claes"), copies=5, remaining=4, addresses=[
            {"name": "Kinderdagverblijf De Rups", "organisation": "vzw De Rups",
             "street": "Rue de la Loi 16 bte 2", "postcode": "1000", "city": "Brussel",
             "copies": 3},
            {"name": "Opvang Amsterdam", "street": "Hoofdstraat 5A", "postcode": "1011 AB",
             "city": "Amsterdam", "country": "NL", "copies": 2},
        ])
    subs["digital"] = make_subscription(w.digital_plan, person("Chris Digitaal"), remaining=2)
    subs["graced"] = make_subscription(w.print_plan, person("Dirk Janssens"), remaining=0,
                                       state=S.GRACED, graced_at=AFTER_CUTOFF,
                                       addresses=[{"street": "Molenweg 7"}])
    subs["later"] = make_subscription(w.print_plan, person("Eva Later"),
                                      first_issue=w.next_issue)
    subs["lapsed"] = make_subscription(w.print_plan, person("Frank Weg"), state=S.LAPSED,
                                       remaining=0)
    subs["pending"] = make_subscription(w.print_plan, person("Greet Wacht"),
                                        state=S.PENDING_PAYMENT, remaining=5)
    subs["used_up"] = make_subscription(w.print_plan, person("Hans Op"), remaining=0)
    subs["moving"] = make_subscription(w.print_plan, person("Ilse Verhuist"), remaining=1,
                                       state=S.CANCELLED, first_issue=w.issue,
                                       addresses=[{"street": "Oude Baan 3", "postcode": "3000",
                                                   "city": "Leuven"}])
    # Her move was announced after the cut-off: it applies from the next issue.
    subs["moving"].addresses.append(DeliveryAddress(
        group_no=1, copies=1, name="Ilse Verhuist", street="Nieuwe Baan 9", postcode="3001",
        city="Heverlee", country="BE", effective_from_issue_id=w.next_issue.id))
    subs["partner"] = make_subscription(w.print_plan, person("Jan Partner"), remaining=10,
                                        complimentary=True, auto_renew=False,
                                        addresses=[{"organisation": "Kind en Gezin",
                                                    "street": "Hallepoortlaan 27",
                                                    "postcode": "1060", "city": "Brussel"}])
    db.session.commit()
    return subs


EXPECTED_CSV = (
    "subscriber_number,name,organisation,street,house_number,box,postcode,city,country_code,"
    "copies\r\n"
    "A000002,Kinderdagverblijf De Rups,vzw De Rups,Rue de la Loi,16,2,1000,Brussel,BE,3\r\n"
    "A000010,Jan Partner,Kind en Gezin,Hallepoortlaan,27,,1060,Brussel,BE,1\r\n"
    "A000009,Ilse Verhuist,,Oude Baan,3,,3000,Leuven,BE,1\r\n"
    "A000001,Annick Peeters,,Kerkstraat,12,3,9000,Gent,BE,1\r\n"
    "A000004,Dirk Janssens,,Molenweg,7,,9000,Gent,BE,1\r\n"
    "A000002,Opvang Amsterdam,,Hoofdstraat,5A,,1011 AB,Amsterdam,NL,2\r\n"
    "STOCK,Kinderopvang Magazine vzw,,Grote Markt,1,,9000,Gent,BE,25\r\n"
)
EXPECTED_SUMMARY = (
    "country_code,plan,addresses,copies\r\n"
    "BE,organisatie,1,3\r\n"
    "BE,papier,4,4\r\n"
    "NL,organisatie,1,2\r\n"
    "BE,stock,1,25\r\n"
    ",total,7,34\r\n"
)


def test_the_mailing_file_of_a_hand_made_list_is_exactly_as_expected(world, tmp_path):
    subs = hand_made(world)
    with frozen(AFTER_CUTOFF):
        result = dispatch.dispatch_issue(world.issue)
    assert result.locked and result.subscriptions == 6  # annick org digital graced moving partner
    out = tmp_path / "verzending.csv"
    run = dispatch.write_mailing_file(world.issue, out)
    assert out.read_bytes().decode() == EXPECTED_CSV
    assert dispatch.summary_path(out).read_bytes().decode() == EXPECTED_SUMMARY
    assert run.copies == 34 and run.digital_only == [("digitaal", 1)]
    # Regenerating gives the same bytes; no temporary file stays behind.
    first = out.read_bytes()
    dispatch.write_mailing_file(world.issue, out)
    assert out.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verzending-summary.csv",
                                                          "verzending.csv"]
    assert {s.id for s in subs.values()} >= {e.subscription_id for e in
                                             db.session.scalars(sa.select(DispatchEntry))}


def test_each_included_subscription_uses_one_issue_exactly_once(world):
    subs = hand_made(world)
    before = {name: (s.issues_remaining, s.grace_issues_used) for name, s in subs.items()}
    with frozen(AFTER_CUTOFF):
        dispatch.dispatch_issue(world.issue)
        again = dispatch.dispatch_issue(world.issue)
    assert not again.locked
    assert "nothing added" in again.summary()
    db.session.expire_all()
    after = {name: (s.issues_remaining, s.grace_issues_used) for name, s in subs.items()}
    assert after["annick"] == (before["annick"][0] - 1, 0)
    assert after["org"] == (3, 0)
    assert after["digital"] == (1, 0)
    assert after["graced"] == (0, 1)  # its grace issue
    assert after["moving"] == (0, 0)
    assert after["partner"] == (9, 0)
    for name in ("later", "lapsed", "pending", "used_up"):
        assert after[name] == before[name]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DispatchLine)) == 6


def test_a_subscription_starting_later_and_a_used_grace_are_left_out(world):
    sub = make_subscription(world.print_plan, person("Karel Grace"), state=S.GRACED,
                            remaining=0, grace_used=1)
    with frozen(AFTER_CUTOFF):
        result = dispatch.dispatch_issue(world.issue)
    assert result.subscriptions == 0
    assert db.session.get(Subscription, sub.id).grace_issues_used == 1


def test_digital_subscribers_get_a_personal_expiring_link_once_the_pdf_is_there(
        world, client, outbox):
    subs = hand_made(world)
    both = make_subscription(world.both_plan, person("Lotte Beide"), remaining=2)
    with frozen(AFTER_CUTOFF):
        first = dispatch.dispatch_issue(world.issue)
    assert first.mailed == 0  # no PDF yet
    issue = db.session.get(type(world.issue), world.issue.id)
    issue.pdf_filename, issue.pdf_data = "kinderopvang-3-2.pdf", b"%PDF-1.4 test"
    db.session.commit()
    with frozen(AFTER_CUTOFF + timedelta(days=1)):
        second = dispatch.dispatch_issue(issue)
        third = dispatch.dispatch_issue(issue)
    assert (second.mailed, third.mailed) == (2, 0)
    mails = outbox(to="chris@example.org")
    assert len(mails) == 1 and "3.2" in mails[0].subject
    link = next(line for line in mails[0].body_text.splitlines() if "/issues/download/" in line)
    path = link.split("localhost", 1)[1]
    with frozen(AFTER_CUTOFF + timedelta(days=30)):
        response = client.get(path)
    assert response.status_code == 200 and response.data == b"%PDF-1.4 test"
    with frozen(AFTER_CUTOFF + timedelta(days=62)):
        assert client.get(path).status_code == 404  # expired
    assert client.get(path[:-3] + "abc").status_code == 404  # tampered
    assert len(outbox(to="lotte@example.org")) == 1
    assert both.id and subs["annick"].id


def test_the_issue_becomes_dispatched_once_published(world):
    hand_made(world)
    with frozen(AFTER_CUTOFF):
        assert not dispatch.dispatch_issue(world.issue).marked_dispatched  # at the printer
    issue = db.session.get(type(world.issue), world.issue.id)
    issue.state = IssueState.PUBLISHED  # the chief published it (editorial's move)
    db.session.commit()
    with frozen(AFTER_CUTOFF + timedelta(days=5)):
        result = dispatch.dispatch_issue(issue)
        assert result.marked_dispatched and not result.locked
        assert not dispatch.dispatch_issue(issue).marked_dispatched
    assert db.session.get(type(issue), issue.id).state == IssueState.DISPATCHED


def test_the_job_locks_issues_whose_cutoff_passed_and_runs_once_per_hour(world):
    hand_made(world)
    with frozen(datetime(2027, 1, 9, 12, tzinfo=UTC)):  # before the cut-off
        assert dispatch_job(Progress()).summary() == "dispatch: no issue due"
    with frozen(AFTER_CUTOFF):
        summary = dispatch_job(Progress()).summary()
        assert summary.startswith("dispatch 3.2: 6 subscriptions, 9 printed copies")
        assert "already done" in dispatch_job(Progress()).summary()
    with frozen(AFTER_CUTOFF + timedelta(hours=1)):
        assert "locked before; nothing added" in dispatch_job(Progress()).summary()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(JobRun)) == 3


def test_an_issue_long_past_its_cutoff_is_left_to_the_coordinator(world):
    hand_made(world)
    with frozen(AFTER_CUTOFF + timedelta(days=30)):
        assert dispatch_job(Progress()).summary() == "dispatch: no issue due"


def test_split_street_as_a_belgian_mailing_house_expects():
    cases = {
        "Kerkstraat 12": ("Kerkstraat", "12", ""),
        "Kerkstraat 12 bus 3": ("Kerkstraat", "12", "3"),
        "Kerkstraat 12 b. 3": ("Kerkstraat", "12", "3"),
        "Rue de la Loi 16 bte 2": ("Rue de la Loi", "16", "2"),
        "Kerkstraat 12/3": ("Kerkstraat", "12", "3"),
        "Hoofdstraat 5A": ("Hoofdstraat", "5A", ""),
        "Steenweg op Gent 120-122": ("Steenweg op Gent", "120-122", ""),
        "Lange Lozanastraat 14 bus 201": ("Lange Lozanastraat", "14", "201"),
        "Stationsplein": ("Stationsplein", "", ""),
        "Avenue du 11 Novembre 5": ("Avenue du 11 Novembre", "5", ""),
    }
    for street, expected in cases.items():
        assert dispatch.split_street(street) == expected, street


def test_the_cli_writes_the_mailing_file_and_says_when_nothing_is_added(world, runner,
                                                                        tmp_path):
    hand_made(world)
    out = tmp_path / "out.csv"
    with frozen(AFTER_CUTOFF):
        first = runner.invoke(args=["dispatch", "3.2", "--out", str(out)])
        assert first.exit_code == 0, first.output
        assert "dispatch 3.2: 6 subscriptions" in first.output
        assert out.read_bytes().decode() == EXPECTED_CSV
        second = runner.invoke(args=["dispatch", "3.2", "--out", str(out)])
        assert "nothing added" in second.output
        assert out.read_bytes().decode() == EXPECTED_CSV
        missing = runner.invoke(args=["dispatch", "9.9", "--out", str(out)])
        assert missing.exit_code != 0 and "no issue" in missing.output


def test_the_coordinator_starts_a_dispatch_and_downloads_the_file(world, login_as):
    hand_made(world)
    issue_id = world.issue.id
    office = login_as(__import__("magazine.roles").roles.Role.COORDINATOR)
    with frozen(AFTER_CUTOFF):
        page = office.get(f"/business/subscriptions/dispatch/{issue_id}")
        assert b"Verzending starten" in page.data or b"Start the dispatch" in page.data
        response = office.post(f"/business/subscriptions/dispatch/{issue_id}/start")
        assert response.status_code == 302
        page = office.get(f"/business/subscriptions/dispatch/{issue_id}")
        assert b"34" in page.data
        download = office.get(f"/business/subscriptions/dispatch/{issue_id}/mailing.csv")
        assert download.data.decode() == EXPECTED_CSV
        assert office.get("/business/subscriptions/dispatch/").status_code == 200
        office.post(f"/business/subscriptions/dispatch/{issue_id}/start")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DispatchEntry)) == 6
    assert date(2027, 1, 10) == world.issue.dispatch_cutoff


def order_single_copies(w, buyer_name: str, quantity: int, *, paid: bool = True, **where):
    """A single-copy order of `w.issue` placed as the shop does, paid by transfer."""
    from subscriptions import services
    from subscriptions.models import SingleCopyOffer
    from tests.subscriptions.factories import address

    offer = db.session.scalar(sa.select(SingleCopyOffer).where(
        SingleCopyOffer.issue_id == w.issue.id))
    if offer is None:
        offer = services.save_offer(w.issue, price_cents=1500, stock=100, active=True,
                                    actor=None)
    buyer = person(buyer_name)
    request = services.CheckoutRequest(plan_id=0, billing_name=buyer.name,
                                       provider="bank_transfer", locale="nl_BE")
    order = services.place_single_copy_order(
        offer, quantity, address(name=buyer.name, **where), request, buyer=buyer).order
    db.session.commit()
    if paid:
        services.record_bank_transfer(order, actor=w.coordinator)
        db.session.commit()
    return order


def test_paid_single_copies_are_lines_of_the_mailing_file_once(world, tmp_path, login_as):
    hand_made(world)
    with frozen(AFTER_CUTOFF - timedelta(days=2)):
        gent = order_single_copies(world, "Kim Los", 2, street="Veldstraat 3 bus 1")
        order_single_copies(world, "Lot Onbetaald", 1, paid=False)
        liege = order_single_copies(world, "Marc Liège", 1, street="Rue Neuve 4",
                                    postcode="4000", city="Liège")
    with frozen(AFTER_CUTOFF):
        result = dispatch.dispatch_issue(world.issue)
        late = order_single_copies(world, "Nina Laat", 1)  # paid after the lock
        dispatch.dispatch_issue(world.issue)
    assert result.copies == 9 + 3  # the subscribers' 9 and the single copies
    out = tmp_path / "verzending.csv"
    dispatch.write_mailing_file(world.issue, out)
    lines = out.read_bytes().decode().split("\r\n")
    assert lines[4] == f"{liege.reference},Marc Liège,,Rue Neuve,4,,4000,Liège,BE,1"
    assert lines[5:8] == [
        "A000001,Annick Peeters,,Kerkstraat,12,3,9000,Gent,BE,1",
        "A000004,Dirk Janssens,,Molenweg,7,,9000,Gent,BE,1",
        f"{gent.reference},Kim Los,,Veldstraat,3,1,9000,Gent,BE,2",
    ]
    assert sum(line.startswith("B") for line in lines) == 2
    first = out.read_bytes()
    dispatch.write_mailing_file(world.issue, out)
    assert out.read_bytes() == first
    summary = dispatch.summary_path(out).read_bytes().decode()
    assert "BE,single-copy,2,3\r\n" in summary and ",total,9,37\r\n" in summary
    # Paid after the lock: sent from the stock, listed for the coordinator.
    assert [(o.id, n) for o, n in dispatch.single_copies_from_stock(world.issue)] == [
        (late.id, 1)]
    from magazine.roles import Role

    page = login_as(Role.COORDINATOR).get(f"/business/subscriptions/dispatch/{world.issue.id}")
    assert 'id="from-stock"' in page.text and late.reference in page.text
    assert gent.reference not in page.text


def test_a_subscriber_sees_the_issues_received_with_a_fresh_download_link(world, login_as):
    chris = login_as(__import__("magazine.roles").roles.Role.SUBSCRIBER,
                     email="chris.digitaal@example.org")
    from tests.conftest import get_user

    user = get_user("chris.digitaal@example.org")
    digital = make_subscription(world.digital_plan, user, remaining=2)
    paper = make_subscription(world.print_plan, user, remaining=2)
    other = make_subscription(world.digital_plan, person("Olga Ander"), remaining=2)
    assert 'id="no-issues"' in chris.get("/account/issues").text
    assert 'id="received-issues-link"' in chris.get("/account").text
    with frozen(AFTER_CUTOFF):
        dispatch.dispatch_issue(world.issue)
    page = chris.get("/account/issues").text
    assert page.count("3.2") == 2 and "De pdf is er nog niet." in page
    assert "/issues/download/" not in page
    issue = db.session.get(type(world.issue), world.issue.id)
    issue.pdf_filename, issue.pdf_data = "kinderopvang-3-2.pdf", b"%PDF-1.4 test"
    db.session.commit()
    # Long after the mailed link expired, the page gives a new one that works.
    with frozen(AFTER_CUTOFF + timedelta(days=90)):
        page = chris.get("/account/issues").text
        [path] = [part.split('"')[0] for part in page.split('href="')[1:]
                  if part.startswith("/issues/download/")]
        response = chris.get(path)
    assert response.status_code == 200 and response.data == b"%PDF-1.4 test"
    assert "Op papier" in page
    with frozen(AFTER_CUTOFF + timedelta(days=90)):
        opened = dispatch._serializer().loads(path.rsplit("/", 1)[1])
    assert opened == [digital.id, world.issue.id] and other.id != digital.id and paper.id
    with frozen(AFTER_CUTOFF + timedelta(days=90 + 62)):
        expired = chris.get(path)
    assert expired.status_code == 404 and "/account/issues" in expired.text
