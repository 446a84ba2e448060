"""Scheduled work of subscriptions: unpaid orders get a reminder, then expire; the dispatch
of each issue; renewal reminders, renewals, grace and lapse (subscriptions.renewals)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from flask import current_app

from editorial.models import Issue
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from magazine.jobruns import RunTaken, exclusive_run, today_period
from magazine.jobs import Progress, brussels_cron, register_job
from subscriptions import reconciliation, services
from subscriptions.models import Order
from subscriptions.states import OrderState

log = logging.getLogger(__name__)


@dataclass
class ExpireOrdersResult:
    reminded: int = 0
    expired: int = 0
    skipped: int = 0

    def summary(self) -> str:
        return (f"expire-orders: {self.reminded} reminded, {self.expired} expired, "
                f"{self.skipped} taken by another run")


@register_job("expire-orders", CronTrigger(hour="*", minute=17, timezone=BRUSSELS),
              "remind unpaid orders, then expire them (their invoice is credited)")
def expire_orders(progress: Progress) -> ExpireOrdersResult:
    """Each order in its own transaction. The reminder is claimed by a conditional update;
    the expiry by the state move itself (`awaiting_payment` → `expired` changes one row
    once), so two runs at the same time never mail or credit twice."""
    result = ExpireOrdersResult()
    now = now_utc()
    remind_before = timedelta(days=current_app.config["ORDER_REMINDER_DAYS"])
    due_ids = db.session.scalars(
        sa.select(Order.id).where(
            Order.state == OrderState.AWAITING_PAYMENT,
            sa.or_(Order.expires_at <= now,
                   sa.and_(Order.reminder_sent_at.is_(None),
                           Order.expires_at <= now + remind_before)),
        ).order_by(Order.expires_at)
    ).all()
    db.session.rollback()
    progress.start(len(due_ids))
    for order_id in due_ids:
        progress.advance(1)
        order = db.session.get(Order, order_id)
        try:
            if order.state != OrderState.AWAITING_PAYMENT:
                result.skipped += 1
            elif order.expires_at <= now and reconciliation.received_cents(order):
                # Partly paid by transfer (bank statements): the buyer's money is in, so
                # the coordinator decides (wait for the rest, or cancel and pay back).
                result.skipped += 1
            elif order.expires_at <= now:
                services.close_unpaid_order(order, to=OrderState.EXPIRED, actor=None,
                                            reason="not paid in time")
                result.expired += 1
            elif services.remind_unpaid_order(order):
                result.reminded += 1
            else:
                result.skipped += 1
            db.session.commit()
        except services.StaleState:
            db.session.rollback()
            result.skipped += 1
        except Exception:
            db.session.rollback()
            log.exception("expire-orders: order %s failed", order_id)
    return result


# ---------------------------------------------------------------- dispatch

@dataclass
class DispatchJobResult:
    issues: list = field(default_factory=list)  # DispatchResult per issue looked at

    def summary(self) -> str:
        if not self.issues:
            return "dispatch: no issue due"
        return "; ".join(result.summary() for result in self.issues)


@register_job("dispatch", brussels_cron(minute=5),
              "lock the mailing list of each issue whose dispatch cut-off passed, mail the "
              "download links, mark it dispatched once published")
def dispatch_job(progress: Progress) -> DispatchJobResult | RunTaken:
    """Hourly: one process per hour owns the run (ledger); each issue's list is locked
    once whatever runs (its unique Dispatch row)."""
    from subscriptions import dispatch

    def work() -> DispatchJobResult:
        result = DispatchJobResult()
        issue_ids = [issue.id for issue in dispatch.issues_due(services.today_brussels())]
        db.session.rollback()
        progress.start(len(issue_ids))
        for issue_id in issue_ids:
            progress.advance(1)
            try:
                result.issues.append(dispatch.dispatch_issue(db.session.get(Issue, issue_id)))
            except Exception:
                db.session.rollback()
                log.exception("dispatch: issue %s failed", issue_id)
        return result

    period = now_utc().astimezone(BRUSSELS).strftime("%Y-%m-%dT%H")
    return exclusive_run("dispatch", period, work, progress)


# ---------------------------------------------------------------- renewals, grace and lapse

@register_job("renewal-reminders", brussels_cron(hour=8, minute=10),
              "remind subscribers whose term has one issue left, and again before the next "
              "issue's cut-off (or announce the coming charge)")
def renewal_reminders_job(progress: Progress):
    from subscriptions import renewals

    return exclusive_run("renewal-reminders", today_period(),
                         lambda: renewals.send_reminders(progress), progress)


@register_job("renewals", brussels_cron(hour=6, minute=40),
              "charge saved mandates for the next term, with retries; apply paid renewals")
def renewals_job(progress: Progress):
    from subscriptions import renewals

    return exclusive_run("renewals", today_period(), lambda: renewals.run_renewals(progress),
                         progress)


@register_job("lapse", brussels_cron(hour=6, minute=50),
              "grace for used-up terms not renewed, lapse when grace has passed")
def lapse_job(progress: Progress):
    from subscriptions import renewals

    return exclusive_run("lapse", today_period(), lambda: renewals.run_lapse(progress),
                         progress)
