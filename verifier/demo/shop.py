"""Demo data: a shop's orders over the past weeks, staff logins and an API key; idempotent."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.core.outcomes import (
    CHARGEBACK,
    CONFIRMED_FRAUD,
    DELIVERED_OK,
    OutcomeInput,
    record_outcome,
)
from verifier.core.policies import create_policy_version, current_policy
from verifier.demo.cases import seed_demo_cases
from verifier.intake.apikeys import hash_key
from verifier.intake.orders import submit_order
from verifier.intake.payload import parse_order
from verifier.models import AWAITING_DOCUMENTS, ApiKey, Order, VerificationCase
from verifier.portal.customer_mail import PortalContext
from verifier.portal.links import active_expiry, create_link, link_url
from verifier.staff.users import create_user, find_user
from verifier.vault.storage import Keyring

# Well-known demo credentials: `verifier demo` refuses to run in production.
DEMO_USERS = (
    ("admin@demo.test", "admin", "demo-admin-password"),
    ("reviewer@demo.test", "reviewer", "demo-reviewer-password"),
)
DEMO_API_KEY = "vk_demo_local_only_do_not_use_in_production"
DEMO_ORDER_COUNT = 300

FIRST = [
    "Alice",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Noor",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
]
LAST = [
    "Meyer",
    "Rossi",
    "Novak",
    "Dubois",
    "Okafor",
    "Silva",
    "Larsen",
    "Kowalski",
    "Haddad",
    "Murphy",
    "Tanaka",
    "Fischer",
    "García",
    "Byrne",
    "Costa",
    "Nieminen",
]
CITIES = [
    ("London", "GB", "SW1A 1AA"),
    ("Berlin", "DE", "10115"),
    ("Paris", "FR", "75001"),
    ("Madrid", "ES", "28001"),
    ("Rome", "IT", "00118"),
    ("Dublin", "IE", "D02 X285"),
    ("Amsterdam", "NL", "1011 AB"),
    ("Vienna", "AT", "1010"),
]
BRANDS = ["visa", "mastercard", "amex"]
PRICES = [19, 29, 49, 79, 120, 249, 480, 950, 1500]  # fmt: skip


@dataclass(frozen=True)
class DemoSummary:
    users_created: int
    api_key_created: bool
    orders_created: int
    orders_flagged: int
    customer_link: str | None = None


def demo_order_payload(index: int, rng: random.Random, now: datetime) -> dict[str, Any]:
    """One plausible order, `index` places into the past few weeks."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, country, postcode = rng.choice(CITIES)
    ship_city, ship_country, ship_postcode = (
        rng.choice(CITIES) if rng.random() < 0.08 else (city, country, postcode)
    )
    holder = f"{first} {last}" if rng.random() > 0.05 else f"{rng.choice(FIRST)} {last}"
    placed = (
        now - timedelta(days=28) + timedelta(minutes=index * (28 * 24 * 60) // DEMO_ORDER_COUNT)
    )
    address = {"line1": f"{rng.randint(1, 200)} High Street", "city": city,
               "postcode": postcode, "country": country}  # fmt: skip
    return {
        "external_id": f"DEMO-{10001 + index}",
        "placed_at": placed.isoformat(),
        "amount": f"{rng.choice(PRICES)}.{rng.randint(0, 99):02d}",
        "currency": "EUR",
        "customer": {"name": f"{first} {last}",
                     "email": f"{first}.{last}{index}@example.com".lower()},
        "billing_address": address,
        "shipping_address": address if ship_city == city else {
            "line1": "1 Market Square", "city": ship_city, "postcode": ship_postcode,
            "country": ship_country},
        "card": {"brand": rng.choice(BRANDS), "last4": f"{rng.randint(0, 9999):04d}",
                 "holder_name": holder},
    }  # fmt: skip


def seed_demo(
    session: Session,
    *,
    rng: random.Random,
    now: datetime,
    portal: PortalContext,
    uploads_dir: Path,
    keyring: Keyring,
) -> DemoSummary:
    """Create what is missing of the demo shop; running it again changes nothing. Commits."""
    users_created = 0
    for email, role, password in DEMO_USERS:
        if find_user(session, email) is None:
            create_user(session, email, role, password, now=now, actor="demo")
            users_created += 1
    key_created = False
    if session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(DEMO_API_KEY))) is None:
        session.add(ApiKey(name="Demo shop", prefix=DEMO_API_KEY[:10],
                           key_hash=hash_key(DEMO_API_KEY), created_at=now))  # fmt: skip
        key_created = True
    session.commit()

    created = flagged = 0
    if session.scalar(select(Order.id).where(Order.external_id == "DEMO-10001")) is None:
        if current_policy(session).version == 1:
            # The demo shop checks 10 % at random, and every large or cross-border order.
            create_policy_version(
                session,
                changes={"rate_bp": 1000, "amount_threshold_minor": 100_000,
                         "rule_country_mismatch": True},
                reason="Demo shop: 10 % at random, orders of 1,000 EUR or more, and orders "
                "shipped abroad",
                actor_label="demo", actor_id=None, now=now - timedelta(days=29),
            )  # fmt: skip
        data_rng = random.Random(20261123)  # same demo shop every time
        for index in range(DEMO_ORDER_COUNT):
            payload = demo_order_payload(index, data_rng, now)
            data = parse_order(payload, now)
            result = submit_order(
                session, data, source="demo", rng=rng, now=data.placed_at, portal=portal
            )
            created += int(result.created)
            assert result.order.decision is not None  # an order is stored with its decision
            flagged += int(result.order.decision.flagged)
        session.commit()
        reviewer = find_user(session, DEMO_USERS[1][0])
        assert reviewer is not None  # the demo users were created above
        seed_demo_cases(session, uploads_dir=uploads_dir, keyring=keyring,
                        reviewer_id=reviewer.id, rng=random.Random(7), now=now)  # fmt: skip
        _seed_demo_outcomes(session, now)
    link = demo_customer_link(session, portal=portal, now=now)
    session.commit()
    return DemoSummary(users_created, key_created, created, flagged, link)


def _seed_demo_outcomes(session: Session, now: datetime) -> None:
    """What the demo shop learned later: a few chargebacks, one confirmed fraud, deliveries."""
    for index in range(0, DEMO_ORDER_COUNT, 7):
        outcome = CHARGEBACK if index % 35 == 0 else DELIVERED_OK
        if index % 70 == 14:
            outcome = CONFIRMED_FRAUD
        data = OutcomeInput(outcome, occurred_at=None, amount_minor=None, note=None)
        record_outcome(session, f"DEMO-{10001 + index}", data, api_key_id=None, now=now)


def demo_customer_link(session: Session, *, portal: PortalContext, now: datetime) -> str | None:
    """A working customer link to the newest demo case still waiting for documents.

    Tokens are stored only as hashes, so each call makes a new link to print.
    """
    case = session.scalar(
        select(VerificationCase)
        .join(VerificationCase.order)
        .where(VerificationCase.status == AWAITING_DOCUMENTS, Order.source == "demo")
        .order_by(VerificationCase.created_at.desc())
        .limit(1)
    )
    if case is None:
        return None
    expires_at = max(active_expiry(session, case.id) or now, now + timedelta(days=7))
    return link_url(portal.base_url, create_link(session, case, expires_at=expires_at, now=now))
