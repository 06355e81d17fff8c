"""The one helper every area's pages use to put a domain error onto a form."""

from __future__ import annotations

from flask_wtf import FlaskForm

from verifier.errors import ValidationError


def apply_domain_errors(form: FlaskForm, exc: ValidationError) -> list[str]:
    """Attach each field error of `exc` to the form field of that name; return the rest."""
    general = []
    for name, message in exc.fields.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, message]
        else:
            general.append(message)
    if not exc.fields:
        general.append(exc.message)
    return general
