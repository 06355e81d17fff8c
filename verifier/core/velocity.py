"""Velocity facts: how many orders share an order's email, card, address, phone or IP lately.

The sampler is pure, so these counts are looked up before it runs and passed in as
`OrderFacts.velocity`. One statement reads every key a policy needs, each through its
(key, id) index (verifier.models.LINK_KEY_COLUMNS): each window's first order id is found
through the `created_at` index, then each key's scan reads only ids (an index-only scan)
inside its widest window, newest first, and stops after the largest count any rule tests.
Order ids grow with `created_at` (both are set at intake), which is what lets an id stand
for a time: an order stored out of order by a few milliseconds at a window's far edge may
be counted or missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, literal, select, union_all
from sqlalchemy.orm import Session

from verifier.core.linkkeys import LinkKeys
from verifier.core.rules import VELOCITY_KEYS, OrderFacts
from verifier.core.sampling import Policy
from verifier.models import Order


def key_values(keys: LinkKeys, ip_address: str | None, device_id: str | None) -> dict[str, Any]:
    """An order's value for each velocity key, as stored on `orders` (None where it has none)."""
    return {
        "email": keys.email_key,
        "card": keys.card_key,
        "billing_address": keys.billing_key,
        "shipping_address": keys.shipping_key,
        "phone": keys.phone_key,
        "ip": ip_address,
        "device": device_id,
    }


def _first_id(w: int) -> Any:
    """The id of the first order stored at or after bind parameter since<w>."""
    return (
        select(Order.id)
        .where(Order.created_at >= bindparam(f"since{w}"))
        .order_by(Order.created_at)
        .limit(1)
        .scalar_subquery()
    )


@cache
def _statement(kinds: tuple[tuple[str, int], ...], windows: int, before_id: bool) -> Any:
    """Rows (-1 - w, first id of window w) for each window, then (n, id) for the newest ids
    sharing key n within its widest window: index-only reads, whole numbers back."""
    firsts = [_first_id(w) for w in range(windows)]
    parts = [select(literal(-1 - w).label("kind"), firsts[w].label("id")) for w in range(windows)]
    for n, (kind, widest) in enumerate(kinds):
        column = getattr(Order, VELOCITY_KEYS[kind])
        inner = select(Order.id).where(column == bindparam(f"key{n}"), Order.id >= firsts[widest])
        if before_id:
            inner = inner.where(Order.id < bindparam("before_id"))
        inner = inner.order_by(column.desc(), Order.id.desc()).limit(bindparam(f"limit{n}"))
        sub = inner.subquery(f"v{n}")
        parts.append(select(literal(n).label("kind"), sub.c.id))
    return union_all(*parts)


def velocity_facts(
    session: Session,
    policy: Policy,
    values: Mapping[str, Any],
    *,
    now: datetime,
    before_id: int | None = None,
) -> dict[tuple[str, int], int]:
    """(key, hours) -> orders sharing the key in the last `hours` hours, this one included.

        `values` are the order's key values (key_values). For an order not yet stored (intake)
        leave `before_id` out; to replay a stored order (a backtest), pass its id and its
        `created_at` as `now`, so only orders before it count. Counts stop at the largest number
        any rule tests, which is all a rule can tell apart. One statement (on PostgreSQL with its
    plan cached, see below); none when no rule asks.
    """
    needs = policy.velocity_needs
    facts: dict[tuple[str, int], int] = {}
    all_hours = sorted({h for windows, _most in needs.values() for h in windows})
    window_of = {hours: w for w, hours in enumerate(all_hours)}
    kinds: list[tuple[str, int]] = []
    params: dict[str, Any] = {f"since{w}": now - timedelta(hours=h) for h, w in window_of.items()}
    if before_id is not None:
        params["before_id"] = before_id
    for kind, (windows, most) in needs.items():
        value = values.get(kind)
        if value is None:
            facts.update({(kind, hours): 0 for hours in windows})
            continue
        n = len(kinds)
        kinds.append((kind, window_of[max(windows)]))
        params[f"key{n}"] = value
        params[f"limit{n}"] = max(most - 1, 1)
    if not kinds:
        return facts
    statement = _statement(tuple(kinds), len(all_hours), before_id is not None)
    firsts: dict[int, int | None] = {}
    found: dict[int, list[int]] = {n: [] for n in range(len(kinds))}
    # A Core statement on the connection: none of the ORM's per-statement work.
    conn = session.connection()
    generic = conn.dialect.name == "postgresql"
    if generic:
        # Planning this union of index-only scans cost PostgreSQL ~1 ms, executing it 0.35 ms;
        # its plan is the same for every key (each (key, id) index), so once the driver has
        # prepared it (after 5 runs) the cached generic plan serves: 1.1 -> 0.4 ms an order.
        # Only for this statement: the rest of the transaction plans as usual.
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    rows = conn.execute(statement, params).all()
    if generic:
        conn.exec_driver_sql("SET LOCAL plan_cache_mode TO DEFAULT")
    for n, order_id in rows:
        if n < 0:
            firsts[-1 - n] = order_id
        else:
            found[n].append(order_id)
    for n, (kind, _widest) in enumerate(kinds):
        for hours in needs[kind][0]:
            first = firsts.get(window_of[hours])
            inside = 0 if first is None else sum(1 for i in found[n] if i >= first)
            facts[(kind, hours)] = 1 + inside
    return facts


def stored_key_values(order: Order) -> dict[str, Any]:
    """A stored order's velocity key values, from the link keys written at intake."""
    keys = LinkKeys(order.email_key or "", order.card_key or "", order.billing_key or "",
                    order.shipping_key or "", order.phone_key)  # fmt: skip
    return key_values(keys, order.ip_address, order.device_id)


def replay_facts(session: Session, policy: Policy, order: Order) -> OrderFacts:
    """A stored order's facts as the sampler saw them when it arrived, velocity included
    (counting only orders stored before it): what a backtest passes to draw_sample."""
    velocity = velocity_facts(
        session, policy, stored_key_values(order), now=order.created_at, before_id=order.id
    ) if policy.velocity_needs else {}  # fmt: skip
    return OrderFacts(
        amount_minor=order.amount_minor,
        billing_country=(order.billing_address or {}).get("country", ""),
        shipping_country=(order.shipping_address or {}).get("country", ""),
        customer_name=order.customer_name,
        cardholder_name=order.cardholder_name,
        currency=order.currency,
        customer_email=order.customer_email,
        card_brand=order.card_brand,
        card_last4=order.card_last4,
        billing_address=order.billing_address or {},
        shipping_address=order.shipping_address or {},
        velocity=velocity,
    )
