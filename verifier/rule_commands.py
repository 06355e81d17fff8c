"""`verifier rules …`: list, add, remove, export and import the sampling rules.

Each change is a new policy version, as a save on the rules page is; `export` writes the JSON
document that `import` reads back (verifier.policy.rulebook).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup, with_appcontext

from verifier.core.policies import current_policy
from verifier.core.rules import ACTIONS, describe_condition, parse_rule
from verifier.db import get_session
from verifier.errors import VerifierError
from verifier.policy.rulebook import (
    export_rulebook,
    import_rulebook,
    save_rules,
    with_rule,
    without_named,
)

rules_group = AppGroup("rules", help="List, add, remove, export and import sampling rules.")


def _fail(exc: VerifierError) -> None:
    message = exc.message
    for name, problem in getattr(exc, "fields", {}).items():
        message += f"\n  {name}: {problem}"
    raise click.ClickException(message)


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"{what} is not valid JSON: {exc.msg} (line {exc.lineno})."
        raise click.ClickException(message) from None


@rules_group.command("list")
@with_appcontext
def list_command() -> None:
    """The rules in force, in the order they are read."""
    policy = current_policy(get_session())
    rules = list(policy.rules or [])
    if not rules:
        click.echo(f"No rules in policy version {policy.version}.")
    for n, rule in enumerate(rules, 1):
        conditions = " and ".join(describe_condition(c) for c in rule["conditions"])
        click.echo(f"{n:>3}. {rule['name']} [{ACTIONS[rule['action']].lower()}] {conditions}")


@rules_group.command("add")
@click.argument("rule_json")
@click.option("--position", type=int, help="Insert at this place (1 is first); default: last.")
@click.option("--reason", default="", help="Why (kept in the history).")
@with_appcontext
def add_command(rule_json: str, position: int | None, reason: str) -> None:
    """Add one rule given as JSON: {"name", "action", "conditions": [...]} (docs/admin.md)."""
    session = get_session()
    try:
        rule = parse_rule(_load_json(rule_json, "The rule"))
        rules = with_rule(list(current_policy(session).rules or []), rule)
        if position is not None:
            rules.insert(max(position - 1, 0), rules.pop())
        saved = save_rules(session, rules, base_version=None,
                           reason=reason or f"Rule {rule['name']!r} added", actor_label="cli",
                           actor_id=None, now=datetime.now(UTC))  # fmt: skip
    except VerifierError as exc:
        _fail(exc)
    session.commit()
    assert saved is not None  # a new name always changes the list
    click.echo(f"Added rule {rule['name']!r} (policy version {saved.version}).")


@rules_group.command("remove")
@click.argument("name")
@click.option("--reason", default="", help="Why (kept in the history).")
@with_appcontext
def remove_command(name: str, reason: str) -> None:
    """Remove the rule called NAME."""
    session = get_session()
    try:
        rules = without_named(list(current_policy(session).rules or []), name)
        saved = save_rules(session, rules, base_version=None,
                           reason=reason or f"Rule {name!r} removed", actor_label="cli",
                           actor_id=None, now=datetime.now(UTC))  # fmt: skip
    except VerifierError as exc:
        _fail(exc)
    session.commit()
    assert saved is not None
    click.echo(f"Removed rule {name!r} (policy version {saved.version}).")


@rules_group.command("export")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout.")
@with_appcontext
def export_command(output: Path | None) -> None:
    """Write the rules and currency rates in force as JSON."""
    text = json.dumps(export_rulebook(current_policy(get_session())), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"Wrote the rules to {output}.")


@rules_group.command("import")
@click.argument("json_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reason", default="", help="Why (kept in the history).")
@with_appcontext
def import_command(json_file: Path, reason: str) -> None:
    """Replace the rules (and rates, if given) with those of a JSON file, as one version."""
    document = _load_json(json_file.read_text(encoding="utf-8"), str(json_file))
    session = get_session()
    try:
        saved = import_rulebook(session, document, reason=reason, actor_label="cli",
                                actor_id=None, now=datetime.now(UTC))  # fmt: skip
    except VerifierError as exc:
        _fail(exc)
    if saved is None:
        click.echo("The file holds the rules in force already; nothing was saved.")
        return
    session.commit()
    click.echo(f"Imported {len(saved.rules)} rules (policy version {saved.version}).")
