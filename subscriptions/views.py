"""Plans, checkout and the subscriber's own pages. Built in the subscriptions issue."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("subscriptions", __name__)
