"""The trigram index is asked for the uncommon part of a search term, and the same orders
match as for the whole term."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.review_helpers import make_case
from verifier.review.search import like_trigrams, match_orders, search_part


def test_like_trigrams_pad_the_words_the_part_bounds():
    assert like_trigrams("r2450@") == {"r24", "245", "450", "50 "}
    assert like_trigrams("@ex") == {"  e", " ex"}
    assert like_trigrams("ab") == set()


def test_the_part_leaves_out_common_trigrams():
    common = {t: 1.0 for t in like_trigrams("customer") | like_trigrams("@example.com")}
    assert search_part("customer2450@example.com", common) == "er2450@"
    assert search_part("zzz@x.test", common) == "zzz@x.test"  # nothing common: whole term
    assert search_part("customer", common) == "customer"  # no uncommon part: whole term
    assert search_part("customer24", common) == "customer24"  # "r24" alone is too short
    assert search_part("customer2450@example.com", {}) == "customer2450@example.com"


def test_a_search_finds_the_same_orders_through_its_uncommon_part(db_session):
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite's FTS5 search needs no statistics")
    for i in range(60):
        make_case(db_session, f"SP-{i:03d}", email=f"customer{i}@shop.test")
    make_case(db_session, "SP-X", email="x.customer12@shop.test.uk")
    db_session.commit()
    db_session.execute(text("ANALYZE orders"))
    db_session.commit()
    found = match_orders(db_session, "CUSTOMER12@shop.test")
    emails = {
        db_session.scalar(text("SELECT customer_email FROM orders WHERE id = :i"), {"i": i})
        for i in found.order_ids
    }
    assert emails == {"customer12@shop.test", "x.customer12@shop.test.uk"}
    assert not found.more
