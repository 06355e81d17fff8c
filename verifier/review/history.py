"""Linked history: the other orders (and their cases) that share a key with this one.

Keys are the order's link-key columns (verifier.core.linkkeys): the email, the card (brand,
last four, holder), the billing or shipping address (either way round), the phone, the IP
address and the device id. Each key is read through its own (key, id) index, newest first
and at most PER_KEY orders deep, so a key that thousands of orders share (a shop's office
network, a parcel forwarder) costs no more than a rare one: one statement for the case page,
one for a queue page's hints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal_column, select, union_all
from sqlalchemy.orm import Session, aliased

from verifier.core.rollups import RejectedLink
from verifier.models import IN_REVIEW, REJECTED, Order, VerificationCase

PER_KEY = 100  # linked orders read per key for the case page
SHOWN = 50  # linked orders listed on the case page, newest first
KINDS = ("card", "email", "phone", "device", "address", "ip")
KIND_LABELS = {"card": "card", "email": "email", "phone": "phone", "device": "device",
               "address": "address", "ip": "IP address"}  # fmt: skip
FOUR_EYES = "rejection_proposed"  # the outcome shown for a rejection awaiting confirmation
CLEARED = "cleared"


@dataclass(frozen=True)
class LinkedOrder:
    order_id: int
    external_id: str
    created_at: datetime
    amount_minor: int
    currency: str
    customer_name: str
    case_id: int | None
    outcome: str  # the case's state, FOUR_EYES, or "cleared" (not sampled)
    kinds: tuple[str, ...]  # what it shares with this order, in KINDS order


@dataclass(frozen=True)
class LinkSummary:
    kind: str
    orders: int
    more: bool  # the key has more linked orders than were read
    outcomes: dict[str, int]


@dataclass(frozen=True)
class History:
    orders: list[LinkedOrder]  # newest first, at most SHOWN
    summaries: list[LinkSummary]  # one per kind with links, in KINDS order
    total: int  # distinct linked orders read

    @property
    def rejected(self) -> int:
        return sum(1 for o in self.orders if o.outcome == REJECTED)


# (kind, the linked order's column, this order's column): either address of one order
# against either of the other's.
PAIRS = (
    ("card", "card_key", "card_key"),
    ("email", "email_key", "email_key"),
    ("phone", "phone_key", "phone_key"),
    ("device", "device_id", "device_id"),
    ("address", "billing_key", "billing_key"),
    ("address", "shipping_key", "billing_key"),
    ("address", "billing_key", "shipping_key"),
    ("address", "shipping_key", "shipping_key"),
    ("ip", "ip_address", "ip_address"),
)


def linked_history(session: Session, order: Order, *, per_key: int = PER_KEY) -> History:
    """The orders linked to `order` with their outcomes; one statement (none without keys)."""
    arms = []
    seen: set[tuple[str, str]] = set()
    for kind, column, own in PAIRS:
        value = getattr(order, own)
        if value is None or (column, value) in seen:
            continue  # no such key, or billing and shipping are the same address
        seen.add((column, value))
        arms.append(
            select(Order.id.label("id"), literal_column(f"'{kind}'").label("kind"))
            .where(getattr(Order, column) == value, Order.id != order.id)
            .order_by(Order.id.desc())
            .limit(per_key)
            .subquery()
        )
    if not arms:
        return History([], [], 0)
    links = union_all(*(select(arm.c.id, arm.c.kind) for arm in arms)).subquery()
    rows = session.execute(
        select(
            links.c.kind, Order.id, Order.external_id, Order.created_at, Order.amount_minor,
            Order.currency, Order.customer_name, VerificationCase.id.label("case_id"),
            VerificationCase.status, VerificationCase.proposed_rejection_by_id,
        )
        .join(Order, Order.id == links.c.id)
        .outerjoin(VerificationCase, VerificationCase.order_id == Order.id)
    ).all()  # fmt: skip
    return _history(rows, per_key)


def _outcome(status: str | None, proposed_by: int | None) -> str:
    if status is None:
        return CLEARED
    return FOUR_EYES if status == IN_REVIEW and proposed_by is not None else status


def _history(rows: Sequence[Any], per_key: int) -> History:
    kinds_of: dict[int, set[str]] = {}
    first: dict[int, LinkedOrder] = {}
    per_arm: Counter[str] = Counter()
    for row in rows:
        per_arm[row.kind] += 1
        kinds_of.setdefault(row.id, set()).add(row.kind)
        if row.id not in first:
            first[row.id] = LinkedOrder(
                order_id=row.id, external_id=row.external_id, created_at=row.created_at,
                amount_minor=row.amount_minor, currency=row.currency,
                customer_name=row.customer_name, case_id=row.case_id,
                outcome=_outcome(row.status, row.proposed_rejection_by_id), kinds=(),
            )  # fmt: skip
    linked = [
        LinkedOrder(**{**o.__dict__, "kinds": tuple(k for k in KINDS if k in kinds_of[o.order_id])})
        for o in first.values()
    ]
    linked.sort(key=lambda o: o.order_id, reverse=True)
    summaries = []
    for kind in KINDS:
        sharing = [o for o in linked if kind in o.kinds]
        if sharing:
            outcomes = Counter(o.outcome for o in sharing)
            # An address reads up to four arms; "more" when any of them was cut off.
            more = per_arm[kind] >= per_key if kind != "address" else len(sharing) >= per_key
            summaries.append(LinkSummary(kind, len(sharing), more, dict(outcomes.most_common())))
    return History(linked[:SHOWN], summaries, len(linked))


# kind -> this order's columns whose keys a rejected order may share (rejected_links keeps
# both of a rejected order's addresses under "address").
HINT_COLUMNS = {
    "card": ("card_key",),
    "email": ("email_key",),
    "phone": ("phone_key",),
    "device": ("device_id",),
    "address": ("billing_key", "shipping_key"),
    "ip": ("ip_address",),
}


def rejection_hints(session: Session, order_ids: Sequence[int]) -> dict[int, str]:
    """order id -> "2 earlier rejections with this card", for the orders that have any.

    One statement: for each order and each kind, the other rejected orders that share the
    key, counted in `rejected_links` (kept by triggers, migration 0010) through its primary
    key, so a key that thousands of orders share costs what its rejections cost. The hint
    names the kind with the most rejections (ties: card, email, phone, device, address, IP
    address).
    """
    if not order_ids:
        return {}
    page = aliased(Order, name="page")
    counts = []
    for kind in KINDS:
        keys = [getattr(page, column) for column in HINT_COLUMNS[kind]]
        matches = RejectedLink.key == keys[0] if len(keys) == 1 else RejectedLink.key.in_(keys)
        counts.append(
            select(func.count(RejectedLink.order_id.distinct()))
            .where(RejectedLink.kind == kind, matches, RejectedLink.order_id != page.id)
            .correlate(page)
            .scalar_subquery()
            .label(kind)
        )
    rows = session.execute(select(page.id, *counts).where(page.id.in_(list(order_ids)))).all()
    hints = {}
    for row in rows:
        found = [(getattr(row, kind), kind) for kind in KINDS if getattr(row, kind)]
        if found:
            n, kind = max(found, key=lambda pair: (pair[0], -KINDS.index(pair[1])))
            plural = "rejection" if n == 1 else "rejections"
            hints[row.id] = f"{n} earlier {plural} with this {KIND_LABELS[kind]}"
    return hints
