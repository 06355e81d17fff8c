"""Velocity facts: how many orders share an order's email, card, address, phone or IP lately.

The sampler is pure, so these counts are looked up before it runs and passed in as
`OrderFacts.velocity`. One statement reads every key a policy needs, each through its
(key, id) index (verifier.models.LINK_KEY_COLUMNS): the window's first order id is found
through the `created_at` index, so each key's scan covers only the window, newest first, and
stops after the largest count any rule tests. Order ids grow with `created_at` (both are set
at intake), which is what lets the id stand in for the time at the window's far edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, literal, select, union_all
from sqlalchemy.orm import Session

from verifier.core.linkkeys import LinkKeys
from verifier.core.rules import VELOCITY_KEYS
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


@cache
def _statement(kinds: tuple[str, ...], before_id: bool) -> Any:
    parts = []
    for n, kind in enumerate(kinds):
        column = getattr(Order, VELOCITY_KEYS[kind])
        since: Any = bindparam(f"since{n}")
        first_id = (
            select(Order.id)
            .where(Order.created_at >= since)
            .order_by(Order.created_at)
            .limit(1)
            .scalar_subquery()
        )
        inner = select(Order.created_at).where(
            column == bindparam(f"key{n}"),
            Order.id >= first_id,
            Order.created_at >= since,
            Order.created_at <= bindparam("now"),
        )
        if before_id:
            inner = inner.where(Order.id < bindparam("before_id"))
        inner = inner.order_by(column.desc(), Order.id.desc()).limit(bindparam(f"limit{n}"))
        sub = inner.subquery(f"v{n}")
        parts.append(select(literal(n).label("kind"), sub.c.created_at))
    return parts[0] if len(parts) == 1 else union_all(*parts)


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
    any rule tests, which is all a rule can tell apart. Reads only; empty when no rule asks.
    """
    needs = policy.velocity_needs
    facts: dict[tuple[str, int], int] = {}
    kinds: list[str] = []
    params: dict[str, Any] = {"now": now}
    if before_id is not None:
        params["before_id"] = before_id
    for kind, (windows, most) in needs.items():
        value = values.get(kind)
        if value is None:
            facts.update({(kind, hours): 0 for hours in windows})
            continue
        n = len(kinds)
        kinds.append(kind)
        params |= {f"key{n}": value, f"since{n}": now - timedelta(hours=max(windows)),
                   f"limit{n}": max(most - 1, 1)}  # fmt: skip
    if not kinds:
        return facts
    found: dict[int, list[datetime]] = {n: [] for n in range(len(kinds))}
    for n, at in session.execute(_statement(tuple(kinds), before_id is not None), params):
        found[n].append(at)
    for n, kind in enumerate(kinds):
        for hours in needs[kind][0]:
            since = now - timedelta(hours=hours)
            facts[(kind, hours)] = 1 + sum(1 for at in found[n] if at >= since)
    return facts
