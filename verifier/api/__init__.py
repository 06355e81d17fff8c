"""The shop-facing JSON API under /api/v1 (Bearer API keys)."""

from verifier.api.views import bp

__all__ = ["bp"]
