"""Administration: people, their roles, and the audit log."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from magazine.admin.forms import InviteForm, RolesForm
from magazine.auth import services
from magazine.db import db
from magazine.errors import DomainError
from magazine.forms import ConfirmForm
from magazine.models import AuditEvent, User, UserRole
from magazine.roles import ADMIN_ROLES, Role
from magazine.security import roles_required
from magazine.views import show_domain_error

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_SIZE = 50


@bp.before_request
@roles_required(ADMIN_ROLES)
def _admins_only():
    """Every page here is for administrators only."""


@bp.route("/")
def index():
    query = request.args.get("q", "").strip()
    role = request.args.get("role", "")
    page = max(request.args.get("page", 1, type=int), 1)
    statement = sa.select(User).order_by(User.name, User.id)
    if query:
        pattern = f"%{query.lower()}%"
        statement = statement.where(
            sa.or_(sa.func.lower(User.name).like(pattern), User.email.like(pattern))
        )
    if role in {r.value for r in Role}:
        statement = statement.where(
            User.id.in_(sa.select(UserRole.user_id).where(UserRole.role == Role(role)))
        )
    users = db.paginate(statement, page=page, per_page=PAGE_SIZE, error_out=False)
    return render_template("admin/index.html", users=users, query=query, role=role, Role=Role)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user_detail(user_id: int):
    user = db.get_or_404(User, user_id)
    form = RolesForm()
    if request.method == "GET":
        form.roles.data = [role.value for role in user.roles]
    if form.validate_on_submit():
        try:
            change = services.set_roles(
                user, {Role(value) for value in form.roles.data or []},
                actor=current_user._get_current_object(),
            )
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            if change.granted or change.removed:
                flash(_("The roles of %(name)s have been saved.", name=user.name), "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    events = db.session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.object_type == "user", AuditEvent.object_id == str(user.id))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(20)
    ).all()
    return render_template(
        "admin/user.html", user=user, form=form, block_form=ConfirmForm(), events=events
    ), 400 if form.errors else 200


@bp.route("/users/<int:user_id>/block", methods=["POST"])
def block_user(user_id: int):
    user = db.get_or_404(User, user_id)
    blocked = request.form.get("blocked") == "1"
    try:
        services.set_blocked(user, blocked, actor=current_user._get_current_object())
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
    else:
        db.session.commit()
        flash(_("%(name)s is blocked.", name=user.name) if blocked
              else _("%(name)s can log in again.", name=user.name), "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/invite", methods=["GET", "POST"])
def invite():
    form = InviteForm()
    if form.validate_on_submit():
        try:
            user = services.invite_user(
                form.email.data, form.name.data, {Role(value) for value in form.roles.data or []},
                actor=current_user._get_current_object(), message=form.message.data or "",
            )
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            flash(_("%(name)s has been invited by e-mail.", name=user.name), "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    return render_template("admin/invite.html", form=form), 400 if form.errors else 200


@bp.route("/audit")
def audit_log():
    page = max(request.args.get("page", 1, type=int), 1)
    events = db.paginate(
        sa.select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()),
        page=page, per_page=PAGE_SIZE, error_out=False,
    )
    return render_template("admin/audit.html", events=events)

