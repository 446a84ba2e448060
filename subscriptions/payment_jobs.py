"""The `reconcile-payments` job: re-read the online payments still open or pending at their
provider and apply what it says, so a lost webhook is repaired within hours."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app

from magazine.db import db
from magazine.jobs import Progress, brussels_cron, register_job
from subscriptions import payments
from subscriptions.models import Payment
from subscriptions.providers.base import ProviderError

log = logging.getLogger(__name__)


@dataclass
class ReconcileResult:
    checked: int = 0
    changed: int = 0
    unavailable: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (f"reconcile-payments: {self.checked} checked, {self.changed} changed, "
                f"{self.unavailable} provider unavailable (next run), {self.failed} failed")


@register_job("reconcile-payments", brussels_cron(minute=41),
              "re-read open and pending online payments at Stripe and Mollie (lost webhooks)")
def reconcile_payments(progress: Progress) -> ReconcileResult:
    """One payment per transaction. Applying is idempotent and takes the row lock, so two
    runs at once, or a run racing a webhook, change each payment once."""
    result = ReconcileResult()
    ids = payments.payments_to_reconcile()
    db.session.rollback()
    progress.start(len(ids))
    for payment_id in ids:
        progress.advance(1)
        payment = db.session.get(Payment, payment_id)
        if payment is None or not get_available(payment.provider):
            continue
        before = (payment.state, len(payment.refunds))
        result.checked += 1
        try:
            payments.sync_payment(payment)
            db.session.commit()
        except ProviderError as error:
            db.session.rollback()
            result.unavailable += 1
            log.warning("reconcile-payments: payment %s: %s", payment_id, error)
            continue
        except Exception:
            db.session.rollback()
            result.failed += 1
            log.exception("reconcile-payments: payment %s failed", payment_id)
            continue
        payment = db.session.get(Payment, payment_id)
        if (payment.state, len(payment.refunds)) != before:
            result.changed += 1
    return result


def get_available(provider_name: str) -> bool:
    from subscriptions.providers import get_provider

    return get_provider(provider_name).is_available(current_app)
