"""Roles, and which roles open which area of the site. Views and navigation both read this."""

from __future__ import annotations

import enum

from flask_babel import lazy_gettext as _l


class Role(enum.StrEnum):
    ADMIN = "admin"
    EDITOR_IN_CHIEF = "editor_in_chief"
    BOARD_MEMBER = "board_member"
    COPY_EDITOR = "copy_editor"
    AUTHOR = "author"
    REVIEWER = "reviewer"
    COORDINATOR = "coordinator"
    SUBSCRIBER = "subscriber"


ROLE_LABELS = {
    Role.ADMIN: _l("Administrator"),
    Role.EDITOR_IN_CHIEF: _l("Editor-in-chief"),
    Role.BOARD_MEMBER: _l("Board member"),
    Role.COPY_EDITOR: _l("Copy editor"),
    Role.AUTHOR: _l("Author"),
    Role.REVIEWER: _l("Reviewer"),
    Role.COORDINATOR: _l("Business coordinator"),
    Role.SUBSCRIBER: _l("Subscriber"),
}

# Who may enter each area. An admin may enter every area.
EDITORIAL_ROLES = frozenset(
    {
        Role.ADMIN,
        Role.EDITOR_IN_CHIEF,
        Role.BOARD_MEMBER,
        Role.COPY_EDITOR,
        Role.AUTHOR,
        Role.REVIEWER,
    }
)
BUSINESS_ROLES = frozenset({Role.ADMIN, Role.COORDINATOR})
ADMIN_ROLES = frozenset({Role.ADMIN})
