"""Staff sign-in, sign-out, password change and two-factor enrolment (/staff)."""

from verifier.staff.views import bp

__all__ = ["bp"]
