"""A payment whose first report says paid and charged back at once (the webhook of the
payment came after both): the chargeback reopens the order all the same."""

from __future__ import annotations

from subscriptions.states import OrderState, PaymentState, SubscriptionState
from tests.payments.conftest import read_payment


def test_paid_and_fully_charged_back_in_one_report_reopens_the_order(app, with_mollie,
                                                                      buyer_order):
    _, payment_id, _ = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    with_mollie.trigger_chargeback(ref)

    with_mollie.send_webhook(ref, via=app.test_client())

    payment = read_payment(app, payment_id)
    assert payment.state == PaymentState.PAID
    assert [c.amount_cents for c in payment.chargebacks] == [payment.amount_cents]
    assert payment.order.state == OrderState.AWAITING_PAYMENT
    assert [s.state for s in payment.order.subscriptions] == [
        SubscriptionState.PENDING_PAYMENT]
