"""Property tests over the order payload: whatever JSON a shop sends, the parser answers with
an order or a ValidationError naming fields, never anything else; and a valid order survives
the trip through the API unchanged. Bounded in examples, so the suite stays fast."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import order_payload
from verifier.errors import ValidationError
from verifier.intake.payload import TOP_FIELDS, parse_order

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Payloads near the real shape: the real field names with any values, and some extras.
near_orders = st.dictionaries(
    st.sampled_from(sorted(TOP_FIELDS)) | st.text(max_size=8), json_values, max_size=10
)


@settings(max_examples=300, deadline=None)
@given(payload=json_values | near_orders)
def test_any_json_gets_an_order_or_field_errors_never_a_crash(payload):
    try:
        order = parse_order(payload, NOW)
    except ValidationError as exc:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in exc.fields.items())
    else:
        assert order.external_id and order.currency and len(order.card_last4) == 4


names = st.text(st.characters(whitelist_categories=("L", "Zs")), min_size=1, max_size=40).filter(
    lambda s: s.strip()
)
amounts = st.decimals(min_value="0.01", max_value="99999999.99", places=2)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(name=names, amount=amounts, n=st.integers(min_value=0, max_value=10**9))
def test_a_valid_order_goes_through_the_api_and_reads_back(client, auth, name, amount, n):
    # Examples share one database (the fixture is per test): each order gets its own id.
    external_id = f"H-{n}-{uuid.uuid4().hex[:12]}"
    payload = order_payload(
        external_id=external_id,
        amount=str(amount),
        customer={"name": name, "email": f"c{n}@example.com"},
        placed_at=(datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
    )
    sent = client.post("/api/v1/orders", json=payload, headers=auth)
    assert sent.status_code in (200, 201), sent.get_json()
    read = client.get(f"/api/v1/orders/{external_id}", headers=auth)
    assert read.status_code == 200
    assert read.get_json()["decision"] == sent.get_json()["decision"]


def _reference_hash(order) -> str:
    """The payload hash as orders already stored were hashed: asdict's form of the order."""
    import hashlib
    import json
    from dataclasses import asdict

    from verifier.intake.payload import OPTIONAL_HASHED

    data = asdict(order)
    for name in OPTIONAL_HASHED:
        if data[name] is None:
            del data[name]
    data["placed_at"] = order.placed_at.astimezone(UTC).isoformat()
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@settings(max_examples=150, deadline=None)
@given(name=names, amount=amounts, n=st.integers(min_value=0, max_value=10**9),
       ip=st.none() | st.ip_addresses(v=4).map(str), street=names)  # fmt: skip
def test_the_payload_hash_is_the_stored_orders_form(name, amount, n, ip, street):
    # A resend of an order stored by an earlier version must hash the same, or it is refused
    # as a different order with the same external id.
    payload = order_payload(external_id=f"H-{n}", amount=str(amount),
                            customer={"name": name, "email": f"c{n}@example.com"},
                            placed_at=(NOW - timedelta(hours=1)).isoformat())  # fmt: skip
    payload["billing_address"] = dict(payload["billing_address"], line1=street)
    if ip:
        payload["ip_address"] = ip
    order = parse_order(payload, NOW)
    assert order.payload_hash() == _reference_hash(order)
