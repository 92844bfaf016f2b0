"""Typed exceptions. Every failure keycel raises is a :class:`KeycelError`.

Denials of *requests* are never exceptions: :meth:`keycel.Engine.authorize` returns a
:class:`keycel.Decision`. Exceptions are for management calls, bad input and broken stores.
Messages never contain secrets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ._keycel import Decision

__all__ = [
    "KeycelError",
    "PolicyError",
    "InvalidRecordError",
    "InvalidArgumentError",
    "NotFoundError",
    "DeniedError",
    "StoreError",
    "CredentialError",
    "InternalError",
]


class KeycelError(Exception):
    """Base class of every keycel error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PolicyError(KeycelError):
    """A policy document failed to load or validate.

    ``file`` is the file (or origin label) of the document, ``rule_id`` the rule at fault if
    any, ``line``/``column`` the 1-based position when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str,
        rule_id: Optional[str] = None,
        line: Optional[int] = None,
        column: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.rule_id = rule_id
        self.line = line
        self.column = column


class InvalidRecordError(KeycelError, ValueError):
    """A key or user record (or a value destined for one) is invalid; ``field`` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidArgumentError(KeycelError, ValueError):
    """An argument has the wrong shape (naive datetime, bad duration, bad hash parameters...)."""

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class NotFoundError(KeycelError, LookupError):
    """No key or user with that id."""

    def __init__(self, message: str, *, id: str) -> None:
        super().__init__(message)
        self.id = id


class DeniedError(KeycelError, PermissionError):
    """A management action was refused; ``decision`` says why and with which status."""

    def __init__(self, message: str, *, decision: "Decision") -> None:
        super().__init__(message)
        self.decision = decision


class StoreError(KeycelError):
    """The store failed; nothing was changed.

    ``kind`` is ``"already_exists"``, ``"conflict"`` (concurrent change, retry),
    ``"corrupt"`` (a stored document is invalid) or ``"backend"`` (I/O, SQL, a Python store
    raised).
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class CredentialError(KeycelError):
    """A token or secret could not be issued, parsed or read (e.g. read a second time)."""


class InternalError(KeycelError):
    """A bug inside keycel was caught at the boundary; please report it."""
