"""Domain errors: every module raises a subclass of VerifierError; views map them in one place."""

from __future__ import annotations


class VerifierError(Exception):
    """Base class: `code` is machine-readable, the message is safe to show to the user."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ValidationError(VerifierError):
    """Input failed validation; `fields` maps a dotted field path to its message."""

    code = "validation_failed"
    status = 422

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.fields = dict(fields or {})


class ConflictError(VerifierError):
    code = "conflict"
    status = 409


class NotFoundError(VerifierError):
    code = "not_found"
    status = 404


class UploadRejected(VerifierError):
    """An uploaded file was refused; the message tells the customer what to do instead."""

    code = "upload_rejected"
    # For a message filled from a template: the untranslated template and what fills it, so
    # the portal can say it in the customer's language.
    template: str | None = None
    details: dict[str, object] = {}
    status = 422


class StorageError(VerifierError):
    """A blob could not be written or read back (including failed authentication)."""

    code = "storage_error"
    status = 500


class StorageFull(StorageError):
    """The uploads volume has no room: nothing was stored, and trying later may work."""

    code = "storage_full"
    status = 507


class DocumentUnreadable(StorageError):
    """A stored document cannot be shown (missing, damaged or tampered with): said plainly."""

    code = "document_unreadable"
    status = 422


class ConfigError(VerifierError):
    """A setting is missing or invalid; the message names the setting."""

    code = "config_error"
    status = 500
