"""Typed errors. Each says what went wrong and what to do about it."""

from __future__ import annotations


class GreffierError(Exception):
    """Base class of greffier's errors; ``hint`` tells the user what to do."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message if not hint else f"{message} ({hint})")
        self.message = message
        self.hint = hint


class ConfigurationError(GreffierError):
    """A setting has a value greffier cannot use."""


class MissingDependencyError(GreffierError):
    """An optional dependency (an extra) is not installed."""

    @classmethod
    def for_extra(cls, module: str, extra: str) -> MissingDependencyError:
        return cls(
            f"the Python module {module!r} is not installed",
            hint=f"install it with: pip install 'greffier[{extra}]'",
        )


class ModelNotFoundError(GreffierError):
    """A model name or path resolves to nothing usable on this machine."""


class ModelIntegrityError(GreffierError):
    """Model files exist but do not match their pinned checksum."""


class AudioFormatError(GreffierError):
    """Audio that cannot be decoded or has an unusable shape."""


class ServerUnreachableError(GreffierError):
    """The LiveKit server (or another required service) does not answer."""


class EngineClosedError(GreffierError):
    """A request reached an inference engine that has been closed."""


class StoreError(GreffierError):
    """The transcript store could not read or write."""


class StoreSchemaError(StoreError):
    """The transcript store's database has a schema version this greffier does not know."""


class StoreDataError(StoreError):
    """The transcript store's database refused the data itself (retrying will not help)."""
