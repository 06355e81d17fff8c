"""Linked history: orders sharing a key with a case's order, with their outcomes, and the
queue rows' hints; on the real database (both kinds)."""

from __future__ import annotations

from datetime import timedelta

from tests.review_helpers import ADDRESS, NOW, make_case, make_staff
from verifier.core.linkkeys import address_key, card_key, email_key, fold, phone_key
from verifier.review.history import linked_history, rejection_hints

OTHER_ADDRESS = {"line1": "9 Low Road", "city": "Leeds", "postcode": "LS1 1AA", "country": "GB"}


def _at(hours: int):
    return NOW - timedelta(hours=hours)


def test_keys_fold_case_spaces_punctuation_and_accents():
    assert fold("Ünter-Straße 5, Flat 2") == "unterstrasse5flat2"
    same = {"line1": "1 high st., flat 2", "city": "LONDON", "postcode": "sw1a1aa", "country": "gb"}
    split = {"line1": "1 High St", "line2": "Flat 2", "city": "London", "postcode": "SW1A 1AA",
             "country": "GB"}  # fmt: skip
    assert address_key(same) == address_key(split)
    assert address_key(split) != address_key(OTHER_ADDRESS)
    assert card_key("Visa", "4242", "ALICE  MEYER") == card_key("visa", "4242", "Alice Meyer")
    assert card_key("visa", "4242", "Alice Meyer") != card_key("mastercard", "4242", "Alice Meyer")
    assert phone_key("+44 20 7946 0000") == phone_key("020 7946 0000") == "2079460000"
    assert email_key("A.Lice+shop@GMail.com") == email_key("alice@googlemail.com")
    assert email_key("a.lice@example.com") != email_key("alice@example.com")


def test_a_case_lists_every_order_sharing_a_key_with_its_outcome(db_session):
    me = make_case(db_session, "ME-1", email="alice@example.com", phone="+44 20 7946 0000",
                   ip_address="203.0.113.7", device_id="dev-1", billing=ADDRESS,
                   shipping=OTHER_ADDRESS)  # fmt: skip
    make_case(db_session, "CARD-1", status="rejected", email="x1@example.com",
              billing=OTHER_ADDRESS | {"line1": "elsewhere"}, created_at=_at(50))  # fmt: skip
    # The other's billing address is this order's shipping address: linked either way round.
    make_case(db_session, "ADDR-1", status="approved", email="x2@example.com", card_last4="1111",
              billing=OTHER_ADDRESS, created_at=_at(40))  # fmt: skip
    make_case(db_session, "PHONE-1", status=None, email="x3@example.com", card_last4="2222",
              billing={**ADDRESS, "line1": "2 Other St"}, phone="020 7946 0000",
              created_at=_at(30))  # fmt: skip
    make_case(db_session, "IP-1", status="expired", email="x4@example.com", card_last4="3333",
              billing={**ADDRESS, "line1": "3 Other St"}, ip_address="203.0.113.7",
              created_at=_at(20))  # fmt: skip
    make_case(db_session, "DEV-1", status="declined", email="x5@example.com", card_last4="4444",
              billing={**ADDRESS, "line1": "4 Other St"}, device_id="dev-1",
              created_at=_at(10))  # fmt: skip
    make_case(db_session, "MAIL-1", status="in_review", email="ALICE@example.com",
              card_last4="5555", billing={**ADDRESS, "line1": "5 Other St"},
              created_at=_at(5))  # fmt: skip
    make_case(db_session, "NONE-1", status="rejected", email="x6@example.com", card_last4="6666",
              holder="Bob Other", billing={**ADDRESS, "line1": "6 Other St"})  # fmt: skip
    db_session.commit()

    history = linked_history(db_session, me.order)
    found = {o.external_id: (o.outcome, o.kinds) for o in history.orders}
    assert found == {
        "CARD-1": ("rejected", ("card",)),
        "ADDR-1": ("approved", ("address",)),
        "PHONE-1": ("cleared", ("phone",)),
        "IP-1": ("expired", ("ip",)),
        "DEV-1": ("declined", ("device",)),
        "MAIL-1": ("in_review", ("email",)),
    }
    assert [o.external_id for o in history.orders][:2] == ["MAIL-1", "DEV-1"]  # newest first
    summaries = {s.kind: (s.orders, s.outcomes) for s in history.summaries}
    assert summaries["card"] == (1, {"rejected": 1})
    assert [s.kind for s in history.summaries] == ["card", "email", "phone", "device", "address",
                                                   "ip"]  # fmt: skip


def test_an_order_sharing_several_keys_is_listed_once_with_each(db_session):
    me = make_case(db_session, "ME-2")
    make_case(db_session, "TWIN-1", status="rejected", created_at=_at(30))
    db_session.commit()
    history = linked_history(db_session, me.order)
    assert [(o.external_id, o.kinds) for o in history.orders] == [
        ("TWIN-1", ("card", "email", "address"))
    ]
    assert history.total == 1


def test_a_key_shared_by_many_orders_is_read_only_so_deep(db_session):
    me = make_case(db_session, "ME-3", device_id="office")
    for i in range(12):
        make_case(db_session, f"HOT-{i}", status=None, email=f"h{i}@example.com",
                  card_last4=f"{i:04d}", billing={**ADDRESS, "line1": f"{i} Elm St"},
                  device_id="office", created_at=_at(30 - i))  # fmt: skip
    db_session.commit()
    history = linked_history(db_session, me.order, per_key=5)
    device = next(s for s in history.summaries if s.kind == "device")
    assert device.orders == 5 and device.more
    # The newest arrivals (highest ids) are the ones read.
    assert [o.external_id for o in history.orders] == [f"HOT-{i}" for i in range(11, 6, -1)]


def test_an_anonymised_or_keyless_order_links_to_nothing(db_session):
    me = make_case(db_session, "ME-4")
    make_case(db_session, "TWIN-2", status="rejected", created_at=_at(30))
    db_session.commit()
    for column in ("email_key", "card_key", "billing_key", "shipping_key", "phone_key"):
        setattr(me.order, column, None)
    db_session.flush()
    assert linked_history(db_session, me.order).orders == []


def test_queue_hints_count_rejections_per_key_and_name_the_strongest(db_session):
    reviewer = make_staff(db_session, "r@example.test")
    card = make_case(db_session, "Q-CARD", email="q1@example.com")
    plain = make_case(db_session, "Q-PLAIN", email="q2@example.com", card_last4="9999",
                      billing=OTHER_ADDRESS)  # fmt: skip
    for i in range(2):
        make_case(db_session, f"REJ-{i}", status="rejected", email=f"r{i}@example.com",
                  billing={**ADDRESS, "line1": f"{i} Elm"}, created_at=_at(40 + i))  # fmt: skip
    make_case(db_session, "APP-1", status="approved", email="r9@example.com",
              billing={**ADDRESS, "line1": "9 Elm"}, created_at=_at(60))  # fmt: skip
    proposed = make_case(db_session, "PROP-1", email="q1@example.com", card_last4="8888",
                         billing={**ADDRESS, "line1": "8 Elm"}, created_at=_at(70))  # fmt: skip
    proposed.proposed_rejection_by_id = reviewer.id
    db_session.commit()
    hints = rejection_hints(db_session, [card.order_id, plain.order_id])
    assert hints == {card.order_id: "2 earlier rejections with this card"}
    history = linked_history(db_session, card.order)
    assert {o.external_id: o.outcome for o in history.orders}["PROP-1"] == "rejection_proposed"


def test_anonymising_an_order_clears_every_link_key(db_session):
    from verifier.retention.anonymise import anonymise_orders

    me = make_case(db_session, "ME-5", status="approved", phone="+44 20 7946 0000",
                   ip_address="203.0.113.9", device_id="dev-9")  # fmt: skip
    other = make_case(db_session, "OTHER-5", status="rejected", phone="+44 20 7946 0000",
                      ip_address="203.0.113.9", device_id="dev-9")  # fmt: skip
    db_session.commit()
    assert anonymise_orders(db_session, [other.order_id], NOW) == 1
    db_session.commit()
    order = db_session.get(type(me.order), other.order_id)
    cleared = ("email_key", "card_key", "billing_key", "shipping_key", "phone_key",
               "ip_address", "device_id", "customer_phone")  # fmt: skip
    assert all(getattr(order, c) is None for c in cleared)
    assert linked_history(db_session, me.order).orders == []


def test_the_rejected_links_follow_every_change_of_a_case_or_its_keys(db_session):
    """The triggers of migration 0010: a rejection adds the order's keys, leaving `rejected`
    (an overturn) removes them, anonymising the order clears them, deleting the case too."""
    from sqlalchemy import delete, select

    from verifier.core.rollups import RejectedLink

    def links(order_id):
        db_session.expire_all()
        rows = db_session.execute(
            select(RejectedLink.kind, RejectedLink.key).where(RejectedLink.order_id == order_id)
        )
        return sorted(kind for kind, _ in rows)

    me = make_case(db_session, "ME-9", email="me9@example.com")
    other = make_case(db_session, "OTHER-9", email="o9@example.com", phone="+44 20 7946 0001",
                      shipping=OTHER_ADDRESS)  # fmt: skip
    db_session.commit()
    assert links(other.order_id) == []
    other.status = "rejected"
    db_session.commit()
    # Card, email, phone and both addresses (under one kind, one row each).
    assert links(other.order_id) == ["address", "address", "card", "email", "phone"]
    assert rejection_hints(db_session, [me.order_id]) == {
        me.order_id: "1 earlier rejection with this card"
    }
    other.status = "approved"  # overturned
    db_session.commit()
    assert links(other.order_id) == []
    assert rejection_hints(db_session, [me.order_id]) == {}
    other.status = "rejected"
    db_session.commit()
    other.order.card_key = None
    other.order.email_key = None
    db_session.commit()
    assert links(other.order_id) == ["address", "address", "phone"]
    db_session.execute(delete(type(other)).where(type(other).id == other.id))
    db_session.commit()
    assert links(other.order_id) == []


def test_a_page_order_never_counts_its_own_rejection(db_session):
    mine = make_case(db_session, "SELF-1", status="rejected")
    db_session.commit()
    assert rejection_hints(db_session, [mine.order_id]) == {}
