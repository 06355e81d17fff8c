"""Audit events for people and for other systems: readable details, CSV and JSON-lines export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.models import AuditEvent

EXPORT_FORMATS = ("csv", "jsonl")
EXPORT_COLUMNS = ("id", "seq", "at", "actor_type", "actor_id", "action", "target_type",
                  "target_id", "details", "prev_hash", "hash")  # fmt: skip
_BATCH = 1000
# Words kept as they are when a key is turned into a label.
_UPPER = {"ip": "IP", "id": "ID", "ids": "IDs", "api": "API", "totp": "TOTP", "url": "URL",
          "pdf": "PDF", "csv": "CSV", "bp": "(basis points)"}  # fmt: skip


def label_for(key: str) -> str:
    """A details key as a label: `documents_erased` -> "Documents erased"."""
    words = [_UPPER.get(w, w) for w in str(key).replace("-", "_").split("_") if w]
    if not words:
        return str(key)
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


def format_value(value: Any) -> str:
    """A details value as plain text: lists joined, booleans yes/no, nothing as a dash."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{label_for(k)}: {format_value(v)}" for k, v in sorted(value.items()))
    return str(value)


def describe_details(details: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An event's details as (label, text) pairs, keys sorted; nested maps flattened one level."""
    pairs: list[tuple[str, str]] = []
    for key in sorted(details or {}):
        value = (details or {})[key]
        if isinstance(value, dict) and value:
            for sub in sorted(value):
                pairs.append((f"{label_for(key)} > {label_for(sub)}", format_value(value[sub])))
        else:
            pairs.append((label_for(key), format_value(value)))
    return pairs


def details_line(details: dict[str, Any] | None) -> str:
    """The details on one line, "Label: value; Label: value" (the evidence PDF's form)."""
    return "; ".join(f"{label}: {text}" for label, text in describe_details(details))


def iter_events(
    session: Session, since: datetime | None, until: datetime | None
) -> Iterator[AuditEvent]:
    """Events with since <= at < until, in chain order, read in batches."""
    after = -1
    while True:
        query = select(AuditEvent).where(AuditEvent.id > after)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        if until is not None:
            query = query.where(AuditEvent.at < until)
        rows = list(session.scalars(query.order_by(AuditEvent.id).limit(_BATCH)))
        if not rows:
            return
        yield from rows
        after = rows[-1].id
        for row in rows:
            session.expunge(row)


def _record(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id, "seq": event.seq, "at": event.at.astimezone(UTC).isoformat(),
        "actor_type": event.actor_type, "actor_id": event.actor_id, "action": event.action,
        "target_type": event.target_type, "target_id": event.target_id,
        "details": event.details or {}, "prev_hash": event.prev_hash, "hash": event.hash,
    }  # fmt: skip


def export_lines(
    session: Session, fmt: str, since: datetime | None, until: datetime | None
) -> Iterator[str]:
    """The events of [since, until) as CSV (header first) or JSON lines; ValueError on a format."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        yield buffer.getvalue()
    for event in iter_events(session, since, until):
        record = _record(event)
        if fmt == "jsonl":
            yield json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
            continue
        record["details"] = json.dumps(record["details"], ensure_ascii=False, sort_keys=True)
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n").writerow(
            {k: _csv_safe(v) for k, v in record.items()}
        )
        yield buffer.getvalue()


def _csv_safe(value: Any) -> Any:
    # A cell that a spreadsheet would run as a formula (=, +, -, @) is quoted as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
