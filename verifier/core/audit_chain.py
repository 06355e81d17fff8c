"""The audit log's hash chain: every event carries the hash of the one before it.

An event's hash is SHA-256 over a canonical JSON encoding of its fields and the previous
event's hash (`canonical_bytes`). Events are linked at commit, not when added: a `before_commit`
hook on every Session takes the chain-head row (`audit_chain_head`, id 1) with an UPDATE, which
on PostgreSQL holds that row's lock until the commit and on SQLite needs the write lock the
transaction already holds, so two writers can never link to the same predecessor (no fork),
and the chain order is the commit order. The lock is the last one a transaction takes and is
held only for its final flush and commit, so it cannot deadlock with row locks taken earlier
(everything but the events is flushed before the head is taken). The intake's hot path links
its one event with the event's own INSERT instead (`append_event`), the head following by
trigger (migration 0008).

`verify_chain` re-reads the whole log and names each event that was edited, inserted outside
the chain, or deleted (a gap in `seq`, or a head that is ahead of the last event).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, event, func, insert, select, update
from sqlalchemy.orm import Session

from verifier.core.prepared import Prepared
from verifier.models import AuditChainHead, AuditEvent, utcnow

GENESIS = "0" * 64
HEAD_ID = 1
FORMAT = "v1"
_PENDING = "verifier.audit.unchained"


def _json_value(value: Any) -> Any:
    # What the JSON column gives back: string keys, lists for tuples.
    return json.loads(json.dumps(value if value is not None else {}))


def format_at(at: datetime) -> str:
    """An event time as hashed: UTC, microseconds, no zone suffix (the same on every backend)."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")


def canonical_bytes(
    seq: int, at: datetime, actor_type: str, actor_id: str | None, action: str,
    target_type: str | None, target_id: str | None, details: Any, prev_hash: str,
) -> bytes:  # fmt: skip
    """The bytes an event's hash covers: every field, in a fixed order, as compact JSON."""
    fields = [FORMAT, seq, format_at(at), actor_type, actor_id, action, target_type, target_id,
              _json_value(details), prev_hash]  # fmt: skip
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def event_hash(row: Any, seq: int, prev_hash: str) -> str:
    """The hash `row` has at position `seq` after `prev_hash`."""
    return hashlib.sha256(
        canonical_bytes(
            seq,
            row.at,
            row.actor_type,
            row.actor_id,
            row.action,
            row.target_type,
            row.target_id,
            row.details,
            prev_hash,
        )
    ).hexdigest()


def _take_head(session: Session, count: int) -> tuple[int, str]:
    """Advance the head by `count` positions; returns (last seq before, its hash). Locks it."""
    advance = (
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(seq=AuditChainHead.seq + count)
        .returning(AuditChainHead.seq, AuditChainHead.hash)
    )
    row = session.execute(advance).first()
    if row is None:
        # No head yet (a new database, or tables emptied): start after the last linked event.
        last = session.execute(
            select(AuditEvent.seq, AuditEvent.hash)
            .where(AuditEvent.seq.is_not(None))
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).first()
        seq, head_hash = (last[0], last[1]) if last else (0, GENESIS)
        dialect = session.get_bind().dialect.name
        values = {"id": HEAD_ID, "seq": seq, "hash": head_hash}
        if dialect in ("postgresql", "sqlite"):
            # Two first writers at once: one inserts, the other's UPDATE then waits for it.
            stmt = _dialect_insert(dialect)(AuditChainHead).values(values).on_conflict_do_nothing()
        else:  # pragma: no cover - only the two supported databases
            stmt = insert(AuditChainHead).values(values)
        session.execute(stmt)
        row = session.execute(advance).one()
    return row[0] - count, row[1]


def _dialect_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def link_pending_events(session: Session) -> int:
    """Give every unlinked event of this transaction its seq and hashes; returns how many."""
    pending: list[AuditEvent] = session.info.pop(_PENDING, [])
    rows = [r for r in dict.fromkeys(pending) if r.seq is None and r in session]
    if not rows:
        return 0
    rows.sort(key=lambda r: (r.id is None, r.id or 0))  # flushed ones first, in id order
    # The head's lock must be the last one taken (an event INSERTed with its seq takes it by
    # trigger, as its transaction's last statement): write everything else first, so that no
    # transaction holding the head waits for a row lock held by one that wants the head.
    unflushed = [r for r in rows if r.id is None]
    for row in unflushed:
        session.expunge(row)
    try:
        session.flush()
    finally:
        for row in unflushed:
            session.add(row)
    with session.no_autoflush:
        last_seq, prev = _take_head(session, len(rows))
        for offset, row in enumerate(rows, start=1):
            if row.at is None:
                row.at = utcnow()
            if row.details is None:
                row.details = {}
            row.seq = last_seq + offset
            row.prev_hash = prev
            row.hash = prev = event_hash(row, row.seq, row.prev_hash)
        session.execute(
            update(AuditChainHead).where(AuditChainHead.id == HEAD_ID).values(hash=prev)
        )
    return len(rows)


def head_columns() -> tuple[Any, Any]:
    """SQL for the chain head's (seq, hash), to read it in a query the caller makes anyway."""
    where = AuditChainHead.id == HEAD_ID
    return (
        select(AuditChainHead.seq).where(where).scalar_subquery(),
        select(AuditChainHead.hash).where(where).scalar_subquery(),
    )


EVENT_FIELDS = ("at", "actor_type", "actor_id", "action", "target_type", "target_id",
                "details", "seq", "prev_hash", "hash")  # fmt: skip


def _append_statement(dialect: str) -> Prepared:
    return Prepared(
        _dialect_insert(dialect)(AuditEvent)
        .values({name: bindparam(name) for name in EVENT_FIELDS})
        .on_conflict_do_nothing(index_elements=[AuditEvent.seq])
        .returning(AuditEvent.id)
    )


_APPEND = {name: _append_statement(name) for name in ("postgresql", "sqlite")}
_READ_HEAD = Prepared(
    select(AuditChainHead.seq, AuditChainHead.hash).where(AuditChainHead.id == HEAD_ID)
)
_TAKE_HEAD = Prepared(
    update(AuditChainHead)
    .where(AuditChainHead.id == HEAD_ID)
    .values(seq=AuditChainHead.seq + 1)
    .returning(AuditChainHead.seq, AuditChainHead.hash)
)
MAX_APPEND_TRIES = 100


def append_event(
    conn: Connection, head: tuple[int, str] | None, *, at: datetime, actor_type: str,
    actor_id: str | None, action: str, target_type: str | None, target_id: str | None,
    details: dict[str, Any],
) -> tuple[int, str] | None:  # fmt: skip
    """INSERT one event linked after `head` (seq, hash read earlier, a hint); the new head.

    The only chain statement is the event's own INSERT: `seq` is unique, so when another
    transaction linked an event after `head` was read, ON CONFLICT DO NOTHING inserts nothing
    (on PostgreSQL after waiting for that transaction); then PostgreSQL takes the head's lock
    (UPDATE ... RETURNING, as the session path does) and SQLite reads the head again, and the
    hash is recomputed. Two events can never share a position (no fork), and the head row follows
    by trigger. On SQLite `head` is read before the write lock is taken (the API reads it with
    the key; a group commit carries it on from event to event), so after another process's
    write one INSERT finds its seq taken and the head is read again under the lock.
    Returns the event's (seq, hash), the chain's head once it commits, or None when there is no
    head row (a new database): link through the session then.
    """
    append = _APPEND[conn.dialect.name]
    for _ in range(MAX_APPEND_TRIES):
        if head is None or head[0] is None:
            return None
        seq, prev = head[0] + 1, head[1]
        fields = (seq, at, actor_type, actor_id, action, target_type, target_id, details, prev)
        digest = hashlib.sha256(canonical_bytes(*fields)).hexdigest()
        inserted = append.run(conn, dict(zip(EVENT_FIELDS, (*fields[1:8], seq, prev, digest),
                                             strict=True))).first()  # fmt: skip
        if inserted is not None:
            return seq, digest
        if conn.dialect.name == "postgresql":
            # Lost a race: take the head's lock (waiting for the winner's commit) instead of
            # trying again and again under load; the trigger then stores this event's hash.
            taken = _TAKE_HEAD.run(conn, {}).first()
            head = None if taken is None else (taken[0] - 1, taken[1])
        else:
            head = _READ_HEAD.run(conn, {}).first()
    raise RuntimeError("could not link an audit event after repeated contention")


@event.listens_for(Session, "before_flush")
def _collect_new_events(session: Session, _context: Any, _instances: Any) -> None:
    # However an event was added (record_event or session.add), it is linked at commit.
    new = [obj for obj in session.new if isinstance(obj, AuditEvent) and obj.seq is None]
    if new:
        session.info.setdefault(_PENDING, []).extend(new)


@event.listens_for(Session, "before_commit")
def _link_before_commit(session: Session) -> None:
    new = [obj for obj in session.new if isinstance(obj, AuditEvent) and obj.seq is None]
    if new:
        session.info.setdefault(_PENDING, []).extend(new)
    if session.info.get(_PENDING):
        link_pending_events(session)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


# ---- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    """One finding: what is wrong, and which event (by id and seq) it concerns."""

    kind: str  # edited | inserted | deleted | relinked | head | anchor
    message: str
    event_id: int | None = None
    seq: int | None = None


@dataclass
class ChainReport:
    """What `verify_chain` found: how many events it checked, the head, and any problems."""

    events: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        head = f"last event seq {self.last_seq} hash {self.last_hash}"
        if self.ok:
            return [f"Audit chain intact: {self.events} events, {head}."]
        return [f"{p.kind.upper()}: {p.message}" for p in self.problems] + [
            f"Audit chain BROKEN: {len(self.problems)} problem(s) in {self.events} events, {head}."
        ]


_COLUMNS = (AuditEvent.id, AuditEvent.seq, AuditEvent.at, AuditEvent.actor_type,
            AuditEvent.actor_id, AuditEvent.action, AuditEvent.target_type, AuditEvent.target_id,
            AuditEvent.details, AuditEvent.prev_hash, AuditEvent.hash)  # fmt: skip


def _walk(session: Session, batch: int) -> Iterator[Any]:
    # Plain rows, not ORM objects: the caller's session keeps nothing of a long walk.
    after = 0
    while True:
        rows = session.execute(
            select(*_COLUMNS).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def verify_chain(
    session: Session, *, anchor: tuple[int, str] | None = None, batch: int = 2000
) -> ChainReport:
    """Re-hash every event in chain order and report each edit, insertion and deletion.

    `anchor` (seq, hash) is a head recorded earlier outside the database: it catches a log
    whose tail was cut off or rewritten together with the head row.
    """
    report = ChainReport()
    problems = report.problems
    prev_seq, prev_hash, prev_id = 0, GENESIS, None
    anchor_seen = False
    for row in _walk(session, batch):
        assert row.seq is not None
        report.events += 1
        if row.seq != prev_seq + 1:
            where = f"after event #{prev_id}" if prev_id else "at the start"
            span = row.seq - prev_seq - 1
            problems.append(ChainProblem(
                "deleted", f"{span} event(s) with seq {prev_seq + 1}..{row.seq - 1} are missing "
                f"({where}, before event #{row.id}).", row.id, row.seq,
            ))  # fmt: skip
        elif row.prev_hash != prev_hash:
            problems.append(ChainProblem(
                "relinked", f"event #{row.id} (seq {row.seq}) does not link to the event before "
                f"it (#{prev_id}): that one was edited and re-hashed, or this one inserted.",
                row.id, row.seq,
            ))  # fmt: skip
        expected = event_hash(row, row.seq, row.prev_hash or "")
        if row.hash != expected:
            problems.append(ChainProblem(
                "edited", f"event #{row.id} (seq {row.seq}, {row.action} at "
                f"{format_at(row.at)}) was edited: its fields no longer match its hash.",
                row.id, row.seq,
            ))  # fmt: skip
        if anchor is not None and row.seq == anchor[0]:
            anchor_seen = True
            if row.hash != anchor[1]:
                problems.append(ChainProblem(
                    "anchor", f"event #{row.id} (seq {row.seq}) has hash {row.hash}, not the "
                    f"anchored {anchor[1]}: the chain was rewritten up to there.", row.id, row.seq,
                ))  # fmt: skip
        prev_seq, prev_hash, prev_id = row.seq, row.hash or "", row.id
    report.last_seq, report.last_hash = prev_seq, prev_hash
    for event_id, action in session.execute(
        select(AuditEvent.id, AuditEvent.action).where(AuditEvent.seq.is_(None))
    ):
        problems.append(ChainProblem(
            "inserted", f"event #{event_id} ({action}) is not in the chain: it was inserted "
            "outside the application.", event_id,
        ))  # fmt: skip
    head = session.get(AuditChainHead, HEAD_ID)
    if head is not None and (head.seq, head.hash) != (prev_seq, prev_hash):
        if head.seq > prev_seq:
            message = (f"the last {head.seq - prev_seq} event(s), seq {prev_seq + 1}..{head.seq}, "
                       f"are missing (deleted after event #{prev_id}).")  # fmt: skip
            kind = "deleted"
        else:
            message = (
                f"the chain head (seq {head.seq}) does not match the last event (seq {prev_seq})."
            )
            kind = "head"
        problems.append(ChainProblem(kind, message, None, head.seq))
    elif head is None and report.events:
        problems.append(ChainProblem("head", "the chain-head row is missing."))
    if anchor is not None and not anchor_seen:
        problems.append(ChainProblem(
            "anchor", f"no event has the anchored seq {anchor[0]}: the log was cut short.",
            None, anchor[0],
        ))  # fmt: skip
    return report


def chain_length(session: Session) -> int:
    """How many events are linked (for status lines)."""
    return session.scalar(select(func.count()).where(AuditEvent.seq.is_not(None))) or 0
