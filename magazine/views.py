"""The site's own pages (home, account, language, health), error pages and what every
template can use (navigation, forms)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, generate_csrf
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from magazine.db import db
from magazine.errors import DomainError
from magazine.forms import LanguageForm
from magazine.pagecache import (
    cached_page_for_session,
    install_page_cache,
    page_cache,
    page_slot_and_validity,
)
from magazine.roles import ADMIN_ROLES, BUSINESS_ROLES, EDITORIAL_ROLES, ROLE_LABELS, Role
from magazine.security import safe_next

log = logging.getLogger(__name__)

bp = Blueprint("core", __name__)


def show_domain_error(form: FlaskForm, error: DomainError) -> None:
    """Put a service's refusal next to the field it is about, or on top of the form."""
    field = form._fields.get(error.field) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        flash(error.message, "error")


# ---------------------------------------------------------------- navigation

@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    roles: frozenset[Role] | None  # None: everyone logged in


# Areas in the main navigation; each shows only for the roles its views admit.
AREA_NAVIGATION = (
    NavItem("editorial.index", _l("Editorial"), EDITORIAL_ROLES),
    NavItem("business.index", _l("Business"), BUSINESS_ROLES),
    NavItem("admin.index", _l("Administration"), ADMIN_ROLES),
    NavItem("core.account", _l("My account"), None),
)


def navigation_for(user) -> list[NavItem]:
    if not user.is_authenticated:
        return []
    return [
        item for item in AREA_NAVIGATION
        if item.roles is None or user.has_any_role(item.roles | ADMIN_ROLES)
    ]


class CsrfOnlyForm:
    """What base.html uses of the log-out and language forms on every page: their CSRF
    field, rendered as a FlaskForm renders it (nothing when CSRF is off), without building
    two WTForms forms per page."""

    @property
    def csrf_token(self) -> Markup | str:
        if not current_app.config.get("WTF_CSRF_ENABLED", True):
            return ""
        return Markup('<input id="csrf_token" name="csrf_token" type="hidden" value="%s">'
                      ) % generate_csrf()


CSRF_ONLY_FORM = CsrfOnlyForm()


def register_template_helpers(app: Flask) -> None:
    # The page cache's stamp hooks are installed with the template helpers: every process
    # that makes the app (web, scheduler, CLI) must bump the stamps of what it changes.
    install_page_cache(app)

    @app.context_processor
    def _helpers():
        if not has_request_context():  # mails rendered by jobs and the CLI
            return {"ROLE_LABELS": ROLE_LABELS}
        return {
            "navigation": navigation_for(current_user),
            "language_form": CSRF_ONLY_FORM,
            "logout_form": CSRF_ONLY_FORM,
            "ROLE_LABELS": ROLE_LABELS,
        }


# ---------------------------------------------------------------- pages

@bp.route("/")
def home():
    return render_template("home.html")


@bp.route("/healthz")
def healthz():
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        log.exception("health check: database unreachable")
        db.session.rollback()
        return jsonify(status="error", database="error"), 503
    return jsonify(status="ok", database="ok")


@bp.before_request
def _account_from_cache():
    # A cached account page costs one Core query: before Flask-Login loads the user.
    if request.endpoint == "core.account":
        return cached_page_for_session("account")
    return None


@bp.route("/account")
@login_required
def account():
    """The account page, rendered and kept in the page cache for this session (a hit, when
    nothing it shows changed since, is served by `_account_from_cache` before this view;
    magazine.pagecache says how that is known exactly)."""
    user = current_user._get_current_object()
    flashes_pending = bool(session.get("_flashes"))
    from subscriptions.views import account_context

    page = render_template("account/index.html", **account_context(user))
    cache = page_cache()
    if cache is not None and not flashes_pending:
        # Keyed after rendering: rendering made the CSRF secret if the session had none.
        where = page_slot_and_validity("account", user)
        if where is not None:
            cache.put(*where, page)
    return page


@bp.route("/language", methods=["POST"])
def set_language():
    form = LanguageForm()
    target = safe_next(form.next.data) or url_for("core.home")
    if form.validate_on_submit():
        locale = form.locale.data
        session["locale"] = locale
        if current_user.is_authenticated:
            from magazine.auth.services import set_locale

            set_locale(current_user._get_current_object(), locale)
            db.session.commit()
    return redirect(target)


# ---------------------------------------------------------------- errors

ERROR_TEXTS = {
    400: (_l("Something in the request was not right"),
          _l("Go back, check what you filled in, and try again.")),
    403: (_l("No access"),
          _l("Your account does not give access to this page. If you think it should, "
             "ask the editors or the administrator.")),
    404: (_l("Page not found"),
          _l("This page does not exist (any more). Check the address or start from the home "
             "page.")),
    405: (_l("This does not work here"),
          _l("This page cannot be used this way. Go back and use the buttons on the page.")),
    413: (_l("File too large"), _l("The file you sent is too large. Choose a smaller file.")),
    429: (_l("Too many requests"), _l("Wait a moment and try again.")),
    500: (_l("Something went wrong on our side"),
          _l("We have been notified. Try again in a moment.")),
}


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf_error(error):
        return render_template(
            "error.html", code=400, title=_("The form has expired"),
            text=_("For your safety the form was not accepted. Go back, reload the page and "
                   "try again."),
        ), 400

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        code = error.code or 500
        if code not in ERROR_TEXTS:
            return error
        if code == 500:
            db.session.rollback()
        title, text = ERROR_TEXTS[code]
        return render_template("error.html", code=code, title=title, text=text), code
