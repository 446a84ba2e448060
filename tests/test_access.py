"""The access table: every route × every role (and anonymous), written as data.

Adding a route without an entry here fails `test_every_route_has_an_entry`: decide who may
use it, write it down, and the table checks it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from magazine.roles import ADMIN_ROLES, BUSINESS_ROLES, EDITORIAL_ROLES, Role

ANONYMOUS = "anonymous"
EVERYONE = frozenset({ANONYMOUS, *Role})
LOGGED_IN = frozenset(Role)


@dataclass(frozen=True)
class Access:
    """Who may use a route. Others get the login page (anonymous) or 403 (logged in)."""

    allowed: frozenset
    method: str = "GET"
    args: dict = field(default_factory=dict)
    # Some public pages send logged-in people elsewhere (e.g. /register to their account).
    redirects_logged_in: bool = False


# The editorial area (issue 3). Routes with an object id get a missing id: an allowed role
# gets 404 there (counted as allowed), a refused role 403.
_CHIEF = frozenset({Role.ADMIN, Role.EDITOR_IN_CHIEF})
_OVERVIEW = frozenset({Role.ADMIN, Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER, Role.COPY_EDITOR})
_PLANNERS = frozenset({Role.ADMIN, Role.EDITOR_IN_CHIEF, Role.COPY_EDITOR})
_BOARD = frozenset({Role.ADMIN, Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER})
_PITCHERS = frozenset({Role.ADMIN, Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER, Role.COPY_EDITOR,
                       Role.AUTHOR})
_ISSUE = {"issue_id": 999}
_SLOT = {"issue_id": 999, "slot_id": 999}
_PITCH = {"pitch_id": 999}
_ARTICLE = {"article_id": 999}
_IMAGE = {"article_id": 999, "image_id": 999}
EDITORIAL_ACCESS: dict[str, Access] = {
    "editorial.issues": Access(_OVERVIEW),
    "editorial.issue_new": Access(_CHIEF),
    "editorial.issue_edit": Access(_CHIEF, args=_ISSUE),
    "editorial.issue_detail": Access(_OVERVIEW, args=_ISSUE),
    "editorial.issue_move": Access(_PLANNERS, method="POST", args=_ISSUE),
    "editorial.slot_add": Access(_PLANNERS, method="POST", args=_ISSUE),
    "editorial.slot_pages": Access(_PLANNERS, method="POST", args=_SLOT),
    "editorial.slot_edit": Access(_PLANNERS, args=_SLOT),
    "editorial.slot_move": Access(_PLANNERS, method="POST", args=_SLOT),
    "editorial.slot_remove": Access(_PLANNERS, method="POST", args=_SLOT),
    "editorial.slot_order": Access(_PLANNERS, method="POST", args=_ISSUE),
    "editorial.rubrics": Access(_CHIEF),
    "editorial.rubric_edit": Access(_CHIEF, args={"rubric_id": 999}),
    "editorial.decline_reasons": Access(_CHIEF),
    "editorial.decline_reason_edit": Access(_CHIEF, args={"reason_id": 999}),
    "editorial.pitches": Access(EDITORIAL_ROLES),
    "editorial.pitch_new": Access(_PITCHERS),
    "editorial.pitch_detail": Access(EDITORIAL_ROLES, args=_PITCH),
    "editorial.pitch_vote": Access(_BOARD, method="POST", args=_PITCH),
    "editorial.pitch_comment": Access(EDITORIAL_ROLES, method="POST", args=_PITCH),
    "editorial.pitch_move": Access(EDITORIAL_ROLES, method="POST", args=_PITCH),
    "editorial.pitch_answer": Access(EDITORIAL_ROLES, method="POST", args=_PITCH),
    "editorial.pitch_accept": Access(_CHIEF, method="POST", args=_PITCH),
    "editorial.pitch_decline": Access(_CHIEF, method="POST", args=_PITCH),
    "editorial.pitch_defer": Access(_CHIEF, method="POST", args=_PITCH),
    "editorial.pitch_ask": Access(_CHIEF, method="POST", args=_PITCH),
    "editorial.articles": Access(EDITORIAL_ROLES),
    "editorial.article_detail": Access(EDITORIAL_ROLES, args=_ARTICLE),
    "editorial.article_move": Access(EDITORIAL_ROLES, method="POST", args=_ARTICLE),
    "editorial.article_comment": Access(EDITORIAL_ROLES, method="POST", args=_ARTICLE),
    "editorial.article_write": Access(EDITORIAL_ROLES, args=_ARTICLE),
    "editorial.article_edit": Access(_CHIEF, args=_ARTICLE),
    "editorial.article_preview": Access(EDITORIAL_ROLES, method="POST", args=_ARTICLE),
    "editorial.article_upload": Access(EDITORIAL_ROLES, method="POST", args=_ARTICLE),
    "editorial.article_compare": Access(EDITORIAL_ROLES, args=_ARTICLE),
    "editorial.image_add": Access(EDITORIAL_ROLES, method="POST", args=_ARTICLE),
    "editorial.image_edit": Access(EDITORIAL_ROLES, method="POST", args=_IMAGE),
    "editorial.image_remove": Access(EDITORIAL_ROLES, method="POST", args=_IMAGE),
    "editorial.image_file": Access(EDITORIAL_ROLES, args=_IMAGE),
    "editorial.article_readers": Access(_CHIEF, method="POST", args=_ARTICLE),
    "editorial.reviews": Access(EDITORIAL_ROLES),
    "editorial.board": Access(_OVERVIEW),
    "editorial.calendar": Access(_OVERVIEW),
    "editorial.search": Access(EDITORIAL_ROLES),
    "editorial.issue_package": Access(_PLANNERS, args=_ISSUE),
    "editorial.issue_pdf": Access(_OVERVIEW, args=_ISSUE),
    "editorial.review_detail": Access(EDITORIAL_ROLES, args={"review_id": 999}),
    # Without an account: the public proposal form and the pages behind mailed links.
    "editorial_public.propose": Access(EVERYONE),
    "editorial_public.confirm_pitch": Access(EVERYONE, args={"token": "not-a-token"}),
    "editorial_public.answer_pitch": Access(EVERYONE, args={"token": "not-a-token"}),
    "editorial_public.approval": Access(EVERYONE, args={"token": "not-a-token"}),
    "editorial_public.review": Access(EVERYONE, args={"token": "not-a-token"}),
    "editorial_public.calendar_feed": Access(EVERYONE, args={"token": "not-a-token"}),
}

ACCESS: dict[str, Access] = {
    "static": Access(EVERYONE, args={"filename": "style.css"}),
    "core.home": Access(EVERYONE),
    "core.healthz": Access(EVERYONE),
    "core.account": Access(LOGGED_IN),
    "core.set_language": Access(EVERYONE, method="POST"),
    "auth.login": Access(EVERYONE, redirects_logged_in=True),
    "auth.register": Access(EVERYONE, redirects_logged_in=True),
    "auth.verify_email": Access(EVERYONE, args={"token": "not-a-token"}),
    "auth.resend_verification": Access(EVERYONE),
    "auth.forgot_password": Access(EVERYONE),
    "auth.reset_password": Access(EVERYONE, args={"token": "not-a-token"}),
    "auth.accept_invitation": Access(EVERYONE, args={"token": "not-a-token"}),
    "auth.change_password": Access(LOGGED_IN),
    "auth.profile": Access(LOGGED_IN),
    "auth.confirm_email_change": Access(EVERYONE, args={"token": "not-a-token"}),
    "admin.index": Access(ADMIN_ROLES),
    "admin.user_detail": Access(ADMIN_ROLES, args={"user_id": 1}),
    "admin.block_user": Access(ADMIN_ROLES, method="POST", args={"user_id": 1}),
    "admin.invite": Access(ADMIN_ROLES),
    "admin.audit_log": Access(ADMIN_ROLES),
    "editorial.index": Access(EDITORIAL_ROLES),
    **EDITORIAL_ACCESS,
    "business.index": Access(BUSINESS_ROLES),
    "business.table_csv": Access(BUSINESS_ROLES, args={"name": "by-plan"}),
    "business.accounting_csv": Access(BUSINESS_ROLES),
    "business.invoice_remind": Access(BUSINESS_ROLES, method="POST",
                                      args={"invoice_id": 999}),
    # Subscriptions: public plans and checkout, the subscriber's own pages (someone else's
    # or a missing id is a 404), and the coordinator's back office.
    "subscriptions.plans": Access(EVERYONE),
    "subscriptions.checkout": Access(EVERYONE),
    "subscriptions.order_detail": Access(LOGGED_IN, args={"order_id": 1}),
    "subscriptions.order_qr": Access(LOGGED_IN, args={"order_id": 1}),
    "subscriptions.invoice_pdf": Access(LOGGED_IN, args={"invoice_id": 1}),
    "subscriptions.credit_note_pdf": Access(LOGGED_IN, args={"note_id": 1}),
    "subscriptions.subscription_detail": Access(LOGGED_IN, args={"subscription_id": 1}),
    "subscriptions.change_address": Access(LOGGED_IN, method="POST",
                                           args={"subscription_id": 1}),
    "subscriptions.set_auto_renew": Access(LOGGED_IN, method="POST",
                                           args={"subscription_id": 1}),
    "subscriptions.change_next_plan": Access(LOGGED_IN, method="POST",
                                             args={"subscription_id": 1}),
    "subscriptions.back_issues": Access(EVERYONE),
    "subscriptions.order_back_issue": Access(EVERYONE, args={"offer_id": 1}),
    "subscriptions_office.offers": Access(BUSINESS_ROLES),
    # Bank statements (issue 8): import and manual matching, coordinator and admin only.
    "bank_office.statement": Access(BUSINESS_ROLES),
    "bank_office.entries": Access(BUSINESS_ROLES),
    "bank_office.entry": Access(BUSINESS_ROLES, args={"entry_id": 999}),
    "bank_office.link": Access(BUSINESS_ROLES, method="POST", args={"entry_id": 999}),
    "bank_office.ignore": Access(BUSINESS_ROLES, method="POST", args={"entry_id": 999}),
    "bank_office.restore": Access(BUSINESS_ROLES, method="POST", args={"entry_id": 999}),
    "bank_office.settle_surplus": Access(BUSINESS_ROLES, method="POST",
                                         args={"entry_id": 999}),
    "subscriptions.export_data": Access(LOGGED_IN),
    "subscriptions.delete_account": Access(LOGGED_IN),
    "subscriptions_office.index": Access(BUSINESS_ROLES),
    "subscriptions_office.subscriber": Access(BUSINESS_ROLES, args={"user_id": 1}),
    "subscriptions_office.complimentary": Access(BUSINESS_ROLES, args={"user_id": 1}),
    "subscriptions_office.complimentary_new": Access(BUSINESS_ROLES),
    "subscriptions_office.extend": Access(BUSINESS_ROLES, method="POST",
                                          args={"subscription_id": 1}),
    "subscriptions_office.change_address": Access(BUSINESS_ROLES, args={"subscription_id": 1}),
    "subscriptions_office.order": Access(BUSINESS_ROLES, args={"order_id": 1}),
    "subscriptions_office.record_transfer": Access(BUSINESS_ROLES, method="POST",
                                                   args={"order_id": 1}),
    "subscriptions_office.record_manual": Access(BUSINESS_ROLES, method="POST",
                                                 args={"order_id": 1}),
    "subscriptions_office.cancel_order": Access(BUSINESS_ROLES, method="POST",
                                                args={"order_id": 1}),
    "subscriptions_office.resend_invoice": Access(BUSINESS_ROLES, method="POST",
                                                  args={"invoice_id": 1}),
    "subscriptions_office.plans": Access(BUSINESS_ROLES),
    "subscriptions_office.plan_edit": Access(BUSINESS_ROLES),
    "subscriptions_office.promo_codes": Access(BUSINESS_ROLES),
    "subscriptions_office.promo_edit": Access(BUSINESS_ROLES),
    # Online payments (issue 5): the buyer's own payment (404 for another's), the
    # provider webhooks (public; a bad signature or an unknown id changes nothing).
    "payments.payment_return": Access(LOGGED_IN, args={"payment_id": 999}),
    "payments.payment_status": Access(LOGGED_IN, args={"payment_id": 999}),
    "payments.payment_go": Access(LOGGED_IN, args={"payment_id": 999}),
    "payments.payment_retry": Access(LOGGED_IN, method="POST", args={"payment_id": 999}),
    "payments.remove_method": Access(LOGGED_IN, method="POST", args={"mandate_id": 999}),
    "payments.replace_method": Access(LOGGED_IN, method="POST"),
    "payments.method_return": Access(LOGGED_IN),
    "payments.refund": Access(BUSINESS_ROLES, method="POST", args={"payment_id": 999}),
    "payment_webhooks.stripe": Access(EVERYONE, method="POST"),
    "payment_webhooks.mollie": Access(EVERYONE, method="POST"),
    # Dispatch (issue 6): the coordinator's back office; the digital subscriber's personal
    # download link (a bad or expired token is a 404 page for everyone).
    "dispatch_office.index": Access(BUSINESS_ROLES),
    "dispatch_office.detail": Access(BUSINESS_ROLES, args={"issue_id": 999}),
    "dispatch_office.start": Access(BUSINESS_ROLES, method="POST", args={"issue_id": 999}),
    "dispatch_office.mailing_file": Access(BUSINESS_ROLES, args={"issue_id": 999}),
    "dispatch_public.download": Access(EVERYONE, args={"token": "not-a-token"}),
    # Peppol e-invoices (issue 8): the subscriber's own (someone else's or a missing id is
    # a 404), the coordinator's page and downloads; sending without an access point: 404.
    "peppol.invoice_xml": Access(LOGGED_IN, args={"invoice_id": 999}),
    "peppol.credit_note_xml": Access(LOGGED_IN, args={"note_id": 999}),
    "peppol_office.index": Access(BUSINESS_ROLES),
    "peppol_office.invoice_xml": Access(BUSINESS_ROLES, args={"invoice_id": 999}),
    "peppol_office.credit_note_xml": Access(BUSINESS_ROLES, args={"note_id": 999}),
    "peppol_office.queue_invoice": Access(BUSINESS_ROLES, method="POST",
                                          args={"invoice_id": 999}),
    "peppol_office.queue_credit_note": Access(BUSINESS_ROLES, method="POST",
                                              args={"note_id": 999}),
    "peppol_office.retry": Access(BUSINESS_ROLES, method="POST", args={"delivery_id": 999}),
    "peppol_office.send_now": Access(BUSINESS_ROLES, method="POST"),
    "dispatch_public.my_issues": Access(LOGGED_IN),
    "late_payments_office.index": Access(BUSINESS_ROLES),
    "late_payments_office.restart": Access(BUSINESS_ROLES, method="POST",
                                           args={"late_id": 999}),
    "late_payments_office.refund": Access(BUSINESS_ROLES, method="POST",
                                          args={"late_id": 999}),
    # Last: it ends the session of the client that walks the table.
    "auth.logout": Access(EVERYONE, method="POST"),
}

WHO = [ANONYMOUS, *Role]


def test_every_route_has_an_entry(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - ACCESS.keys() == set(), "routes without an entry in the access table"
    assert ACCESS.keys() - endpoints == set(), "entries for routes that do not exist"


def test_each_route_answers_the_method_in_the_table(app):
    for rule in app.url_map.iter_rules():
        assert ACCESS[rule.endpoint].method in rule.methods, rule


@pytest.mark.parametrize("who", WHO)
def test_access_table(app, login_as, who):
    from flask import url_for

    client = app.test_client() if who == ANONYMOUS else login_as(Role(who))
    # Sample objects for routes with ids: user 1 exists once someone logged in.
    if who == ANONYMOUS:
        login_as(Role.SUBSCRIBER)
    failures = []
    for endpoint, access in ACCESS.items():
        with app.test_request_context():
            url = url_for(endpoint, **access.args)
        response = client.open(url, method=access.method)
        location = response.headers.get("Location", "")
        sent_to_login = response.status_code == 302 and location.startswith("/login")
        if who in access.allowed:
            ok = response.status_code != 403 and not sent_to_login and response.status_code < 500
            if who != ANONYMOUS and access.redirects_logged_in:
                ok = ok and response.status_code == 302
        elif who == ANONYMOUS:
            ok = sent_to_login
        else:
            ok = response.status_code == 403
        if not ok:
            failures.append(f"{access.method} {url} as {who}: {response.status_code} {location}")
    assert failures == []


def test_subscriber_is_refused_the_staff_areas(login_as):
    client = login_as(Role.SUBSCRIBER)
    for path in ("/editorial/", "/business/", "/admin/"):
        assert client.get(path).status_code == 403, path
