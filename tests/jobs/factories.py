"""Subscriptions in a given state, made directly (the jobs tests need many, in exact
states); and the same set-based for the 2,000-row tests."""

from __future__ import annotations

import itertools

import sqlalchemy as sa

from editorial.models import Issue
from magazine.db import db
from magazine.models import User
from subscriptions.models import DeliveryAddress, Plan, Subscription
from subscriptions.states import SubscriptionState

_numbers = itertools.count(1)


def make_subscription(
    plan: Plan, subscriber: User | None, *, state: SubscriptionState = SubscriptionState.ACTIVE,
    remaining: int = 3, first_issue: Issue | None = None, copies: int = 1,
    addresses: list[dict] | None = None, auto_renew: bool = True, term: int = 1,
    complimentary: bool = False, grace_used: int = 0, graced_at=None, **extra,
) -> Subscription:
    subscription = Subscription(
        subscriber_id=subscriber.id if subscriber else None, plan_id=plan.id, state=state,
        copies=copies, issues_granted=plan.issues_per_term, issues_remaining=remaining,
        first_issue_id=first_issue.id if first_issue else None, auto_renew=auto_renew,
        term=term, complimentary=complimentary, grace_issues_used=grace_used,
        graced_at=graced_at, **extra,
    )
    if plan.includes_print:
        for group_no, values in enumerate(addresses or [{}], start=1):
            row = {"name": subscriber.name if subscriber else "Lezer", "street": "Kerkstraat 12",
                   "postcode": "9000", "city": "Gent", "country": "BE", "copies": copies}
            row.update(values)
            row.setdefault("group_no", group_no)
            subscription.addresses.append(DeliveryAddress(**row))
    db.session.add(subscription)
    db.session.commit()
    return subscription


def make_many_subscriptions(plan: Plan, count: int, *, remaining: int = 0,
                            state: SubscriptionState = SubscriptionState.ACTIVE) -> list[int]:
    """`count` subscribers with one subscription each and one address, inserted with a
    few set-based statements (fast enough for 2,000 rows on both databases)."""
    start = next(_numbers) * 100_000
    db.session.execute(sa.insert(User), [
        {"email": f"many{start + i}@example.org", "name": f"Lezer {start + i}",
         "password_hash": "x", "locale": "nl_BE"} for i in range(count)])
    user_ids = db.session.scalars(sa.select(User.id).where(
        User.email.like("many%@example.org"), User.name.like("Lezer %"))
        .order_by(User.id)).all()[-count:]
    db.session.execute(sa.insert(Subscription), [
        {"subscriber_id": user_id, "plan_id": plan.id, "state": state, "copies": 1,
         "issues_granted": plan.issues_per_term, "issues_remaining": remaining,
         "auto_renew": True, "term": 1, "complimentary": False, "grace_issues_used": 0,
         "cancel_reason": "", "note": "", "gift_recipient_name": "",
         "gift_recipient_email": "", "gift_message": ""}
        for user_id in user_ids])
    ids = db.session.scalars(sa.select(Subscription.id).where(
        Subscription.subscriber_id.in_(user_ids)).order_by(Subscription.id)).all()
    if plan.includes_print:
        db.session.execute(sa.insert(DeliveryAddress), [
            {"subscription_id": sid, "group_no": 1, "copies": 1, "name": f"Lezer {sid}",
             "organisation": "", "street": f"Dorpsstraat {sid % 300 + 1}",
             "postcode": "2000", "city": "Antwerpen", "country": "BE"} for sid in ids])
    db.session.commit()
    return list(ids)
