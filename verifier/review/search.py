"""Queue search: the orders whose number, email or customer name contains a term.

Three characters or more search anywhere in the three fields through a trigram index: an
FTS5 table with the trigram tokenizer on SQLite (kept by triggers, migration 0006), a pg_trgm
GIN index on PostgreSQL. Shorter terms match the start of the order number or email, by
their b-tree indexes. Either way at most `limit` orders are found, in the order the index
gives them, and the caller is told when there were more.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from verifier.models import Order

MIN_TRIGRAM = 3
MAX_MATCHES = 1000


@dataclass(frozen=True)
class Matches:
    order_ids: list[int]
    more: bool  # more orders match than were taken: a longer term narrows them


def _prefix_range(column: InstrumentedAttribute[str], prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as an index range scan (plus an exact check)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < upper, column.startswith(prefix, autoescape=True))


def _like_pattern(term: str) -> str:
    # PostgreSQL's LIKE escapes with a backslash by default (no ESCAPE clause, which would
    # hide the pattern from the trigram index).
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _email_contains(term: str, pattern: str) -> ColumnElement[bool]:
    """The email contains `term`. A whole email's domain ("gmail.com") is in a large share of
    all emails, and the trigram index intersects every trigram of the pattern, so the index is
    asked for the part up to and including the "@" alone (a customer's own), and the whole
    term is checked on the few rows found (`|| ''` keeps that check off the index)."""
    local, at, _domain = term.partition("@")
    if not at or len(local) < MIN_TRIGRAM:
        return Order.customer_email.like(pattern)
    return and_(
        Order.customer_email.like(_like_pattern(local + "@")),
        Order.customer_email.concat("").like(pattern),
    )


def match_orders(session: Session, term: str, *, limit: int = MAX_MATCHES) -> Matches:
    """Ids of orders matching `term` (case-insensitive), at most `limit` of them."""
    term = " ".join(term.split()).lower()
    if not term:
        return Matches([], False)
    assert session.bind is not None
    if len(term) < MIN_TRIGRAM:
        arms = [
            select(q.limit(limit + 1).subquery().c.id)
            for q in (
                select(Order.id).where(_prefix_range(Order.external_id_lower, term)),
                select(Order.id).where(_prefix_range(Order.customer_email, term)),
            )
        ]
        ids = list(dict.fromkeys(session.scalars(arms[0].union(arms[1]))))
    elif session.bind.dialect.name == "postgresql":
        pattern = _like_pattern(term)
        ids = list(
            session.scalars(
                select(Order.id)
                .where(
                    or_(
                        Order.external_id_lower.like(pattern),
                        _email_contains(term, pattern),
                        func.lower(Order.customer_name).like(pattern),
                    )
                )
                .limit(limit + 1)
            )
        )
    else:
        phrase = '"' + term.replace('"', '""') + '"'
        ids = list(
            session.scalars(
                text("SELECT rowid FROM orders_search WHERE orders_search MATCH :phrase LIMIT :n"),
                {"phrase": phrase, "n": limit + 1},
            )
        )
    return Matches(ids[:limit], len(ids) > limit)
