"""Receiving an order through the API: the draw and the write, in the transactions each
database wants.

PostgreSQL takes no lock to read, so the key (read by the view's key check), the draw and the
writes share one transaction. SQLite has one write lock per database: the reads and the draw
run in a deferred transaction that takes none, and a cleared order is then written by the
process's group commit (verifier.intake.group_commit), which commits it with whatever other
orders arrived meanwhile. A flagged order, which opens a case and queues its invitation,
goes through the request's session. Either way the answer is built after the commit, from
what was written. This is the one request path that commits in domain code: the group
commit's transaction holds other requests' orders too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.core.policies import PolicyCache
from verifier.intake.answers import cleared_body, order_body
from verifier.intake.apikeys import KeyCheck
from verifier.intake.group_commit import GroupCommit
from verifier.intake.orders import (
    IntakeResult,
    cleared_write,
    decide_order,
    existing_order,
    store_order,
    submit_order,
)
from verifier.intake.payload import OrderInput
from verifier.portal.customer_mail import PortalContext


@dataclass(frozen=True)
class Received:
    """The API's answer about the order, and whether this request stored it."""

    body: dict[str, Any]
    created: bool


def receive_order(
    data: OrderInput, *, key: KeyCheck, reader: Session, writer: Callable[[], Session],
    group_commit: GroupCommit | None, policies: PolicyCache, rng: random.Random,
    now: datetime, portal: PortalContext,
) -> Received:  # fmt: skip
    """Draw and store `data` for the shop holding `key`, committed before this returns.

    `reader` is the request's session for reads (on PostgreSQL the same as `writer()`, which
    gives the request's session); `group_commit` is None where orders are written one
    transaction each (PostgreSQL). Raises ConflictError for a clash with a stored order.
    """
    if group_commit is None:
        return _in_one_transaction(data, key, writer(), policies, rng, now, portal)
    return _read_then_write(data, key, reader, writer, group_commit, policies, rng, now, portal)


def _in_one_transaction(
    data: OrderInput, key: KeyCheck, session: Session, policies: PolicyCache,
    rng: random.Random, now: datetime, portal: PortalContext,
) -> Received:  # fmt: skip
    result = submit_order(
        session, data, source="api", rng=rng, now=now, portal=portal, actor_id=str(key.id),
        policy=policies.get(session, key.policy_version), chain_head=key.chain_head,
    )  # fmt: skip
    session.commit()
    return _answer(session, result)


def _read_then_write(
    data: OrderInput, key: KeyCheck, reader: Session, writer: Callable[[], Session],
    group_commit: GroupCommit, policies: PolicyCache, rng: random.Random, now: datetime,
    portal: PortalContext,
) -> Received:  # fmt: skip
    if key.policy_version is None:  # an empty database: version 1 is written first
        session = writer()
        policy = policies.get(session, None)
        session.commit()
    else:
        policy = policies.get(reader, key.policy_version)
    decided = decide_order(reader, data, rng=rng, now=now, policy=policy)
    reader.commit()  # the snapshot ends here: a resend's look-up reads afresh
    actor_id = str(key.id)
    if not decided.decision.flagged and key.chain_head is not None:
        write = cleared_write(data, decided, source="api", now=now, actor_id=actor_id)
        if group_commit.write(write, key.chain_head) is None:  # the external id was taken
            return _answer(reader, existing_order(reader, data))
        return Received(cleared_body(write, policy.version), created=True)
    session = writer()
    result = store_order(session, data, decided, source="api", now=now, portal=portal,
                         actor_id=actor_id)  # fmt: skip
    session.commit()
    return _answer(session, result)


def _answer(session: Session, result: IntakeResult) -> Received:
    body = order_body(session, result.order, result.invitation, result.policy_version)
    return Received(body, result.created)
