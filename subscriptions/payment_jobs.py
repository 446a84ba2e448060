"""The `reconcile-payments` job: re-read the online payments still open or pending at their
provider and apply what it says, so a lost webhook is repaired within the hour; and, once a
day, the paid ones of the last 90 days, for refunds and chargebacks made in the provider's
dashboard whose webhook was lost. Replacement methods being saved (setups) are finished
too: the method saved once, Mollie's verification payment paid back once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app

from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from magazine.jobs import Progress, brussels_cron, register_job
from subscriptions import payments
from subscriptions.models import MethodSetup, Payment
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
    open_ids = payments.payments_to_reconcile()
    paid_ids = payments.paid_to_recheck()
    db.session.rollback()
    today = now_utc().astimezone(BRUSSELS).date().isoformat()
    recheck = set(paid_ids)
    progress.start(len(open_ids) + len(paid_ids))
    for payment_id in [*open_ids, *paid_ids]:
        progress.advance(1)
        payment = db.session.get(Payment, payment_id)
        if payment is None or not get_available(payment.provider):
            continue
        if payment_id in recheck and not payments.record_event(
                payment.provider, f"recheck:{payment_id}:{today}", "recheck", payment_id):
            # Paid payments are re-read once a day (the claim above, in this transaction:
            # a second run, or a run at the same time, skips it).
            db.session.rollback()
            continue
        before = (payment.state, len(payment.refunds), len(payment.chargebacks))
        if not _sync_one(result, "payment", payment_id,
                         lambda payment=payment: payments.sync_payment(payment)):
            continue
        payment = db.session.get(Payment, payment_id)
        if (payment.state, len(payment.refunds), len(payment.chargebacks)) != before:
            result.changed += 1
    _finish_setups(result)
    return result


def _sync_one(result: ReconcileResult, what: str, ident: int, action) -> bool:
    """Re-read one payment or setup at its provider in its own transaction; a provider that
    does not answer or an unexpected error is counted and logged, and the run goes on."""
    result.checked += 1
    try:
        action()
        db.session.commit()
        return True
    except ProviderError as error:
        db.session.rollback()
        result.unavailable += 1
        log.warning("reconcile-payments: %s %s: %s", what, ident, error)
    except Exception:
        db.session.rollback()
        result.failed += 1
        log.exception("reconcile-payments: %s %s failed", what, ident)
    return False


def _finish_setups(result: ReconcileResult) -> None:
    setup_ids = payments.setups_to_reconcile()
    db.session.rollback()
    for setup_id in setup_ids:
        setup = db.session.get(MethodSetup, setup_id)
        if setup is None or not get_available(setup.provider):
            continue
        before = (setup.state, setup.refund_ref)
        if not _sync_one(result, "setup", setup_id,
                         lambda setup_id=setup_id: payments.finish_setup(setup_id)):
            continue
        setup = db.session.get(MethodSetup, setup_id)
        if (setup.state, setup.refund_ref) != before:
            result.changed += 1



def get_available(provider_name: str) -> bool:
    from subscriptions.providers import get_provider

    return get_provider(provider_name).is_available(current_app)
