"""Time-based one-time passwords (RFC 6238): secrets, enrolment QR codes, code checks.

The database keeps each secret sealed under the master key (see verifier.vault.secretbox), bound to
its staff user's id; the base32 secret exists in clear only in memory and on the enrolment
page.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime

import pyotp
import segno

from verifier.vault import secretbox
from verifier.vault.storage import Keyring

# One 30-second step either side of the server's clock absorbs a phone's clock drift.
VALID_WINDOW = 1
_CODE_RE = re.compile(r"^\d{6}$")
# HKDF purpose label: the key that seals TOTP secrets opens nothing else.
SEAL_PURPOSE = b"verifier totp"


def new_secret() -> str:
    """A fresh 160-bit secret in base32, from the operating system's random source."""
    return pyotp.random_base32()


def seal_secret(keyring: Keyring, user_id: int, secret: str) -> str:
    """The value kept in `staff_users.totp_secret`: `secret` sealed for user `user_id`."""
    return secretbox.seal(keyring, SEAL_PURPOSE, secret, f"staff:{user_id}")


def open_secret(keyring: Keyring, user_id: int, sealed: str) -> str:
    """The base32 secret of user `user_id`; raises secretbox.SecretUnreadable."""
    return secretbox.open_sealed(keyring, SEAL_PURPOSE, sealed, f"staff:{user_id}")


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str, title: str) -> str:
    """The QR code of `uri` as an inline SVG element (no script, no style attribute)."""
    return segno.make(uri, error="m").svg_inline(
        scale=5, border=2, title=title, svgclass="totp-qr", lineclass=None
    )


def format_secret(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step whose code equals `code`, newer than `last_step`; None when none matches.

    Refusing steps at or before `last_step` means a code that worked once never works again.
    """
    code = "".join(code.split())
    if not _CODE_RE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
