"""The business coordinator's desk. Figures arrive with the business issue."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template

from magazine.db import db
from magazine.models import MailStatus, OutboxMail, User
from magazine.roles import BUSINESS_ROLES
from magazine.security import roles_required

bp = Blueprint("business", __name__, url_prefix="/business")


@bp.before_request
@roles_required(BUSINESS_ROLES)
def _business_roles_only():
    """Every page here is for the coordinator (and admins)."""


@bp.route("/")
def index():
    mail_counts = dict(
        db.session.execute(
            sa.select(OutboxMail.status, sa.func.count()).group_by(OutboxMail.status)
        ).all()
    )
    accounts = db.session.scalar(sa.select(sa.func.count()).select_from(User))
    return render_template(
        "business/index.html", mail_counts=mail_counts, accounts=accounts, MailStatus=MailStatus
    )
