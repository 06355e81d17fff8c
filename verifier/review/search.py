"""Queue search: the orders whose number, email or customer name contains a term.

Three characters or more search anywhere in the three fields through a trigram index: an
FTS5 table with the trigram tokenizer on SQLite (kept by triggers, migration 0006), a pg_trgm
GIN index on PostgreSQL. Shorter terms match the start of the order number or email, by
their b-tree indexes. Either way at most `limit` orders are found, in the order the index
gives them, and the caller is told when there were more.

The GIN index reads the whole posting list of every trigram it is asked for, so a trigram
that most orders share costs a read that grows with the table. PostgreSQL's statistics on
the columns' trigrams (migration 0018) say which are common; the index is asked for the
longest part of the term made of uncommon trigrams only (search_part), and the whole term is
checked on the rows it finds, so the same orders match.
"""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, and_, bindparam, func, or_, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from verifier.models import Order

MIN_TRIGRAM = 3
MAX_MATCHES = 1000
COMMON = 0.05  # a trigram in more than 5 % of the orders is left to the check on the rows
MIN_PART_TRIGRAMS = 3  # a shorter part would find too many rows to check
MAX_PART_TERM = 100  # longer terms go to the index whole
REFRESH_SECONDS = 600.0  # statistics move with ANALYZE (autovacuum): re-read now and then
# Searched column -> its statistics object (migration 0018).
STATISTICS = {"external_id": "st_orders_external_id_trgm", "email": "st_orders_email_trgm",
              "name": "st_orders_name_trgm"}  # fmt: skip
_WORD = re.compile(r"[^\W_]+")
_frequencies: weakref.WeakKeyDictionary[Engine, tuple[float, dict[str, dict[str, float]]]] = (
    weakref.WeakKeyDictionary()
)


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


def like_trigrams(part: str) -> set[str]:
    """The trigrams pg_trgm asks its index for when matching LIKE '%part%': each word (a run
    of letters and digits) padded, as in the indexed values, where the part bounds it (two
    blanks before, one after) and not where the wildcards do."""
    found: set[str] = set()
    for word in _WORD.finditer(part):
        padded = ("  " if word.start() else "") + word.group()
        padded += " " if word.end() < len(part) else ""
        found.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return found


def search_part(term: str, frequencies: dict[str, float]) -> str:
    """The longest part of `term` whose trigrams are all uncommon (in at most COMMON of the
    orders: `frequencies` lists the common ones), with MIN_PART_TRIGRAMS or more; the term
    itself when none of its trigrams is common, when no such part exists, or without
    statistics. A part's trigrams are a subset of a longer part's: one slide over the term."""

    def uncommon(part: str) -> bool:
        return all(frequencies.get(t, 0.0) <= COMMON for t in like_trigrams(part))

    if not frequencies or len(term) > MAX_PART_TERM or uncommon(term):
        return term
    best, end = "", 0
    for start in range(len(term)):
        end = max(end, start)
        while end < len(term) and uncommon(term[start : end + 1]):
            end += 1
        part = term[start:end]
        if len(part) > len(best) and len(like_trigrams(part)) >= MIN_PART_TRIGRAMS:
            best = part
    return best or term


def trigram_frequencies(session: Session) -> dict[str, dict[str, float]]:
    """Searched column -> its common trigrams' shares of the orders, from the statistics
    ANALYZE keeps (PostgreSQL); re-read every REFRESH_SECONDS, empty before any ANALYZE."""
    engine = session.get_bind().engine
    cached = _frequencies.get(engine)
    if cached is not None and time.monotonic() - cached[0] < REFRESH_SECONDS:
        return cached[1]
    by_name: dict[str, dict[str, float]] = {}
    rows = session.execute(
        text(
            "SELECT s.statistics_name, u.trigram, u.share FROM pg_stats_ext_exprs s,"
            " unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs)"
            " AS u(trigram, share) WHERE s.statistics_name IN :names AND u.trigram IS NOT NULL"
        ).bindparams(bindparam("names", expanding=True)),
        {"names": list(STATISTICS.values())},
    )
    for name, trigram, share in rows:
        by_name.setdefault(name, {})[trigram] = share
    found = {column: by_name.get(name, {}) for column, name in STATISTICS.items()}
    _frequencies[engine] = (time.monotonic(), found)
    return found


def _contains(
    column: ColumnElement[str] | InstrumentedAttribute[str],
    term: str,
    frequencies: dict[str, float],
) -> ColumnElement[bool]:
    """`column` contains `term`, the index asked for its uncommon part (search_part) and the
    whole term checked on the rows found (`|| ''` keeps that check off the index)."""
    part = search_part(term, frequencies)
    if part == term:
        return column.like(_like_pattern(term))
    return and_(column.like(_like_pattern(part)), column.concat("").like(_like_pattern(term)))


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
        common = trigram_frequencies(session)
        email = (
            _contains(Order.customer_email, term, common["email"])
            if common["email"]
            else _email_contains(term, pattern)
        )
        ids = list(
            session.scalars(
                select(Order.id)
                .where(
                    or_(
                        _contains(Order.external_id_lower, term, common["external_id"]),
                        email,
                        _contains(func.lower(Order.customer_name), term, common["name"]),
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
