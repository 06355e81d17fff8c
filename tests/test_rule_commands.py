"""`verifier rules list|add|remove|export|import`: each change a policy version."""

import json

from verifier.core.policies import current_policy

BIG = {
    "name": "Big",
    "action": "review",
    "conditions": [{"type": "amount", "op": ">", "amount": "500", "currency": "EUR"}],
}
TRUSTED = {
    "name": "Trusted",
    "action": "exempt",
    "conditions": [{"type": "email_domain", "op": "in", "values": ["shop.test"]}],
}


def _policy(db_session):
    db_session.rollback()
    return current_policy(db_session)


def test_add_list_remove(runner, db_session):
    empty = runner.invoke(args=["rules", "list"])
    assert empty.exit_code == 0 and "No rules" in empty.output
    added = runner.invoke(args=["rules", "add", json.dumps(BIG)])
    assert added.exit_code == 0, added.output
    assert "Added rule 'Big' (policy version 2)" in added.output
    first = runner.invoke(args=["rules", "add", json.dumps(TRUSTED), "--position", "1",
                                "--reason", "Staff orders"])  # fmt: skip
    assert first.exit_code == 0, first.output
    listing = runner.invoke(args=["rules", "list"]).output
    assert listing.splitlines() == [
        "  1. Trusted [exempt from the random draw] email domain in shop.test",
        "  2. Big [force review] amount > 500.00 EUR",
    ]
    assert _policy(db_session).reason == "Staff orders"
    removed = runner.invoke(args=["rules", "remove", "big"])
    assert removed.exit_code == 0, removed.output
    assert [r["name"] for r in _policy(db_session).rules] == ["Trusted"]
    missing = runner.invoke(args=["rules", "remove", "Nope"])
    assert missing.exit_code != 0 and "no rule named 'Nope'" in missing.output


def test_a_bad_rule_is_refused_with_the_reason(runner, db_session):
    bad = runner.invoke(args=["rules", "add", '{"name": "x", "action": "review"}'])
    assert bad.exit_code != 0 and "at least one condition" in bad.output
    junk = runner.invoke(args=["rules", "add", "{nope"])
    assert junk.exit_code != 0 and "not valid JSON" in junk.output
    dup = runner.invoke(args=["rules", "add", json.dumps(BIG)])
    assert dup.exit_code == 0
    again = runner.invoke(args=["rules", "add", json.dumps(BIG | {"name": "BIG"})])
    assert again.exit_code != 0 and "already named" in again.output
    assert _policy(db_session).version == 2


def test_export_then_import_round_trips(runner, db_session, tmp_path):
    runner.invoke(args=["rules", "add", json.dumps(BIG)])
    exported = runner.invoke(args=["rules", "export"])
    document = json.loads(exported.output)
    assert document["rules"][0]["name"] == "Big"
    document["rules"].append(TRUSTED)
    document["currency_rates"] = {"base": "EUR", "rates": {"USD": "0.9"}}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    imported = runner.invoke(args=["rules", "import", str(path)])
    assert imported.exit_code == 0, imported.output
    assert "Imported 2 rules (policy version 3)" in imported.output
    policy = _policy(db_session)
    assert policy.currency_rates == {"base": "EUR", "rates": {"USD": "0.9"}}
    same = runner.invoke(args=["rules", "import", str(path)])
    assert "nothing was saved" in same.output
    path.write_text(json.dumps({"rules": [BIG, {"name": "bad", "action": "tag"}]}))
    refused = runner.invoke(args=["rules", "import", str(path)])
    assert refused.exit_code != 0 and "Rule 2 is not valid" in refused.output
    out = tmp_path / "out.json"
    runner.invoke(args=["rules", "export", "--output", str(out)])
    assert json.loads(out.read_text())["policy_version"] == 3
