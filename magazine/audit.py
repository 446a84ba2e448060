"""The audit log: one call per state change, in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from magazine.db import db
from magazine.models import AuditEvent, User


def record(
    action: str, obj_type: str, obj_id: object, *, actor: User | None, **details: Any
) -> AuditEvent:
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        action=action,
        object_type=obj_type,
        object_id=str(obj_id),
        details=details,
    )
    db.session.add(event)
    return event
