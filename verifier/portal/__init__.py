"""The customer upload portal."""

from verifier.portal.views import bp

__all__ = ["bp"]
