"""Domain errors: raised by services, turned into a message next to what caused it by views."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain refused the action. `message` is for the person (translated);
    `field` names the form field it belongs to, when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class PermissionDenied(DomainError):
    """The actor's roles do not allow this action."""
