"""The one error tree: every error modelcycle raises on purpose derives from ModelcycleError.

::

    ModelcycleError
    ├── ConfigurationError        settings or environment variables that cannot work
    ├── InvalidInputError         a value the caller passed is wrong (also a ValueError)
    │   ├── InvalidKeyError       a metric, param or tag key with forbidden characters
    │   ├── InvalidValueError     a metric that is not a number, a param value too long
    │   ├── FilterSyntaxError     a search filter or order-by that cannot be parsed
    │   ├── UnsafePathError       an artifact name that would escape the store
    │   └── SignatureError        model input that does not match the model's signature
    ├── ModelError                a model that cannot be saved or loaded
    │   ├── UnsafeModelError      saving or loading would need pickle or an unaudited type
    │   └── ModelIntegrityError   a package's files no longer match its manifest
    ├── GateError                 an alias move that no passing verdict allows
    ├── PipelineError             a pipeline step failed (``result`` says what finished and what was skipped)
    ├── NotFoundError             a run, experiment or artifact that does not exist (also a KeyError)
    ├── ConflictError             a write that contradicts what is already stored
    ├── PermissionDeniedError     the team server's user has no role that allows it
    ├── DataValidationError       data that breaks its schema (raise_for_errors)
    ├── StoreError                the metadata store cannot be reached or used
    │   └── StoreBusyError        the database stayed locked for longer than the timeout
    ├── ArtifactError             the artifact store cannot be used
    │   └── ArtifactCorruptedError  stored bytes no longer match their hash
    ├── ReproduceError            a run cannot be reproduced here (no git, missing diff, …)
    └── MissingDependencyError    an optional library is not installed (also an ImportError); names the extra to install

The command line prints an error's message on one line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "ArtifactCorruptedError",
    "ArtifactError",
    "ConfigurationError",
    "ConflictError",
    "DataValidationError",
    "FilterSyntaxError",
    "GateError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidValueError",
    "MissingDependencyError",
    "ModelError",
    "ModelIntegrityError",
    "ModelcycleError",
    "ModelcycleWarning",
    "NotFoundError",
    "PermissionDeniedError",
    "PipelineError",
    "ReproduceError",
    "SignatureError",
    "StoreBusyError",
    "StoreError",
    "StoreRefusedError",
    "UnsafeModelError",
    "UnsafePathError",
]


class ModelcycleError(Exception):
    """Root of every error modelcycle raises on purpose.

    Example:
        >>> try:
        ...     raise NotFoundError("run 'abc' does not exist")
        ... except ModelcycleError as e:
        ...     print(e)
        run 'abc' does not exist
    """


class ModelcycleWarning(UserWarning):
    """Something the user should know that does not stop the work."""


class ConfigurationError(ModelcycleError):
    """Settings or environment variables that cannot work together."""


class InvalidInputError(ModelcycleError, ValueError):
    """A value passed by the caller is wrong; the message says which and how to fix it."""


class InvalidKeyError(InvalidInputError):
    """A metric, param or tag key that is empty, too long or has forbidden characters."""


class InvalidValueError(InvalidInputError):
    """A metric value that is not a number, or a param or tag value that is too long."""


class FilterSyntaxError(InvalidInputError):
    """A search filter or order-by expression that cannot be understood.

    Attributes:
        position: zero-based character offset in the expression where the problem is.
    """

    def __init__(self, message: str, expression: str = "", position: int | None = None):
        self.expression = expression
        self.position = position
        if position is not None and expression:
            message = f"{message} (at position {position}: {expression[:position]}⟨here⟩{expression[position:]})"
        super().__init__(message)


class UnsafePathError(InvalidInputError):
    """An artifact name with '..', an absolute path or a NUL byte."""


class SignatureError(InvalidInputError):
    """Model input that does not match the model's signature.

    Attributes:
        problems: one ``{"column", "problem", "expected", "observed"}`` dict per offending column.
    """

    def __init__(self, message: str, problems: list[dict[str, object]] | None = None):
        super().__init__(message)
        self.problems = problems or []


class ModelError(ModelcycleError):
    """A model that cannot be saved, packaged or loaded."""


class UnsafeModelError(ModelError):
    """Saving or loading would run code: pickle without consent, or a type nobody audited."""


class ModelIntegrityError(ModelError):
    """A model package whose files, or manifest, no longer match what was saved."""


class GateError(ModelcycleError):
    """An alias move refused because no passing verdict allows it (``force=True`` overrides, and is recorded)."""


class PipelineError(ModelcycleError):
    """A step of a pipeline failed; ``result`` holds what finished, what failed and what was skipped."""

    def __init__(self, message: str, result: object = None):
        super().__init__(message)
        self.result = result


class NotFoundError(ModelcycleError, KeyError):
    """A run, experiment or artifact that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConflictError(ModelcycleError):
    """A write that contradicts stored data, such as changing a param's value."""


class PermissionDeniedError(ModelcycleError):
    """The team server's user has no role that allows this (read, write or manage on the experiment or model)."""


class DataValidationError(ModelcycleError):
    """Data that breaks its schema; ``report`` holds every anomaly."""

    def __init__(self, message: str, report: object = None):
        super().__init__(message)
        self.report = report


class StoreError(ModelcycleError):
    """The metadata store cannot be reached or used."""


class StoreRefusedError(StoreError):
    """The store answered and refused a write for good: it names a record that no longer exists (a run deleted
    meanwhile) or breaks one of the store's rules. Sending it again cannot succeed."""


class StoreBusyError(StoreError):
    """The database stayed locked by other writers for longer than the timeout."""


class ArtifactError(ModelcycleError):
    """The artifact store cannot be used."""


class ArtifactCorruptedError(ArtifactError):
    """Bytes read from the artifact store no longer match the sha256 they were stored under."""


class ReproduceError(ModelcycleError):
    """A run cannot be reproduced here."""


class MissingDependencyError(ModelcycleError, ImportError):
    """An optional library that is not installed; the message names the extra that installs it.

    Attributes:
        module: the module that could not be imported, e.g. ``"skops"``.
        extra: the modelcycle extra that installs it, e.g. ``"sklearn"`` (None when no extra does).

    Example:
        >>> e = MissingDependencyError("tuning needs Optuna, which is not installed: pip install 'modelcycle[tune]'",
        ...                            module="optuna", extra="tune")
        >>> isinstance(e, ImportError), e.extra
        (True, 'tune')
    """

    def __init__(self, message: str, module: str | None = None, extra: str | None = None):
        super().__init__(message)
        self.name = module  # ImportError's attribute: the module that is missing
        self.module = module
        self.extra = extra
