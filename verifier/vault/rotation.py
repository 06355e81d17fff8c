"""Master-key rotation: every data key and sealed secret moved under the current master key.

Each row names the key that protects it (`documents.key_id`; a sealed value's `v1:<key id>:`
prefix), so that is the progress record: a batch is one transaction, and a run that crashed
or was stopped simply starts again on the rows still under an old key. Every update is
conditional on the row still holding the value that was read, so a purge or erasure that
shreds a key meanwhile is never undone. The run is audited; an old key is reported retired
(safe to drop from VERIFIER_OLD_MASTER_KEYS) only when nothing uses it any more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.models import Document
from verifier.vault.secretbox import is_sealed, open_sealed, seal
from verifier.vault.storage import Keyring, rewrap_key


@dataclass(frozen=True)
class SealedColumn:
    """A column of sealed values: where, under which purpose, bound to what."""

    model: Any
    column: str
    purpose: bytes
    binding: Callable[[Any], str]  # the row -> its `bound_to` text


@dataclass
class RotationReport:
    """What a run did, and which keys each kind of row still uses."""

    current_id: str
    rewrapped: int = 0
    resealed: int = 0
    batches: int = 0
    remaining: Counter[str] = field(default_factory=Counter)
    retired: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.remaining

    def lines(self) -> list[str]:
        lines = [
            f"Re-wrapped {self.rewrapped} data key(s) and re-sealed {self.resealed} secret(s) "
            f"under master key {self.current_id} in {self.batches} batch(es)."
        ]
        for key_id, count in sorted(self.remaining.items()):
            lines.append(f"Still under key {key_id}: {count} row(s); run again.")
        for key_id in self.retired:
            lines.append(
                f"Key {key_id} is no longer used: remove it from VERIFIER_OLD_MASTER_KEYS."
            )
        return lines


def _sealed_key_id(value: str | None) -> str | None:
    return value.split(":")[1] if value and is_sealed(value) else None


def key_usage(session: Session, sealed: list[SealedColumn]) -> Counter[str]:
    """How many rows each master key id protects (documents and sealed values)."""
    usage: Counter[str] = Counter()
    for key_id in session.scalars(select(Document.key_id).where(Document.wrapped_key.is_not(None))):
        usage[key_id or ""] += 1
    for spec in sealed:
        for value in session.scalars(select(getattr(spec.model, spec.column))):
            if (key_id := _sealed_key_id(value)) is not None:
                usage[key_id] += 1
    return usage


def _rewrap_documents(session: Session, keyring: Keyring, batch: int) -> tuple[int, int]:
    rows = session.execute(
        select(Document.id, Document.wrapped_key, Document.key_id)
        .where(Document.wrapped_key.is_not(None), Document.key_id != keyring.current_id)
        .order_by(Document.id)
        .limit(batch)
    ).all()
    done = 0
    for doc_id, wrapped, key_id in rows:
        assert wrapped is not None and key_id is not None
        new_wrapped, new_id = rewrap_key(keyring, doc_id, wrapped, key_id)
        result = session.execute(
            update(Document)
            .where(
                Document.id == doc_id, Document.wrapped_key == wrapped, Document.key_id == key_id
            )
            .values(wrapped_key=new_wrapped, key_id=new_id)
            .execution_options(synchronize_session=False)
        )
        done += result.rowcount  # type: ignore[attr-defined]
    return len(rows), done


def _reseal(session: Session, keyring: Keyring, spec: SealedColumn, batch: int) -> tuple[int, int]:
    model, column = spec.model, getattr(spec.model, spec.column)
    current_prefix = f"v1:{keyring.current_id}:"
    rows = list(
        session.scalars(
            select(model)
            .where(column.like("v1:%"), ~column.startswith(current_prefix))
            .order_by(model.id)
            .limit(batch)
        )
    )
    done = 0
    for row in rows:
        old = getattr(row, spec.column)
        bound = spec.binding(row)
        fresh = seal(keyring, spec.purpose, open_sealed(keyring, spec.purpose, old, bound), bound)
        result = session.execute(
            update(model)
            .where(model.id == row.id, column == old)
            .values({spec.column: fresh})
            .execution_options(synchronize_session=False)
        )
        done += result.rowcount  # type: ignore[attr-defined]
    session.expunge_all()
    return len(rows), done


def rotate_master_key(
    session_factory: Callable[[], Session],
    keyring: Keyring,
    sealed: list[SealedColumn],
    *,
    now: datetime,
    actor: str = "cli",
    batch: int = 200,
    _after_batch: Callable[[int], None] | None = None,
) -> RotationReport:
    """Move everything under an old key to the current one, one committed batch at a time.

    Raises StorageError / SecretUnreadable naming the key when a row's key is not configured.
    `_after_batch` (tests) is called with the batch number after each commit.
    """
    report = RotationReport(keyring.current_id)
    with session_factory() as session:
        before = key_usage(session, sealed)
        record_event(session, "keys.rotation_started", actor_type=actor, actor_id=actor,
                     details={"to_key": keyring.current_id,
                              "rows_by_key": dict(sorted(before.items()))}, now=now)  # fmt: skip
        session.commit()
        for job in [None, *sealed]:
            while True:
                if job is None:
                    found, count = _rewrap_documents(session, keyring, batch)
                else:
                    found, count = _reseal(session, keyring, job, batch)
                if not found:
                    session.rollback()
                    break
                if job is None:
                    report.rewrapped += count
                else:
                    report.resealed += count
                report.batches += 1
                session.commit()
                if _after_batch is not None:
                    _after_batch(report.batches)
        after = key_usage(session, sealed)
        report.remaining = Counter({k: n for k, n in after.items() if k != keyring.current_id})
        report.retired = sorted(k for k in keyring.keys if k != keyring.current_id and not after[k])
        record_event(session, "keys.rotation_finished" if report.done else "keys.rotation_partial",
                     actor_type=actor, actor_id=actor,
                     details={"to_key": keyring.current_id, "rewrapped": report.rewrapped,
                              "resealed": report.resealed,
                              "still_old": dict(sorted(report.remaining.items())),
                              "retired": report.retired}, now=now)  # fmt: skip
        session.commit()
    return report
