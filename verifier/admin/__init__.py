"""Admin pages. Each page module adds its routes to `bp` when imported: list it here."""

from verifier.admin import audit_views, staff_views
from verifier.admin.blueprint import bp

__all__ = ["audit_views", "bp", "staff_views"]
