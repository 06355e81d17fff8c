"""Rules versioned with the policy: list edits, conflicts, import/export, carried forward."""

from datetime import UTC, datetime

import pytest

from tests.factories import order_payload
from verifier.core.policies import PolicyInForce, create_policy_version, current_policy
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.policy.changes import edit_policy, policy_values
from verifier.policy.rulebook import (
    export_rulebook,
    import_rulebook,
    moved_rule,
    save_rates,
    save_rules,
    with_rule,
    without_named,
    without_rule,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def rule(name, **condition):
    condition = condition or {"type": "name_mismatch"}
    return {"name": name, "action": "review", "conditions": [condition]}


def save(session, rules, base=None):
    return save_rules(session, rules, base_version=base, reason="", actor_label="test",
                      actor_id=None, now=NOW)  # fmt: skip


def test_list_edits():
    a, b, c = rule("a"), rule("b"), rule("c")
    assert with_rule([a, b], c) == [a, b, c]
    assert with_rule([a, b], c, 1) == [c, b]
    assert without_rule([a, b, c], 2) == [a, c]
    assert moved_rule([a, b, c], 3, -1) == [a, c, b]
    assert moved_rule([a, b, c], 1, -1) == [a, b, c]  # already first
    assert moved_rule([a, b, c], 2, 5) == [a, c, b]
    assert without_named([a, b], "A") == [b]
    with pytest.raises(NotFoundError):
        without_rule([a], 2)
    with pytest.raises(NotFoundError):
        without_named([a], "z")


def test_each_save_is_a_version_and_other_edits_carry_the_rules_forward(db_session):
    current_policy(db_session)
    saved = save(db_session, [rule("Holder differs")])
    assert (saved.version, saved.reason) == (2, "Rules changed")
    assert save(db_session, [rule("Holder differs")]) is None  # nothing changed
    create_policy_version(db_session, changes={"rate_bp": 900}, reason="rate",
                          actor_label="t", actor_id=None, now=NOW)  # fmt: skip
    edited = edit_policy(db_session, base_version=3, proposed={"rate_bp": 100},
                         reason="lower", actor_label="t", actor_id=None, now=NOW)  # fmt: skip
    assert edited is not None and edited.version == 4
    assert [r["name"] for r in edited.rules] == ["Holder differs"]
    in_force = PolicyInForce.of(edited)
    assert [r.name for r in in_force.sampler.rules] == ["Holder differs"]


def test_a_stale_edit_is_refused_only_when_the_rules_changed_meanwhile(db_session):
    current_policy(db_session)
    save(db_session, [rule("a")], base=1)
    with pytest.raises(ConflictError, match="Someone else changed the rules"):
        save(db_session, [rule("b")], base=1)
    create_policy_version(db_session, changes={"rate_bp": 900}, reason="rate",
                          actor_label="t", actor_id=None, now=NOW)  # fmt: skip
    assert save(db_session, [rule("a"), rule("b")], base=2).version == 4  # rate only since 2
    with pytest.raises(ValidationError):
        save(db_session, [rule("a"), rule("A")], base=4)


def test_rates_are_versioned_and_checked(db_session):
    current_policy(db_session)
    saved = save_rates(db_session, {"base": "eur", "rates": {"usd": "0.92"}}, base_version=1,
                       reason="", actor_label="t", actor_id=None, now=NOW)  # fmt: skip
    assert saved.currency_rates == {"base": "EUR", "rates": {"USD": "0.92"}}
    assert policy_values(saved)["currency_rates"] == saved.currency_rates
    with pytest.raises(ValidationError):
        save_rates(db_session, {"rates": {"USD": "-1"}}, base_version=2, reason="",
                   actor_label="t", actor_id=None, now=NOW)  # fmt: skip


def test_export_and_import(db_session):
    current_policy(db_session)
    save(db_session, [rule("a")])
    document = export_rulebook(current_policy(db_session))
    assert document == {"policy_version": 2, "rules": [rule("a")],
                        "currency_rates": {"base": "EUR", "rates": {}}}  # fmt: skip
    assert import_rulebook(db_session, document, reason="", actor_label="t", actor_id=None,
                           now=NOW) is None  # fmt: skip
    document["rules"].append(rule("b"))
    imported = import_rulebook(db_session, document, reason="", actor_label="t",
                               actor_id=None, now=NOW)  # fmt: skip
    assert (imported.version, imported.reason) == (3, "Rules imported")
    with pytest.raises(ValidationError, match="Rule 1 is not valid"):
        import_rulebook(db_session, {"rules": [{"name": "x"}]}, reason="", actor_label="t",
                        actor_id=None, now=NOW)  # fmt: skip
    with pytest.raises(ValidationError):
        import_rulebook(db_session, [1], reason="", actor_label="t", actor_id=None, now=NOW)


def test_an_order_keeps_the_version_whose_rules_decided_it(client, auth, db_session):
    current_policy(db_session)
    save(db_session, [rule("Holder differs")])
    db_session.commit()
    payload = order_payload(external_id="KEEP-1")
    payload["card"] = payload["card"] | {"holder_name": "Bob Stone"}
    body = client.post("/api/v1/orders", json=payload, headers=auth).get_json()
    assert (body["decision"]["reason"], body["decision"]["policy_version"]) == (
        "Holder differs", 2)  # fmt: skip
    db_session.rollback()
    save(db_session, [])
    db_session.commit()
    again = client.get("/api/v1/orders/KEEP-1", headers=auth).get_json()
    assert again["decision"]["policy_version"] == 2
    assert again["decision"]["rules_matched"] == ["Holder differs"]
