"""Plans, promo codes, orders, payments, subscriptions, delivery addresses and the legal
documents (invoices and credit notes, numbered per year without gaps)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from editorial.models import Issue
from magazine.clock import now_utc
from magazine.db import UTCDateTime, db
from magazine.models import User, str_enum
from subscriptions.states import OrderState, PaymentState, SubscriptionState

DEFAULT_VAT_RATE_BP = 600  # 6%: Belgian VAT on newspapers and periodicals


class PlanKind(enum.StrEnum):
    PRINT = "print"
    DIGITAL = "digital"
    PRINT_DIGITAL = "print_digital"
    ORGANISATION = "organisation"
    STUDENT = "student"
    GIFT = "gift"


class Zone(enum.StrEnum):
    """Shipping zones for print: Belgium, the Netherlands, the rest of the EU."""

    BE = "BE"
    NL = "NL"
    EU = "EU"


# Countries we deliver print to (ISO 3166 alpha-2), the EU.
EU_COUNTRIES = (
    "BE", "NL", "LU", "FR", "DE", "AT", "BG", "CY", "CZ", "DK", "EE", "ES", "FI", "GR", "HR",
    "HU", "IE", "IT", "LT", "LV", "MT", "PL", "PT", "RO", "SE", "SI", "SK",
)


def zone_for_country(country: str) -> Zone:
    if country == "BE":
        return Zone.BE
    if country == "NL":
        return Zone.NL
    return Zone.EU


class Plan(db.Model):
    """A formule: what a subscriber buys, with its price per term (VAT included)."""

    __tablename__ = "plans"
    __table_args__ = (
        sa.CheckConstraint("price_cents > 0", name="price_positive"),
        sa.CheckConstraint("issues_per_term > 0", name="issues_positive"),
        sa.CheckConstraint("vat_rate_bp >= 0", name="vat_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name_nl: Mapped[str] = mapped_column(sa.String(120))
    name_en: Mapped[str] = mapped_column(sa.String(120))
    description_nl: Mapped[str] = mapped_column(sa.Text, default="")
    description_en: Mapped[str] = mapped_column(sa.Text, default="")
    kind: Mapped[PlanKind] = mapped_column(str_enum(PlanKind))
    price_cents: Mapped[int]
    vat_rate_bp: Mapped[int] = mapped_column(default=DEFAULT_VAT_RATE_BP)
    issues_per_term: Mapped[int]
    includes_print: Mapped[bool] = mapped_column(default=True)
    includes_digital: Mapped[bool] = mapped_column(default=False)
    # Per copy per term, on top of the price, for print outside the free zone.
    shipping_be_cents: Mapped[int] = mapped_column(default=0)
    shipping_nl_cents: Mapped[int] = mapped_column(default=0)
    shipping_eu_cents: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    price_bands: Mapped[list[PlanPriceBand]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", order_by="PlanPriceBand.min_copies",
        lazy="selectin",
    )

    def name(self, locale: str) -> str:
        return self.name_en if locale.startswith("en") else self.name_nl

    def description(self, locale: str) -> str:
        return self.description_en if locale.startswith("en") else self.description_nl

    @property
    def allows_copies(self) -> bool:
        """Only organisations order several copies of one subscription."""
        return self.kind == PlanKind.ORGANISATION

    @property
    def is_gift(self) -> bool:
        return self.kind == PlanKind.GIFT

    def shipping_cents(self, zone: Zone) -> int:
        if not self.includes_print:
            return 0
        return {
            Zone.BE: self.shipping_be_cents, Zone.NL: self.shipping_nl_cents,
            Zone.EU: self.shipping_eu_cents,
        }[zone]

    def band_tuples(self) -> list[tuple[int, int]]:
        return [(band.min_copies, band.price_cents) for band in self.price_bands]

    def __repr__(self) -> str:
        return f"<Plan {self.code}>"


class PlanPriceBand(db.Model):
    """Volume price for organisations: from `min_copies` copies, each costs `price_cents`."""

    __tablename__ = "plan_price_bands"
    __table_args__ = (
        sa.UniqueConstraint("plan_id", "min_copies"),
        sa.CheckConstraint("min_copies > 1", name="min_copies_above_one"),
        sa.CheckConstraint("price_cents > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id", ondelete="CASCADE"))
    min_copies: Mapped[int]
    price_cents: Mapped[int]

    plan: Mapped[Plan] = relationship(back_populates="price_bands")


class PromoKind(enum.StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"


promo_code_plans = sa.Table(
    "promo_code_plans",
    db.metadata,
    sa.Column("promo_code_id", sa.ForeignKey("promo_codes.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("plan_id", sa.ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True),
)


class PromoCode(db.Model):
    """A campaign code. `used_count` only grows through a conditional update (see
    services.claim_promo_code), so `max_uses` holds under concurrent checkouts."""

    __tablename__ = "promo_codes"
    __table_args__ = (
        sa.CheckConstraint("used_count >= 0", name="used_not_negative"),
        sa.CheckConstraint("max_uses IS NULL OR used_count <= max_uses", name="within_max_uses"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    description: Mapped[str] = mapped_column(sa.String(200), default="")
    kind: Mapped[PromoKind] = mapped_column(str_enum(PromoKind))
    percent_bp: Mapped[int] = mapped_column(default=0)  # 1500 = 15%
    amount_cents: Mapped[int] = mapped_column(default=0)
    valid_from: Mapped[date | None]
    valid_until: Mapped[date | None]
    max_uses: Mapped[int | None]
    used_count: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    plans: Mapped[list[Plan]] = relationship(secondary=promo_code_plans, lazy="selectin")


class SingleCopyOffer(db.Model):
    """A single copy or back issue for sale while stock lasts. `stock` only shrinks through
    a conditional update (`stock >= n`), so it never goes below zero."""

    __tablename__ = "single_copy_offers"
    __table_args__ = (
        sa.CheckConstraint("stock >= 0", name="stock_not_negative"),
        sa.CheckConstraint("price_cents > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(sa.ForeignKey("issues.id"), unique=True)
    price_cents: Mapped[int]
    vat_rate_bp: Mapped[int] = mapped_column(default=DEFAULT_VAT_RATE_BP)
    stock: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)

    issue: Mapped[Issue] = relationship(lazy="joined")


class Order(db.Model):
    """Money owed. Billing details are copied onto the order (and its invoice) when it is
    placed, so later changes to the account do not rewrite history."""

    __tablename__ = "orders"
    __table_args__ = (sa.Index("ix_orders_state_expires", "state", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[OrderState] = mapped_column(
        str_enum(OrderState), default=OrderState.AWAITING_PAYMENT
    )
    locale: Mapped[str] = mapped_column(sa.String(8), default="nl_BE")
    # Belgian structured communication: 12 digits, the last two the check digits.
    structured_communication: Mapped[str] = mapped_column(sa.String(12), unique=True)
    provider: Mapped[str] = mapped_column(sa.String(32), default="bank_transfer")
    billing_name: Mapped[str] = mapped_column(sa.String(200))
    billing_email: Mapped[str] = mapped_column(sa.String(254))
    billing_organisation: Mapped[str] = mapped_column(sa.String(200), default="")
    billing_vat_number: Mapped[str] = mapped_column(sa.String(20), default="")
    billing_po_reference: Mapped[str] = mapped_column(sa.String(60), default="")
    billing_street: Mapped[str] = mapped_column(sa.String(200), default="")
    billing_postcode: Mapped[str] = mapped_column(sa.String(12), default="")
    billing_city: Mapped[str] = mapped_column(sa.String(100), default="")
    billing_country: Mapped[str] = mapped_column(sa.String(2), default="BE")
    promo_code_id: Mapped[int | None] = mapped_column(sa.ForeignKey("promo_codes.id"))
    total_cents: Mapped[int]
    vat_cents: Mapped[int]
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    user: Mapped[User | None] = relationship()
    promo_code: Mapped[PromoCode | None] = relationship()
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.position",
        lazy="selectin",
    )
    payments: Mapped[list[Payment]] = relationship(
        back_populates="order", order_by="Payment.id"
    )
    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="order", foreign_keys="Subscription.order_id"
    )
    invoice: Mapped[Invoice | None] = relationship(back_populates="order", uselist=False)

    @property
    def reference(self) -> str:
        return f"B{self.id:06d}"

    @property
    def net_cents(self) -> int:
        return self.total_cents - self.vat_cents

    @property
    def formatted_communication(self) -> str:
        from subscriptions.providers.bank_transfer import format_communication

        return format_communication(self.structured_communication)


class OrderLine(db.Model):
    """One line as priced when the order was placed (see subscriptions.pricing)."""

    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"),
                                          index=True)
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(sa.String(20))
    description: Mapped[str] = mapped_column(sa.String(300))
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id"))
    offer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("single_copy_offers.id"))
    quantity: Mapped[int]
    unit_cents: Mapped[int]
    vat_rate_bp: Mapped[int]
    gross_cents: Mapped[int]
    vat_cents: Mapped[int]

    order: Mapped[Order] = relationship(back_populates="lines")

    @property
    def net_cents(self) -> int:
        return self.gross_cents - self.vat_cents


class Payment(db.Model):
    """Money received (or expected) for an order, through one provider."""

    __tablename__ = "payments"
    __table_args__ = (sa.UniqueConstraint("provider", "provider_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    provider: Mapped[str] = mapped_column(sa.String(32))
    provider_ref: Mapped[str | None] = mapped_column(sa.String(100))
    state: Mapped[PaymentState] = mapped_column(str_enum(PaymentState), default=PaymentState.OPEN)
    amount_cents: Mapped[int]
    note: Mapped[str] = mapped_column(sa.String(300), default="")
    recorded_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    received_on: Mapped[date | None]
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # Online payments (see subscriptions/payments.py): where the buyer pays, how, whether
    # this first payment saves the method for renewals, the provider's customer and
    # payment intent, and the key that makes a retried call the same call.
    checkout_url: Mapped[str | None] = mapped_column(sa.String(500))
    method: Mapped[str] = mapped_column(sa.String(32), default="", server_default="")
    save_method: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    customer_ref: Mapped[str | None] = mapped_column(sa.String(100))
    intent_ref: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(120), unique=True)
    last_error: Mapped[str] = mapped_column(sa.String(300), default="", server_default="")

    order: Mapped[Order] = relationship(back_populates="payments")
    refunds: Mapped[list[Refund]] = relationship(back_populates="payment", order_by="Refund.id")
    chargebacks: Mapped[list[Chargeback]] = relationship(back_populates="payment",
                                                         order_by="Chargeback.id")

    @property
    def refunded_cents(self) -> int:
        return sum(refund.amount_cents for refund in self.refunds)

    @property
    def refundable_cents(self) -> int:
        charged_back = sum(chargeback.amount_cents for chargeback in self.chargebacks)
        return max(self.amount_cents - self.refunded_cents - charged_back, 0)


class Refund(db.Model):
    """Money paid back against a paid payment, recorded once per provider id."""

    __tablename__ = "refunds"
    __table_args__ = (sa.UniqueConstraint("provider", "provider_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(sa.ForeignKey("payments.id"), index=True)
    provider: Mapped[str] = mapped_column(sa.String(32))
    provider_ref: Mapped[str | None] = mapped_column(sa.String(100))
    amount_cents: Mapped[int]
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    credit_note_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credit_notes.id"))

    payment: Mapped[Payment] = relationship(back_populates="refunds")
    credit_note: Mapped[CreditNote | None] = relationship()


class Chargeback(db.Model):
    """The payer's bank took (part of) a paid payment back; recorded once per provider id."""

    __tablename__ = "chargebacks"
    __table_args__ = (sa.UniqueConstraint("provider", "provider_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(sa.ForeignKey("payments.id"), index=True)
    provider: Mapped[str] = mapped_column(sa.String(32))
    provider_ref: Mapped[str] = mapped_column(sa.String(100))
    amount_cents: Mapped[int]
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # A won dispute (Stripe) or a reversed chargeback (Mollie `reversedAt`) is its own row:
    # the money back, as a negative amount dated the day it came back, pointing at the
    # chargeback it reverses (unique: reversed once). Sums by month stay right both months.
    reversal_of_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("chargebacks.id"), unique=True)
    # This chargeback took back what paid the order: the order was reopened (awaiting
    # payment again) and its subscriptions suspended until it is paid or reversed.
    reopened_order: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    payment: Mapped[Payment] = relationship(back_populates="chargebacks")

    @property
    def is_reversal(self) -> bool:
        return self.reversal_of_id is not None


class MandateState(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"    # removed by the subscriber (and revoked at the provider)
    REPLACED = "replaced"  # a newer method took its place


class Mandate(db.Model):
    """A payment method the provider keeps for a subscriber's automatic renewals (Mollie: a
    mandate; Stripe: a saved PaymentMethod on a Customer). Recorded once per provider id."""

    __tablename__ = "mandates"
    __table_args__ = (sa.UniqueConstraint("provider", "mandate_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    provider: Mapped[str] = mapped_column(sa.String(32))
    customer_ref: Mapped[str] = mapped_column(sa.String(100))
    mandate_ref: Mapped[str] = mapped_column(sa.String(100))
    method: Mapped[str] = mapped_column(sa.String(32))
    label: Mapped[str] = mapped_column(sa.String(100))
    state: Mapped[MandateState] = mapped_column(str_enum(MandateState),
                                                default=MandateState.VALID)
    payment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class MethodSetup(db.Model):
    """A replacement payment method being saved without a renewal to pay (Stripe Checkout in
    setup mode; a Mollie verification payment). Recorded when it starts, so the browser's
    return, the provider's webhook and the reconcile job all find it and save the method
    once (under a row lock); Mollie's verification payment is paid back once."""

    __tablename__ = "method_setups"
    __table_args__ = (sa.UniqueConstraint("provider", "reference"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    provider: Mapped[str] = mapped_column(sa.String(32))
    reference: Mapped[str] = mapped_column(sa.String(100))
    state: Mapped[str] = mapped_column(sa.String(16), default="open")  # open|saved|ended
    mandate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("mandates.id"))
    # Mollie: the refund of the verification payment (nothing is invoiced for it).
    refund_ref: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProviderEvent(db.Model):
    """A provider's notification, recorded once by its id (Stripe: the event id; Mollie,
    which only sends a payment id: the payment id with the status it was found in), so a
    duplicate is recognised and answered at once."""

    __tablename__ = "provider_events"
    __table_args__ = (sa.UniqueConstraint("provider", "event_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(32))
    event_ref: Mapped[str] = mapped_column(sa.String(160))
    kind: Mapped[str] = mapped_column(sa.String(80), default="")
    payment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


class Subscription(db.Model):
    """A subscriber's entitlement, counted in issues. Each dispatch uses one per copy group;
    renewal adds a term."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.CheckConstraint("copies > 0", name="copies_positive"),
        sa.CheckConstraint("issues_remaining >= 0", name="remaining_not_negative"),
        sa.Index("ix_subscriptions_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id"))
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    state: Mapped[SubscriptionState] = mapped_column(
        str_enum(SubscriptionState), default=SubscriptionState.PENDING_PAYMENT
    )
    copies: Mapped[int] = mapped_column(default=1)
    # The term being served: 1 for the first, +1 for every renewal (part of the idempotency
    # key of a renewal charge: subscription + term + attempt).
    term: Mapped[int] = mapped_column(default=1, server_default="1")
    issues_granted: Mapped[int]
    issues_remaining: Mapped[int]
    first_issue_id: Mapped[int | None] = mapped_column(sa.ForeignKey("issues.id"))
    auto_renew: Mapped[bool] = mapped_column(default=True)
    cancel_reason: Mapped[str] = mapped_column(sa.String(500), default="")
    next_plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id"))
    complimentary: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str] = mapped_column(sa.String(300), default="")
    gift_recipient_name: Mapped[str] = mapped_column(sa.String(200), default="")
    gift_recipient_email: Mapped[str] = mapped_column(sa.String(254), default="")
    gift_message: Mapped[str] = mapped_column(sa.Text, default="")
    gift_announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Grace (see subscriptions.renewals): the term ran out unpaid; the subscription still
    # receives GRACE_ISSUES issues, counted here and taken from the next term when paid.
    graced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    grace_issues_used: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    subscriber: Mapped[User | None] = relationship(foreign_keys=[subscriber_id])
    plan: Mapped[Plan] = relationship(foreign_keys=[plan_id], lazy="joined")
    next_plan: Mapped[Plan | None] = relationship(foreign_keys=[next_plan_id])
    order: Mapped[Order | None] = relationship(back_populates="subscriptions",
                                               foreign_keys=[order_id])
    first_issue: Mapped[Issue | None] = relationship()
    addresses: Mapped[list[DeliveryAddress]] = relationship(
        back_populates="subscription", cascade="all, delete-orphan",
        order_by="(DeliveryAddress.group_no, DeliveryAddress.id)", lazy="selectin",
    )

    @property
    def is_gift(self) -> bool:
        return bool(self.gift_recipient_email)


class DeliveryAddress(db.Model):
    """Where a group of a subscription's copies goes, from an issue on.

    A change never overwrites: it adds a row that takes effect from a later issue
    (`effective_from_issue_id`; none: from the start), so a dispatch already prepared keeps
    the address it had and the page can say from which issue the new one applies."""

    __tablename__ = "delivery_addresses"
    __table_args__ = (sa.CheckConstraint("copies > 0", name="copies_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    group_no: Mapped[int] = mapped_column(default=1)
    copies: Mapped[int] = mapped_column(default=1)
    name: Mapped[str] = mapped_column(sa.String(200))
    organisation: Mapped[str] = mapped_column(sa.String(200), default="")
    street: Mapped[str] = mapped_column(sa.String(200))
    postcode: Mapped[str] = mapped_column(sa.String(12))
    city: Mapped[str] = mapped_column(sa.String(100))
    country: Mapped[str] = mapped_column(sa.String(2), default="BE")
    effective_from_issue_id: Mapped[int | None] = mapped_column(sa.ForeignKey("issues.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    subscription: Mapped[Subscription] = relationship(back_populates="addresses")
    effective_from_issue: Mapped[Issue | None] = relationship()

    def lines(self) -> list[str]:
        return [x for x in (self.name, self.organisation, self.street,
                            f"{self.postcode} {self.city}", self.country) if x]


class DocumentCounter(db.Model):
    """The last number used per series and year. Taken under a row lock in the transaction
    that issues the document, so numbers have no gaps and no doubles (see
    services.next_document_number)."""

    __tablename__ = "document_counters"

    series: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last_number: Mapped[int] = mapped_column(default=0)


class _BuyerSnapshot:
    """Columns both legal documents copy from the order at the moment they are issued."""

    buyer_name: Mapped[str] = mapped_column(sa.String(200))
    buyer_organisation: Mapped[str] = mapped_column(sa.String(200), default="")
    buyer_vat_number: Mapped[str] = mapped_column(sa.String(20), default="")
    buyer_address: Mapped[str] = mapped_column(sa.String(400), default="")
    buyer_email: Mapped[str] = mapped_column(sa.String(254), default="")
    locale: Mapped[str] = mapped_column(sa.String(8), default="nl_BE")


class Invoice(_BuyerSnapshot, db.Model):
    """A factuur: issued when an order is confirmed; its number never changes."""

    __tablename__ = "invoices"
    __table_args__ = (sa.UniqueConstraint("year", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(20), unique=True)
    year: Mapped[int]
    sequence: Mapped[int]
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"), unique=True)
    issue_date: Mapped[date]
    due_date: Mapped[date]
    total_cents: Mapped[int]
    vat_cents: Mapped[int]
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    order: Mapped[Order] = relationship(back_populates="invoice")
    credit_notes: Mapped[list[CreditNote]] = relationship(back_populates="invoice",
                                                          order_by="CreditNote.id")


class CreditNote(_BuyerSnapshot, db.Model):
    """A creditnota: corrects or cancels (part of) an invoice; numbered in its own series."""

    __tablename__ = "credit_notes"
    __table_args__ = (sa.UniqueConstraint("year", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(20), unique=True)
    year: Mapped[int]
    sequence: Mapped[int]
    invoice_id: Mapped[int] = mapped_column(sa.ForeignKey("invoices.id"), index=True)
    issue_date: Mapped[date]
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    total_cents: Mapped[int]  # positive: the amount credited
    vat_cents: Mapped[int]
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    invoice: Mapped[Invoice] = relationship(back_populates="credit_notes")


class Dispatch(db.Model):
    """The locked mailing list of one issue (verzending). Its row is inserted in the same
    transaction as all its entries and lines, and only once per issue (unique): whoever
    inserts it locks the list; a second dispatch of the same issue adds nothing."""

    __tablename__ = "dispatches"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(sa.ForeignKey("issues.id"), unique=True)
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    locked_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    subscriptions: Mapped[int] = mapped_column(default=0)
    copies: Mapped[int] = mapped_column(default=0)
    stock_copies: Mapped[int] = mapped_column(default=0)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    issue: Mapped[Issue] = relationship()


class DispatchEntry(db.Model):
    """One subscription included in one issue's dispatch: it used one issue of its term
    (or of its grace). The primary key (issue, subscription) makes that happen once."""

    __tablename__ = "dispatch_entries"

    issue_id: Mapped[int] = mapped_column(sa.ForeignKey("issues.id"), primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True, index=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id"))
    copies: Mapped[int]
    digital: Mapped[bool] = mapped_column(default=False)
    graced: Mapped[bool] = mapped_column(default=False)
    # Which locking transaction inserted it: only those entries use up an issue.
    lock_token: Mapped[str] = mapped_column(sa.String(32))
    # The digital subscriber's download mail (claimed by a conditional update).
    mailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DispatchLine(db.Model):
    """One address on the printer's mailing file: a copy group of an included subscription
    with the address that applies to this issue, copied when the list was locked."""

    __tablename__ = "dispatch_lines"
    __table_args__ = (sa.UniqueConstraint("issue_id", "subscription_id", "group_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(sa.ForeignKey("issues.id"))
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    group_no: Mapped[int]
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id"))
    copies: Mapped[int]
    name: Mapped[str] = mapped_column(sa.String(200))
    organisation: Mapped[str] = mapped_column(sa.String(200), default="")
    street: Mapped[str] = mapped_column(sa.String(200))
    postcode: Mapped[str] = mapped_column(sa.String(12))
    city: Mapped[str] = mapped_column(sa.String(100))
    country: Mapped[str] = mapped_column(sa.String(2))


class ChargeStatus(enum.StrEnum):
    DUE = "due"              # to be charged at `due_at`
    CHARGING = "charging"    # claimed by a process that is talking to the provider
    PAID = "paid"
    PENDING = "pending"      # a direct debit: the bank answers in days (webhook)
    FAILED = "failed"        # this attempt failed; the next attempt is its own row
    NEEDS_CUSTOMER = "needs_customer"  # mandate gone, refused, authentication needed
    SKIPPED = "skipped"      # no longer due: renewed otherwise, ended, auto-renew off


class RenewalCharge(db.Model):
    """One attempt to charge a subscription's saved mandate for a term: unique by
    (subscription, term, attempt), and its idempotency key is made of the same three, so a
    crash between charging and recording is repaired by charging again with the same key
    (the provider answers with the first charge) instead of charging twice."""

    __tablename__ = "renewal_charges"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "term", "attempt"),
        sa.Index("ix_renewal_charges_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"))
    term: Mapped[int]
    attempt: Mapped[int]
    idempotency_key: Mapped[str] = mapped_column(sa.String(120), unique=True)
    status: Mapped[ChargeStatus] = mapped_column(str_enum(ChargeStatus),
                                                 default=ChargeStatus.DUE)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id"))
    payment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments.id"))
    claimed_by: Mapped[str | None] = mapped_column(sa.String(160))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    subscription: Mapped[Subscription] = relationship()


class RenewalOrder(db.Model):
    """The order that pays a subscription's next term (one per subscription and term).
    When it is paid (by a charge, a transfer recorded by the coordinator, a webhook), the
    renewals job adds the term once: `applied_at` is set by a conditional update."""

    __tablename__ = "renewal_orders"
    __table_args__ = (sa.UniqueConstraint("subscription_id", "term"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"))
    term: Mapped[int]
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id"))
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"), unique=True)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    subscription: Mapped[Subscription] = relationship()
    order: Mapped[Order] = relationship()
    plan: Mapped[Plan] = relationship()


def to_dict(obj: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A row's columns as JSON-friendly values (data export)."""
    result: dict[str, Any] = {}
    for column in obj.__table__.columns:
        if column.key in exclude:
            continue
        value = getattr(obj, column.key)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, enum.Enum):
            value = value.value
        result[column.key] = value
    return result
