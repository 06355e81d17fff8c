"""Shop API keys: shown once at creation, stored only as a SHA-256 hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.core.audit_chain import head_columns
from verifier.core.policies import newest_version
from verifier.core.prepared import Prepared
from verifier.errors import NotFoundError, ValidationError
from verifier.models import ApiKey

KEY_PREFIX = "vk_"
# Writing last_used_at on every request would make every API call a write; once a minute is
# plenty to tell an operator whether a key is still in use.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, now: datetime) -> tuple[ApiKey, str]:
    """Create a key named `name`; returns the row and the plaintext key, which is never stored."""
    name = " ".join(name.split())
    if not name or len(name) > 100:
        raise ValidationError("Give the key a name of 1-100 characters.", {"name": "Required."})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:10], key_hash=hash_key(key), created_at=now)
    session.add(row)
    session.flush()
    record_event(
        session, "api_key.created", actor_type="cli", target_type="api_key", target_id=row.id,
        details={"name": name, "prefix": row.prefix}, now=now,
    )  # fmt: skip
    return row, key


@dataclass(frozen=True)
class Authenticated:
    """An active key, and the newest policy version number read in the same query."""

    key: ApiKey
    policy_version: int | None


def authenticate_api_key(session: Session, presented: str, now: datetime) -> Authenticated | None:
    """The active key matching `presented`, or None; notes its use (audited) once a minute.

    The same round trip reads the newest policy version, which tells the policy cache
    whether the policy it holds is still the one in force (verifier.core.policies).
    """
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    found = session.execute(
        select(ApiKey, newest_version()).where(ApiKey.key_hash == hash_key(presented))
    ).one_or_none()
    if found is None:
        return None
    row, version = found
    if row.revoked_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_GRANULARITY:
        # Key use is audited at the same granularity: one event a minute at most per key.
        row.last_used_at = now
        record_event(session, "api_key.used", actor_type="api", actor_id=row.id,
                     target_type="api_key", target_id=row.id,
                     details={"name": row.name, "prefix": row.prefix}, now=now)  # fmt: skip
    return Authenticated(row, version)


@dataclass(frozen=True)
class KeyCheck:
    """What one query tells the API about a presented key, the policy and the audit chain."""

    id: int
    policy_version: int | None
    chain_head: tuple[int, str] | None


def _key_check_statement() -> Prepared:
    head_seq, head_hash = head_columns()
    return Prepared(
        select(
            ApiKey.id,
            ApiKey.revoked_at.is_(None),
            ApiKey.last_used_at >= bindparam("cutoff", type_=ApiKey.last_used_at.type),
            newest_version(),
            head_seq,
            head_hash,
        ).where(ApiKey.key_hash == bindparam("key_hash"))
    )


_KEY_CHECK = _key_check_statement()


def check_api_key(
    session: Session,
    presented: str,
    now: datetime,
    writer: Callable[[], Session] | None = None,
) -> KeyCheck | None:
    """`authenticate_api_key` for the intake's hot path: the active key, or None.

    Nothing is cached: every request reads the key's row by the unique index on its hash (a
    revocation refuses the very next request), the newest policy version and the audit
    chain's head, all in one prepared query on the driver. When the key's use is due to be
    noted (once a minute) it goes through `authenticate_api_key` on the session `writer()`
    gives (default: `session`), which writes that down; the caller commits it.
    """
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    cutoff = now - LAST_USED_GRANULARITY
    found = _KEY_CHECK.run(
        session.connection(), {"cutoff": cutoff, "key_hash": hash_key(presented)}
    ).first()
    if found is None or not found[1]:
        return None
    key_id, _active, recent, version, head_seq, head_hash = found
    if not recent:
        slow = authenticate_api_key(writer() if writer else session, presented, now)
        return None if slow is None else KeyCheck(slow.key.id, slow.policy_version, None)
    head = None if head_seq is None else (int(head_seq), head_hash)
    return KeyCheck(key_id, version, head)


def revoke_api_key(session: Session, ident: str, now: datetime) -> ApiKey:
    """Revoke a key by its id, name or prefix; raises NotFoundError when none or several match."""
    query = select(ApiKey).where(ApiKey.revoked_at.is_(None))
    if ident.isdigit():
        rows = session.scalars(query.where(ApiKey.id == int(ident))).all()
    else:
        rows = session.scalars(
            query.where((ApiKey.name == ident) | (ApiKey.prefix == ident[:10]))
        ).all()
    if len(rows) != 1:
        raise NotFoundError(
            f"No single active API key matches {ident!r} ({len(rows)} found); "
            "use the id from `verifier list-api-keys`."
        )
    row = rows[0]
    row.revoked_at = now
    record_event(
        session, "api_key.revoked", actor_type="cli", target_type="api_key", target_id=row.id,
        details={"name": row.name, "prefix": row.prefix}, now=now,
    )  # fmt: skip
    return row


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))
