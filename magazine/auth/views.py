"""Login, logout, registration, e-mail verification and passwords."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import generate_csrf

from magazine.auth import services
from magazine.auth.forms import (
    ChangePasswordForm,
    EmailChangeForm,
    EmailForm,
    LoginForm,
    NewPasswordForm,
    ProfileForm,
    RegisterForm,
)
from magazine.db import db
from magazine.errors import DomainError
from magazine.forms import ConfirmForm
from magazine.i18n import current_locale
from magazine.security import client_address, safe_next
from magazine.views import show_domain_error

bp = Blueprint("auth", __name__)


def _log_in(user) -> None:
    """A fresh session: clear whatever the anonymous session held, then a new token."""
    session.clear()
    services.start_session(
        user, client_address=client_address(), user_agent=request.user_agent.string
    )
    db.session.commit()
    login_user(user)
    session.permanent = True
    # The new session's CSRF secret, in the cookie the login sets: the first page after it
    # need not write the cookie again, and can be served from the page cache. (The token
    # flask-wtf keeps for this request belongs to the cleared session: made anew.)
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    generate_csrf()


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        form.email.data = request.args.get("email", "")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(form.next.data) or url_for("core.account"))
    status = 200
    if form.validate_on_submit():
        try:
            user = services.authenticate(
                form.email.data, form.password.data, client_address=client_address()
            )
        except services.Throttled as error:
            db.session.rollback()
            flash(error.message, "error")
            status = 429
        except services.NotVerified as error:
            db.session.commit()
            flash(error.message, "warning")
            return redirect(url_for("auth.resend_verification", email=form.email.data))
        except DomainError as error:
            db.session.commit()  # keep the failed attempt: the throttle counts it
            flash(error.message, "error")
            status = 401
        else:
            _log_in(user)
            return redirect(safe_next(form.next.data) or url_for("core.account"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """GET asks to confirm (a link must not log anyone out); POST ends the session."""
    if request.method == "GET":
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login"))
        return render_template("auth/logout.html", form=ConfirmForm())
    # The CSRF check of every POST has run already (CSRFProtect).
    if current_user.is_authenticated and current_user.session_token:
        services.end_session(current_user.session_token)
        db.session.commit()
    locale = current_locale()
    logout_user()
    session.clear()
    session["locale"] = locale  # the language stays what the person was reading
    flash(_("You are logged out."), "info")
    return redirect(url_for("core.home"))


@bp.route("/register", methods=["GET", "POST"])
def register():
    if current_user.is_authenticated:
        return redirect(url_for("core.account"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            services.register(
                form.email.data, form.name.data, form.password.data,
                locale=session.get("locale", "nl_BE"),
            )
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            return render_template("auth/check_mail.html", email=form.email.data)
    return render_template("auth/register.html", form=form), 400 if form.errors else 200


@bp.route("/verify/<token>")
def verify_email(token: str):
    try:
        services.verify_email(token)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("auth.resend_verification"))
    db.session.commit()
    flash(_("Thank you: your e-mail address is confirmed. You can log in now."), "success")
    return redirect(url_for("auth.login"))


@bp.route("/verify", methods=["GET", "POST"])
def resend_verification():
    form = EmailForm()
    if request.method == "GET" and request.args.get("email"):
        form.email.data = request.args["email"]
    if form.validate_on_submit():
        services.resend_verification(form.email.data)
        db.session.commit()
        return render_template("auth/check_mail.html", email=form.email.data)
    return render_template("auth/resend_verification.html", form=form)


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    form = EmailForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data)
        db.session.commit()
        return render_template("auth/check_mail.html", email=form.email.data, reset=True)
    return render_template("auth/forgot_password.html", form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    return _choose_password(token, "reset")


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    return _choose_password(token, "invite")


def _choose_password(token: str, purpose: str):
    """Reset and invitation links both end in choosing a password (once per link)."""
    try:
        user = services.check_reset_token(token, purpose)
    except DomainError as error:
        flash(error.message, "error")
        return redirect(url_for("auth.forgot_password"))
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            services.reset_password(token, form.password.data, purpose)
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            logout_user()
            session.clear()
            flash(_("Your password has been saved. Log in with your new password."), "success")
            return redirect(url_for("auth.login", email=user.email))
    template = "auth/accept_invitation.html" if purpose == "invite" else "auth/reset_password.html"
    return render_template(template, form=form, user=user), 400 if form.errors else 200


@bp.route("/account/profile", methods=["GET", "POST"])
@login_required
def profile():
    """Name right away; a new e-mail address once it is confirmed from that mailbox."""
    user = current_user._get_current_object()
    name_form = ProfileForm(prefix="profile")
    email_form = EmailChangeForm(prefix="email")
    if request.method == "GET":
        name_form.name.data = user.name
    if "profile-name" in request.form and name_form.validate_on_submit():
        try:
            services.update_name(user, name_form.name.data)
        except DomainError as error:
            db.session.rollback()
            show_domain_error(name_form, error)
        else:
            db.session.commit()
            flash(_("Your name has been saved."), "success")
            return redirect(url_for("core.account"))
    elif "email-email" in request.form and email_form.validate_on_submit():
        try:
            services.request_email_change(user, email_form.email.data, email_form.password.data)
        except DomainError as error:
            db.session.rollback()
            show_domain_error(email_form, error)
        else:
            db.session.commit()
            flash(_("We have sent a link to %(email)s. Your address changes when you follow it.",
                    email=email_form.email.data), "info")
            return redirect(url_for("core.account"))
    status = 400 if name_form.errors or email_form.errors else 200
    return render_template("auth/profile.html", name_form=name_form,
                           email_form=email_form), status


@bp.route("/account/email/<token>")
def confirm_email_change(token: str):
    try:
        user = services.confirm_email_change(token)
    except DomainError as error:
        db.session.rollback()
        return render_template("auth/message.html", title=_("E-mail address not changed"),
                               text=error.message), 400
    db.session.commit()
    return render_template(
        "auth/message.html", title=_("Your e-mail address has been changed."),
        text=_("From now on you log in with %(email)s.", email=user.email),
    )


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            services.change_password(user, form.current_password.data, form.password.data)
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            # Every session ended with the change; this one continues under a new token.
            _log_in(user)
            flash(_("Your password has been changed. You were logged out everywhere else."),
                  "success")
            return redirect(url_for("core.account"))
    return render_template("auth/change_password.html", form=form)
