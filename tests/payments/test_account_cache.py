"""The cached account page (magazine.pagecache) after a provider's webhook: the order paid in
another request shows on the subscriber's very next request."""

from __future__ import annotations

from magazine.pagecache import page_cache
from tests.conftest import log_in
from tests.payments.conftest import read_payment


def test_an_order_paid_by_a_webhook_shows_at_once(app, with_mollie, buyer_order):
    cache = page_cache(app)
    _, payment_id, email = buyer_order("mollie")
    client = app.test_client()
    log_in(client, email)
    assert "wacht op betaling" in client.get("/account").text
    hits = cache.hits
    assert "wacht op betaling" in client.get("/account").text
    assert cache.hits == hits + 1

    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid", method="bancontact")
    assert with_mollie.send_webhook(ref, via=app.test_client()) == 200

    page = client.get("/account").text
    assert cache.hits == hits + 1  # rendered anew
    assert "wacht op betaling" not in page and "actief" in page
