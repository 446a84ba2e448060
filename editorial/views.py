"""The editorial area (redactie). The pipeline itself arrives with the editorial issue."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from magazine.roles import EDITORIAL_ROLES
from magazine.security import roles_required

bp = Blueprint("editorial", __name__, url_prefix="/editorial")


@bp.before_request
@roles_required(EDITORIAL_ROLES)
def _editorial_roles_only():
    """Every page here is for the board, authors and reviewers."""


@bp.route("/")
def index():
    return render_template("editorial/index.html", roles=current_user.roles)
