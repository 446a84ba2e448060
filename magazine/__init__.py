"""The magazine desk: editorial pipeline and subscription business in one Flask application."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from magazine.config import PROJECT_ROOT, load_settings
from magazine.db import POOL_PING_IDLE_SECONDS, configure_sqlite, db, ping_when_idle

csrf = CSRFProtect()
login_manager = LoginManager()
migrate = Migrate()


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    instance = Path(app.instance_path)
    if test_config and "INSTANCE_PATH" in test_config:
        instance = Path(test_config["INSTANCE_PATH"])
    instance.mkdir(parents=True, exist_ok=True)
    environ = test_config.pop("ENVIRON", None) if test_config else None
    app.config.update(load_settings(instance, environ))
    if test_config:
        app.config.update(test_config)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if app.config["PROXY_HOPS"]:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=app.config["PROXY_HOPS"], x_proto=app.config["PROXY_HOPS"],
            x_host=app.config["PROXY_HOPS"],
        )

    app.session_interface = CookieSessionInterface()
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine)
        else:
            ping_when_idle(db.engine, POOL_PING_IDLE_SECONDS)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"),
                     render_as_batch=True, compare_type=True)
    csrf.init_app(app)

    from magazine.i18n import init_i18n

    init_i18n(app)
    _init_login(app)

    from magazine.security import install_security_headers

    install_security_headers(app)

    _register_models()
    _register_blueprints(app)

    from magazine.cli import register_cli
    from magazine.views import register_error_pages, register_template_helpers

    register_error_pages(app)
    register_template_helpers(app)
    register_cli(app)
    return app


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, with its signing serializer made once per key instead
    of on every request, and not at all for a request without a session cookie (a webhook,
    a first visit: an empty session, as Flask would open). Nothing else differs."""

    _serializer: tuple = (None, None)

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        made_for, serializer = self._serializer
        if made_for != keys:
            serializer = super().get_signing_serializer(app)
            self._serializer = (keys, serializer)
        return serializer

    def open_session(self, app: Flask, request):
        # No Cookie header at all: nothing to parse (`request.cookies` walks the environ).
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        # An empty session left empty (a webhook, a page without a login): Flask's own
        # method would only add `Vary: Cookie` when the session was read (flask-login reads
        # it on every request), after looking up seven cookie settings first.
        if not session and not session.modified:
            if session.accessed:
                if "Vary" in response.headers:
                    response.vary.add("Cookie")
                else:
                    response.headers.add("Vary", "Cookie")  # without parsing a header set
            return
        super().save_session(app, session, response)


def _init_login(app: Flask) -> None:
    from flask_babel import lazy_gettext as _l

    from magazine.auth.services import load_session

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Log in to see this page.")
    login_manager.login_message_category = "info"
    login_manager.user_loader(load_session)


def _register_models() -> None:
    # Every model module, so that metadata (and Alembic) sees all tables.
    import editorial.models  # noqa: F401
    import magazine.models  # noqa: F401
    import subscriptions.bank_models
    import subscriptions.fulfilment_models
    import subscriptions.models  # noqa: F401


def _register_blueprints(app: Flask) -> None:
    from business.views import bp as business_bp
    from editorial.public import bp as editorial_public_bp
    from editorial.views import bp as editorial_bp
    from magazine.admin.views import bp as admin_bp
    from magazine.auth.views import bp as auth_bp
    from magazine.views import bp as core_bp
    from subscriptions.office import bp as subscriptions_office_bp
    from subscriptions.payment_views import bp as payments_bp
    from subscriptions.views import bp as subscriptions_bp
    from subscriptions.webhooks import bp as payment_webhooks_bp

    for blueprint in (core_bp, auth_bp, admin_bp, editorial_bp, subscriptions_bp, business_bp,
                      subscriptions_office_bp, payments_bp, payment_webhooks_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(editorial_public_bp)
    from subscriptions.dispatch_views import bp as dispatch_office_bp
    from subscriptions.dispatch_views import public_bp as dispatch_public_bp

    app.register_blueprint(dispatch_office_bp)
    app.register_blueprint(dispatch_public_bp)
    from subscriptions.bank_views import bp as bank_office_bp

    app.register_blueprint(bank_office_bp)
    from subscriptions.peppol_views import account_bp as peppol_account_bp
    from subscriptions.peppol_views import office_bp as peppol_office_bp

    app.register_blueprint(peppol_account_bp)
    app.register_blueprint(peppol_office_bp)
    from subscriptions.late_payment_views import bp as late_payments_office_bp

    app.register_blueprint(late_payments_office_bp)
