"""Demo data for subscriptions: the plans a Flemish childcare magazine sells, promo codes,
back issues, and a few hundred subscribers of every kind and state with their orders,
payments, invoices and credit notes.

Fast on purpose: one password hash for all generated people, rows added in bulk, invoice
numbers assigned in date order per year (gapless, as the real ones). Loading twice adds
nothing. Generated rows are seed data: they are inserted in their state, not walked
through the services one by one (the services are tested on their own).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from editorial.models import Issue, IssueState
from magazine.auth.services import find_user_by_email, hash_password
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from magazine.models import User, UserRole
from magazine.roles import Role
from subscriptions import pricing, services
from subscriptions.models import (
    Chargeback,
    CreditNote,
    DeliveryAddress,
    DocumentCounter,
    Invoice,
    Order,
    OrderLine,
    Payment,
    Plan,
    PlanKind,
    PromoKind,
    Refund,
    SingleCopyOffer,
    Subscription,
    zone_for_country,
)
from subscriptions.providers.bank_transfer import structured_communication
from subscriptions.states import OrderState, PaymentState, SubscriptionState

SUBSCRIBERS = 300
DEMO_SUBSCRIBER = "subscriber@demo.example"

PLANS = [
    # code, name nl, name en, kind, price, issues, print, digital, shipping nl/eu, bands,
    # description nl, description en
    ("individueel", "Individueel papier + digitaal", "Individual print + digital",
     PlanKind.PRINT_DIGITAL, 6500, 5, True, True, (750, 1200), [],
     "Vijf nummers per jaar in je bus, en alles ook online te lezen en te doorzoeken.",
     "Five issues a year through your letterbox, and everything online to read and search."),
    ("papier", "Individueel papier", "Individual print", PlanKind.PRINT, 5500, 5, True, False,
     (750, 1200), [],
     "Vijf nummers per jaar op papier, voor wie graag bladert.",
     "Five printed issues a year, for those who like to leaf through."),
    ("digitaal", "Digitaal", "Digital", PlanKind.DIGITAL, 3900, 5, False, True, (0, 0), [],
     "Elk nummer online en als pdf, met het archief van vorige jaargangen.",
     "Every issue online and as PDF, with the archive of past volumes."),
    ("student", "Student", "Student", PlanKind.STUDENT, 3500, 5, True, True, (750, 1200), [],
     "Voor studenten kinderzorg, pedagogie en sociaal werk: papier en digitaal aan halve "
     "prijs.",
     "For students in childcare, education and social work: print and digital at half price."),
    ("organisatie", "Organisatie met volumeprijzen", "Organisation with volume prices",
     PlanKind.ORGANISATION, 6500, 5, True, True, (750, 1200), [(5, 5500), (10, 4900), (25, 4500)],
     "Voor kinderdagverblijven, BKO's en diensten: meerdere exemplaren, eventueel naar "
     "verschillende locaties, met een lagere prijs per exemplaar.",
     "For childcare centres and services: several copies, to one or more locations, at a "
     "lower price per copy."),
    ("cadeau", "Cadeau-abonnement", "Gift subscription", PlanKind.GIFT, 6000, 5, True, True,
     (750, 1200), [],
     "Geef een jaar Kinderopvang Magazine cadeau, met een persoonlijke boodschap.",
     "Give a year of Kinderopvang Magazine, with a personal message."),
]

FIRST_NAMES = ["Emma", "Lotte", "Els", "An", "Sofie", "Nele", "Katrien", "Liesbeth", "Fatima",
               "Yasmine", "Hanne", "Lien", "Marie", "Sarah", "Inge", "Griet", "Veerle", "Ilse",
               "Tom", "Pieter", "Jonas", "Bart", "Wouter", "Karim", "Jeroen", "Leen", "Eva",
               "Nathalie", "Saskia", "Ayse", "Annelies", "Mieke", "Joke", "Kaat", "Elif"]
LAST_NAMES = ["Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes",
              "Goossens", "Wouters", "De Smet", "Dubois", "Hermans", "Aerts", "Van den Broeck",
              "Vermeulen", "De Clercq", "Verhoeven", "Lambrechts", "El Amrani", "Yilmaz",
              "Vandenberghe", "De Backer", "Coppens", "Desmet", "Van Damme", "Bogaert"]
ORGANISATIONS = ["Kinderdagverblijf De Rups", "Kinderopvang 't Kabouterhuis",
                 "Crèche Het Zonnetje", "BKO De Speelvogel", "Kinderdagverblijf Hummeltjes",
                 "Huis van het Kind Noord", "Kinderopvang Sloeber", "Kinderdagverblijf Ukkie",
                 "Dienst Onthaalouders Kempen", "Kinderopvang De Boomhut",
                 "Kinderdagverblijf Pimpampoentje", "Stedelijke Kinderopvang Leuven"]
STREETS = ["Kerkstraat", "Stationsstraat", "Schoolstraat", "Dorpsstraat", "Molenstraat",
           "Nieuwstraat", "Kouter", "Brugsesteenweg", "Lindenlaan", "Veldstraat"]
CITIES = [("9000", "Gent", "BE"), ("2000", "Antwerpen", "BE"), ("3000", "Leuven", "BE"),
          ("8000", "Brugge", "BE"), ("3500", "Hasselt", "BE"), ("2800", "Mechelen", "BE"),
          ("8500", "Kortrijk", "BE"), ("9300", "Aalst", "BE"), ("3600", "Genk", "BE"),
          ("1000", "Brussel", "BE"), ("2300", "Turnhout", "BE"), ("9100", "Sint-Niklaas", "BE"),
          ("4811 AB", "Breda", "NL"), ("6211 AB", "Maastricht", "NL")]


def _vat_number(rng: random.Random) -> str:
    base = rng.randrange(2_000_000, 9_999_999)
    digits = f"0{base:07d}"
    return f"BE{digits}{97 - int(digits) % 97:02d}"


@dataclass
class _Counters:
    invoice: dict[int, int]
    credit: dict[int, int]


def load_subscriptions_demo() -> list[str]:
    """Load the subscriptions demo; returns what it created (empty when it was there)."""
    if db.session.scalar(sa.select(sa.func.count()).select_from(Plan)):
        return []
    rng = random.Random(2026)  # nosec B311 # reproducible demo data, not a secret
    today = services.today_brussels()
    plans = _plans()
    _promo_codes(plans, today)
    _back_issues()
    issues = list(db.session.scalars(sa.select(Issue).order_by(Issue.print_date, Issue.id)))
    counters = _Counters({}, {})
    password_hash = hash_password("demo-password")
    people = _people(rng, password_hash)
    rows = _orders(rng, people, plans, issues, today)
    demo_subscriber = find_user_by_email(DEMO_SUBSCRIBER)
    if demo_subscriber is not None:
        rows = _demo_subscriber(demo_subscriber, plans, issues, today) + rows
    online = _online_payments(rows)
    _number_documents(rows, counters)
    db.session.commit()
    return ["plans", "promo codes", "back issues", f"{len(people)} subscribers",
            f"{len(rows)} orders", f"{online} online payments"]


def _plans() -> dict[str, Plan]:
    plans = {}
    for position, (code, name_nl, name_en, kind, price, issues, has_print, has_digital,
                   (ship_nl, ship_eu), bands, text_nl, text_en) in enumerate(PLANS):
        plans[code] = services.save_plan(None, services.PlanData(
            code=code, name_nl=name_nl, name_en=name_en, kind=kind, price_cents=price,
            issues_per_term=issues, includes_print=has_print, includes_digital=has_digital,
            shipping_nl_cents=ship_nl if has_print else 0,
            shipping_eu_cents=ship_eu if has_print else 0, bands=bands, position=position,
            description_nl=text_nl, description_en=text_en,
        ), actor=None)
    return plans


def _promo_codes(plans: dict[str, Plan], today: date) -> None:
    for code, kind, value, valid_from, valid_until, max_uses, used, only, text in [
        ("LENTE2026", PromoKind.PERCENT, 1500, today - timedelta(days=20),
         today + timedelta(days=60), 200, 23, [], "Voorjaarscampagne"),
        ("STUDIEDAG", PromoKind.FIXED, 1000, None, None, 50, 50, [],
         "Studiedag kinderopvang (opgebruikt)"),
        ("NIEUWJAAR", PromoKind.PERCENT, 2000, today - timedelta(days=120),
         today - timedelta(days=60), None, 41, [], "Nieuwjaarsactie (verlopen)"),
        ("ORGA10", PromoKind.PERCENT, 1000, None, None, None, 6, ["organisatie"],
         "Extra korting voor organisaties"),
    ]:
        promo = services.save_promo_code(None, services.PromoData(
            code=code, kind=kind, percent_bp=value if kind == PromoKind.PERCENT else 0,
            amount_cents=value if kind == PromoKind.FIXED else 0, valid_from=valid_from,
            valid_until=valid_until, max_uses=max_uses,
            plan_ids=[plans[c].id for c in only], description=text,
        ), actor=None)
        promo.used_count = used


def _back_issues() -> None:
    for issue in db.session.scalars(sa.select(Issue).where(
            Issue.state.in_([IssueState.PUBLISHED, IssueState.DISPATCHED]))):
        db.session.add(SingleCopyOffer(issue_id=issue.id, price_cents=1500,
                                       stock=40 if issue.state == IssueState.PUBLISHED else 0))


def _people(rng: random.Random, password_hash: str) -> list[User]:
    people = []
    start = now_utc() - timedelta(days=800)
    for number in range(1, SUBSCRIBERS + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = (f"{first}.{last}.{number}".lower().replace(" ", "") + "@example.be")
        created = start + timedelta(days=rng.randrange(0, 780), minutes=rng.randrange(1440))
        user = User(email=email, name=f"{first} {last}", password_hash=password_hash,
                    locale="en" if number % 17 == 0 else "nl_BE", email_verified_at=created,
                    created_at=created, password_changed_at=created)
        user.role_rows.append(UserRole(role=Role.SUBSCRIBER))
        people.append(user)
    db.session.add_all(people)
    db.session.flush()
    return people


@dataclass
class _OrderRow:
    order: Order
    paid: bool
    closed: OrderState | None = None
    # Refunds made on the order's payment: each gets its credit note, numbered in date order.
    refunds: list[Refund] = field(default_factory=list)


def _communication(rng: random.Random, used: set[str]) -> str:
    while True:
        value = structured_communication(rng.randrange(10**9, 10**10))
        if value not in used:
            used.add(value)
            return value


def _address(rng: random.Random, name: str, organisation: str = "", copies: int = 1,
             group_no: int = 1) -> DeliveryAddress:
    postcode, city, country = rng.choice(CITIES)
    return DeliveryAddress(group_no=group_no, copies=copies, name=name,
                           organisation=organisation,
                           street=f"{rng.choice(STREETS)} {rng.randrange(1, 180)}",
                           postcode=postcode, city=city, country=country)


def _make_order(user: User, plan: Plan, *, copies: int, addresses: list[DeliveryAddress],
                placed: datetime, communication: str, organisation: str = "",
                vat_number: str = "", promo: tuple[str, int] | None = None,
                locale: str = "nl_BE") -> Order:
    texts = services._line_texts(plan, locale)
    unit = pricing.unit_price_for_copies(plan.price_cents, plan.band_tuples(), copies)
    lines = [pricing.price_line("subscription", texts["subscription"], copies, unit,
                                plan.vat_rate_bp)]
    if promo:
        off = pricing.discount_cents(lines[0].gross_cents, percent_bp=promo[1])
        lines.append(pricing.price_line("discount", f"{texts['discount']} {promo[0]}", 1, -off,
                                        plan.vat_rate_bp))
    shipping: dict[int, int] = {}
    for address in addresses:
        per_copy = plan.shipping_cents(zone_for_country(address.country))
        if per_copy:
            shipping[per_copy] = shipping.get(per_copy, 0) + address.copies
    for per_copy, count in sorted(shipping.items()):
        lines.append(pricing.price_line("shipping", texts["shipping"], count, per_copy,
                                        plan.vat_rate_bp))
    totals = pricing.totals(lines)
    first = addresses[0] if addresses else None
    order = Order(
        user=user, locale=locale, structured_communication=communication,
        provider="bank_transfer", billing_name=user.name, billing_email=user.email,
        billing_organisation=organisation, billing_vat_number=vat_number,
        billing_street=first.street if first else "",
        billing_postcode=first.postcode if first else "",
        billing_city=first.city if first else "", billing_country=first.country if first else "BE",
        total_cents=totals.gross_cents, vat_cents=totals.vat_cents, created_at=placed,
        expires_at=placed + timedelta(days=30),
    )
    for position, line in enumerate(lines):
        order.lines.append(OrderLine(
            position=position, kind=line.kind, description=line.description, plan_id=plan.id,
            quantity=line.quantity, unit_cents=line.unit_cents, vat_rate_bp=line.rate_bp,
            gross_cents=line.gross_cents, vat_cents=line.vat_cents))
    return order


def _issue_on_or_after(issues: list[Issue], day: date) -> Issue | None:
    return next((issue for issue in issues if issue.dispatch_cutoff >= day), None)


def _dispatched_since(issues: list[Issue], first: Issue | None) -> int:
    if first is None:
        return 0
    return sum(1 for issue in issues if issue.state == IssueState.DISPATCHED
               and (issue.print_date, issue.id) >= (first.print_date, first.id))


# The mix of the generated people: (weight, what they have).
MIX = [(40, "active"), (8, "pending"), (8, "cancelled"), (4, "graced"), (4, "lapsed"),
       (6, "expired"), (3, "complimentary"), (6, "gift")]


def _orders(rng: random.Random, people: list[User], plans: dict[str, Plan],
            issues: list[Issue], today: date) -> list[_OrderRow]:
    rows: list[_OrderRow] = []
    now = now_utc()
    kinds = [kind for weight, kind in MIX for _ in range(weight)]
    used: set[str] = set()
    for user in people:
        kind = rng.choice(kinds)
        organisation = ""
        roll = rng.random()
        if roll < 0.2:
            plan = plans["organisatie"]
            organisation = rng.choice(ORGANISATIONS)
            copies = rng.choice([2, 3, 5, 5, 8, 10, 12, 25])
        elif roll < 0.35:
            plan, copies = plans["digitaal"], 1
        elif roll < 0.45:
            plan, copies = plans["student"], 1
        elif roll < 0.55:
            plan, copies = plans["papier"], 1
        else:
            plan, copies = plans["individueel"], 1
        if kind == "gift":
            plan, copies, organisation = plans["cadeau"], 1, ""
        if kind == "pending":
            placed = now - timedelta(days=rng.randrange(1, 25), hours=rng.randrange(24))
        elif kind == "expired":
            placed = now - timedelta(days=rng.randrange(35, 300))
        else:
            placed = max(user.created_at, now - timedelta(days=rng.randrange(20, 360)))
        addresses: list[DeliveryAddress] = []
        recipient = ""
        if plan.includes_print:
            if kind == "gift":
                recipient = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
                addresses = [_address(rng, recipient)]
            elif copies >= 5 and rng.random() < 0.5:
                second = copies // 2
                addresses = [_address(rng, user.name, organisation, copies - second, 1),
                             _address(rng, "Verantwoordelijke locatie 2", organisation,
                                      second, 2)]
            else:
                addresses = [_address(rng, user.name, organisation, copies)]
        promo = ("LENTE2026", 1500) if rng.random() < 0.08 else None
        order = _make_order(
            user, plan, copies=copies, addresses=addresses, placed=placed,
            communication=_communication(rng, used), organisation=organisation,
            vat_number=_vat_number(rng) if organisation else "", promo=promo,
            locale=user.locale)
        placed_day = placed.astimezone(BRUSSELS).date()
        first = _issue_on_or_after(issues, placed_day)
        used_issues = _dispatched_since(issues, first)
        state = {
            "active": SubscriptionState.ACTIVE, "pending": SubscriptionState.PENDING_PAYMENT,
            "cancelled": SubscriptionState.CANCELLED, "graced": SubscriptionState.GRACED,
            "lapsed": SubscriptionState.LAPSED, "expired": SubscriptionState.EXPIRED,
            "complimentary": SubscriptionState.ACTIVE, "gift": SubscriptionState.ACTIVE,
        }[kind]
        remaining = max(plan.issues_per_term - used_issues, 1)
        if kind in ("graced", "lapsed", "expired"):
            remaining = 0 if kind != "expired" else plan.issues_per_term
        subscription = Subscription(
            subscriber=user, plan=plan, state=state, copies=copies,
            issues_granted=plan.issues_per_term, issues_remaining=remaining,
            first_issue=first, auto_renew=kind not in ("cancelled", "gift", "complimentary"),
            cancel_reason=rng.choice(["", "Te weinig tijd om te lezen", "Ander werk",
                                      "Budget van de organisatie"]) if kind == "cancelled"
            else "",
            gift_recipient_name=recipient, created_at=placed,
            gift_recipient_email=(recipient.lower().replace(" ", ".") + "@example.be")
            if recipient else "",
            gift_message="Veel leesplezier met je nieuwe job!" if recipient else "",
            gift_announced_at=placed + timedelta(days=3) if recipient else None,
            activated_at=placed + timedelta(days=3) if state != SubscriptionState.EXPIRED
            and kind != "pending" else None,
        )
        subscription.addresses.extend(addresses)
        if kind == "complimentary":
            subscription.complimentary = True
            subscription.note = rng.choice(["Partnerorganisatie", "Redactielid",
                                            "Wettelijk depot"])
            db.session.add(subscription)
            continue
        subscription.order = order
        db.session.add(order)
        payment = Payment(provider="bank_transfer", amount_cents=order.total_cents,
                          created_at=placed)
        order.payments.append(payment)
        if kind == "pending":
            rows.append(_OrderRow(order, paid=False))
        elif kind == "expired":
            order.state = OrderState.EXPIRED
            order.closed_at = placed + timedelta(days=30)
            payment.state = PaymentState.EXPIRED
            rows.append(_OrderRow(order, paid=False, closed=OrderState.EXPIRED))
        else:
            order.state = OrderState.PAID
            paid_at = placed + timedelta(days=rng.randrange(1, 12))
            order.paid_at = payment.paid_at = paid_at
            payment.state = PaymentState.PAID
            payment.received_on = paid_at.astimezone(BRUSSELS).date()
            rows.append(_OrderRow(order, paid=True))
    db.session.flush()
    return rows


def _demo_subscriber(user: User, plans: dict[str, Plan], issues: list[Issue],
                     today: date) -> list[_OrderRow]:
    """subscriber@demo.example: an active subscription with its invoice, a gift bought for
    a colleague, and an earlier term's invoice."""
    rng = random.Random(7)  # nosec B311 # reproducible demo data, not a secret
    used: set[str] = set()
    now = now_utc()
    rows = []
    for days_ago, plan, recipient in ((400, plans["individueel"], ""),
                                      (60, plans["individueel"], ""),
                                      (45, plans["cadeau"], "Lotte Claes")):
        placed = now - timedelta(days=days_ago)
        addresses = [DeliveryAddress(group_no=1, copies=1, name=recipient or user.name,
                                     street="Sint-Pietersnieuwstraat 33", postcode="9000",
                                     city="Gent", country="BE")]
        order = _make_order(user, plan, copies=1, addresses=addresses, placed=placed,
                            communication=_communication(rng, used))
        order.state = OrderState.PAID
        order.paid_at = placed + timedelta(days=2)
        order.payments.append(Payment(provider="bank_transfer", amount_cents=order.total_cents,
                                      state=PaymentState.PAID, paid_at=order.paid_at,
                                      received_on=order.paid_at.astimezone(BRUSSELS).date(),
                                      created_at=placed))
        first = _issue_on_or_after(issues, placed.astimezone(BRUSSELS).date())
        remaining = max(plan.issues_per_term - _dispatched_since(issues, first), 1)
        old = days_ago > 365
        subscription = Subscription(
            subscriber=user, plan=plan, order=order, copies=1,
            state=SubscriptionState.LAPSED if old else SubscriptionState.ACTIVE,
            issues_granted=plan.issues_per_term, issues_remaining=0 if old else remaining,
            first_issue=None if old else first, auto_renew=not recipient and not old,
            gift_recipient_name=recipient,
            gift_recipient_email="lotte.claes@example.be" if recipient else "",
            gift_message="Voor je eerste jaar als begeleider!" if recipient else "",
            created_at=placed, activated_at=order.paid_at,
            gift_announced_at=order.paid_at if recipient else None,
        )
        subscription.addresses.extend(addresses)
        db.session.add(order)
        db.session.add(subscription)
        rows.append(_OrderRow(order, paid=True))
    db.session.flush()
    return rows


# Online payments in the demo: which provider, how the buyer paid (weights), id prefixes.
ONLINE_METHODS = {
    "mollie": ["bancontact"] * 6 + ["ideal"] * 2 + ["kbc", "belfius", "creditcard"],
    "stripe": ["card"] * 4 + ["bancontact"] * 3 + ["sepa_debit"] * 2,
}


def _ref(rng: random.Random, prefix: str, length: int = 14) -> str:
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(length))


def _online_payments(rows: list[_OrderRow]) -> int:
    """Make part of the demo's payments online ones, as Stripe and Mollie would have left
    them (paid, pending at the bank, expired; a few refunded, charged back, one chargeback
    reversed), without calling a provider: the references are made up (`demo` in them), so
    the back office and the business desk show real-looking rows. Returns how many."""
    rng = random.Random(55)  # nosec B311 # reproducible demo data, not a secret
    now = now_utc()
    made = 0
    refunds = chargebacks = 0
    for row in rows:
        order = row.order
        if order.user is not None and order.user.email == DEMO_SUBSCRIBER:
            # The demo subscriber's current term: Bancontact at Mollie; their gift: a card
            # at Stripe, partly refunded (a wrong delivery address).
            provider = "mollie" if order.subscriptions and not order.subscriptions[0].is_gift \
                else "stripe"
            if order.created_at < now - timedelta(days=365):
                continue
        elif rng.random() < 0.45:
            provider = rng.choice(["mollie", "mollie", "stripe"])
        else:
            continue
        payment = order.payments[-1]
        if payment.state not in (PaymentState.PAID, PaymentState.OPEN, PaymentState.EXPIRED):
            continue
        order.provider = payment.provider = provider
        if order.user is not None and order.user.email == DEMO_SUBSCRIBER:
            payment.method = "bancontact" if provider == "mollie" else "card"
        else:
            payment.method = rng.choice(ONLINE_METHODS[provider])
        if provider == "mollie":
            payment.provider_ref = _ref(rng, "tr_demo")
        else:
            payment.provider_ref = _ref(rng, "cs_test_demo", 24)
            payment.intent_ref = _ref(rng, "pi_demo", 20)
        payment.checkout_url = None
        made += 1
        if payment.state == PaymentState.OPEN:
            # Not paid yet: a direct debit on its way (Stripe SEPA) or a Mollie page left
            # open; neither can be paid from the demo (there is no provider behind it).
            payment.state = PaymentState.PENDING if payment.method == "sepa_debit" \
                else PaymentState.OPEN
            continue
        if payment.state != PaymentState.PAID:
            continue
        paid_at = payment.paid_at or order.created_at
        demo_gift = order.user is not None and order.user.email == DEMO_SUBSCRIBER \
            and provider == "stripe"
        if demo_gift or (refunds < 6 and rng.random() < 0.06):
            refunds += 1
            amount = 1500 if demo_gift else rng.choice([order.total_cents // 2, 1000, 2000])
            refund = Refund(provider=provider, provider_ref=_ref(rng, "re_demo"),
                            amount_cents=min(amount, order.total_cents),
                            reason="Verkeerd leveradres: tweede exemplaar niet geleverd"
                            if demo_gift else rng.choice(
                                ["Dubbel besteld", "Korting achteraf toegekend",
                                 "Nummer beschadigd geleverd"]),
                            created_at=min(paid_at + timedelta(days=rng.randrange(3, 30)),
                                           now - timedelta(hours=2)))
            payment.refunds.append(refund)
            row.refunds.append(refund)
        elif chargebacks < 3 and not order.subscriptions[0].is_gift \
                and order.subscriptions[0].state == SubscriptionState.ACTIVE \
                and rng.random() < 0.05:
            chargebacks += 1
            when = min(paid_at + timedelta(days=rng.randrange(20, 60)),
                       now - timedelta(days=1))
            chargeback = Chargeback(
                provider=provider, amount_cents=payment.amount_cents, created_at=when,
                provider_ref=_ref(rng, "chb_demo" if provider == "mollie" else "dp_demo"),
                reason="Betwist door de rekeninghouder")
            payment.chargebacks.append(chargeback)
            if chargebacks == 2:
                # Won: the money came back a few weeks later.
                db.session.flush()
                payment.chargebacks.append(Chargeback(
                    provider=provider, provider_ref=f"{chargeback.provider_ref}:reversed",
                    amount_cents=-payment.amount_cents, reason="reversed",
                    reversal_of_id=chargeback.id,
                    created_at=min(when + timedelta(days=21), now - timedelta(hours=1))))
            else:
                # The order is owed again and the subscription waits for payment.
                chargeback.reopened_order = True
                order.state = OrderState.AWAITING_PAYMENT
                order.paid_at = None
                order.expires_at = now + timedelta(days=20)
                for subscription in order.subscriptions:
                    subscription.state = SubscriptionState.PENDING_PAYMENT
    db.session.flush()
    return made


def _number_documents(rows: list[_OrderRow], counters: _Counters) -> None:
    """Invoices (and credit notes for expired orders) numbered per year in date order, and
    the counters left where the next real invoice continues."""
    rows.sort(key=lambda row: (row.order.created_at, row.order.id))
    notes: list[tuple[datetime, Invoice]] = []
    for row in rows:
        order = row.order
        issued = order.created_at.astimezone(BRUSSELS).date()
        sequence = counters.invoice[issued.year] = counters.invoice.get(issued.year, 0) + 1
        invoice = Invoice(
            number=f"{issued.year}-{sequence:06d}", year=issued.year, sequence=sequence,
            order=order, issue_date=issued, due_date=issued + timedelta(days=30),
            total_cents=order.total_cents, vat_cents=order.vat_cents,
            buyer_name=order.billing_name, buyer_organisation=order.billing_organisation,
            buyer_vat_number=order.billing_vat_number,
            buyer_address=services._buyer_address(order), buyer_email=order.billing_email,
            locale=order.locale, issued_at=order.created_at,
        )
        db.session.add(invoice)
        if row.closed is not None and order.closed_at is not None:
            notes.append((order.closed_at, invoice, None))
        for refund in row.refunds:
            notes.append((refund.created_at, invoice, refund))
    for closed_at, invoice, refund in sorted(notes, key=lambda item: item[0]):
        issued = closed_at.astimezone(BRUSSELS).date()
        sequence = counters.credit[issued.year] = counters.credit.get(issued.year, 0) + 1
        amount = refund.amount_cents if refund else invoice.total_cents
        rate = invoice.order.lines[0].vat_rate_bp if invoice.order.lines else 0
        note = CreditNote(
            number=f"CN{issued.year}-{sequence:06d}", year=issued.year, sequence=sequence,
            invoice=invoice, issue_date=issued,
            reason=refund.reason if refund else "Bestelling niet op tijd betaald",
            total_cents=amount,
            vat_cents=pricing.vat_in_gross(amount, rate) if refund else invoice.vat_cents,
            buyer_name=invoice.buyer_name, buyer_organisation=invoice.buyer_organisation,
            buyer_vat_number=invoice.buyer_vat_number, buyer_address=invoice.buyer_address,
            buyer_email=invoice.buyer_email, locale=invoice.locale, issued_at=closed_at,
        )
        db.session.add(note)
        if refund is not None:
            refund.credit_note = note
    for series, numbers in ((services.INVOICE_SERIES, counters.invoice),
                            (services.CREDIT_NOTE_SERIES, counters.credit)):
        for year, last in numbers.items():
            db.session.add(DocumentCounter(series=series, year=year, last_number=last))
    db.session.flush()
