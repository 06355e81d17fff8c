"""Admin rules pages: the ordered rules of the policy and its currency rates.

GET  /admin/settings/rules/                   the rules in order, the rates table
GET  /admin/settings/rules/new                an empty rule form
POST /admin/settings/rules/new                add the rule at the end (a new policy version)
GET  /admin/settings/rules/<n>                rule n's form
POST /admin/settings/rules/<n>                save rule n
POST /admin/settings/rules/<n>/delete         remove rule n
POST /admin/settings/rules/<n>/move           move rule n up or down one place
POST /admin/settings/rules/rates              save the currency rates
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, url_for

from verifier.core.policies import current_policy
from verifier.core.rules import ACTIONS, describe_condition, parse_rates, rates_json
from verifier.db import get_session
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import SamplingPolicy
from verifier.policy.rule_forms import RatesForm, RuleActionForm, RuleForm
from verifier.policy.rulebook import moved_rule, save_rates, save_rules, with_rule, without_rule
from verifier.web.auth import admin_required, signed_in_staff

bp = Blueprint("rules", __name__, url_prefix="/admin/settings/rules")


def _page(policy: SamplingPolicy, rates_form: RatesForm | None = None, status: int = 200):
    rules = list(policy.rules or [])
    if rates_form is None:
        rates_form = RatesForm(formdata=None)
        rates_form.fill(rates_json(parse_rates(policy.currency_rates)), policy.version)
    listed = [
        {"position": n, "name": r["name"], "action": ACTIONS[r["action"]],
         "conditions": [describe_condition(c) for c in r["conditions"]]}
        for n, r in enumerate(rules, 1)
    ]  # fmt: skip
    action_form = RuleActionForm(formdata=None, base_version=str(policy.version))
    return render_template("policy/rules.html", policy=policy, rules=listed,
                           rates_form=rates_form, action_form=action_form), status  # fmt: skip


def _edit_page(policy: SamplingPolicy, form: RuleForm, position: int | None, status: int = 200):
    return render_template(
        "policy/rule_edit.html", policy=policy, form=form, position=position
    ), status


def _base(text: str | None, policy: SamplingPolicy) -> int:
    """The version the page was made from (the one in force if the field was lost)."""
    text = (text or "").strip()
    return int(text) if text.isdigit() else policy.version


def _rule_at(policy: SamplingPolicy, position: int) -> dict:
    rules = list(policy.rules or [])
    if not 1 <= position <= len(rules):
        raise NotFoundError(f"There is no rule {position}; the page may be out of date.")
    return rules[position - 1]


def _save(form: RuleForm, policy: SamplingPolicy, position: int | None):
    assert form.rule is not None  # validated
    user = signed_in_staff()
    verb = "added" if position is None else "changed"
    try:
        base = _base(form.base_version.data, policy)
        base_rules = list(policy.rules or [])
        saved = save_rules(
            get_session(), with_rule(base_rules, form.rule, position), base_version=base,
            reason=form.reason.data or f"Rule {form.rule['name']!r} {verb}",
            actor_label=user.email, actor_id=user.id, now=datetime.now(UTC),
        )  # fmt: skip
    except ValidationError as exc:
        for name, message in exc.fields.items():
            (form[name].errors if name in form else form.general_errors).append(message)
        return _edit_page(policy, form, position, 422)
    except ConflictError as exc:
        flash(exc.message, "error")
        return _edit_page(policy, form, position, 409)
    if saved is None:
        flash("Nothing changed, so no new version was saved.", "info")
    else:
        get_session().commit()
        flash(f"Rule {form.rule['name']!r} {verb}: policy version {saved.version}.", "success")
    return redirect(url_for("rules.index"), code=303)


@bp.get("/")
@admin_required
def index():
    return _page(current_policy(get_session()))


@bp.get("/new")
@admin_required
def new():
    policy = current_policy(get_session())
    form = RuleForm(formdata=None, base_version=str(policy.version), action="review")
    return _edit_page(policy, form, None)


@bp.post("/new")
@admin_required
def create():
    policy = current_policy(get_session())
    form = RuleForm()
    if not form.validate():
        return _edit_page(policy, form, None, 422)
    return _save(form, policy, None)


@bp.get("/<int:position>")
@admin_required
def edit(position: int):
    policy = current_policy(get_session())
    form = RuleForm(formdata=None)
    if not form.fill(_rule_at(policy, position), policy.version):
        flash("This rule has two conditions of one kind (it was imported from a file), which "
              "this page cannot show. Change it with `verifier rules export` and "
              "`verifier rules import`.", "error")  # fmt: skip
        return redirect(url_for("rules.index"), code=303)
    return _edit_page(policy, form, position)


@bp.post("/<int:position>")
@admin_required
def update(position: int):
    policy = current_policy(get_session())
    _rule_at(policy, position)
    form = RuleForm()
    if not form.validate():
        return _edit_page(policy, form, position, 422)
    return _save(form, policy, position)


def _change_list(position: int, delete: bool):
    session = get_session()
    policy = current_policy(session)
    form = RuleActionForm()
    if not form.validate():
        flash("The form had expired; nothing was changed. Please try again.", "error")
        return redirect(url_for("rules.index"), code=303)
    name = _rule_at(policy, position)["name"]
    rules = list(policy.rules or [])
    if delete:
        changed, what = without_rule(rules, position), f"Rule {name!r} removed"
    else:
        up = form.direction.data == "up"
        changed = moved_rule(rules, position, -1 if up else 1)
        what = f"Rule {name!r} moved {'up' if up else 'down'}"
    user = signed_in_staff()
    try:
        saved = save_rules(session, changed, base_version=form.base(), reason=what,
                           actor_label=user.email, actor_id=user.id,
                           now=datetime.now(UTC))  # fmt: skip
    except ConflictError as exc:
        flash(exc.message, "error")
        return redirect(url_for("rules.index"), code=303)
    if saved is not None:
        session.commit()
        flash(f"{what}: policy version {saved.version}.", "success")
    return redirect(url_for("rules.index"), code=303)


@bp.post("/<int:position>/delete")
@admin_required
def delete(position: int):
    return _change_list(position, delete=True)


@bp.post("/<int:position>/move")
@admin_required
def move(position: int):
    return _change_list(position, delete=False)


@bp.post("/rates")
@admin_required
def rates():
    session = get_session()
    policy = current_policy(session)
    form = RatesForm()
    if not form.validate():
        return _page(policy, form, 422)
    assert form.parsed is not None
    user = signed_in_staff()
    try:
        base = _base(form.base_version.data, policy)
        saved = save_rates(session, form.parsed, base_version=base, reason=form.reason.data or "",
                           actor_label=user.email, actor_id=user.id,
                           now=datetime.now(UTC))  # fmt: skip
    except ConflictError as exc:
        flash(exc.message, "error")
        return _page(policy, form, 409)
    if saved is None:
        flash("Nothing changed, so no new version was saved.", "info")
    else:
        session.commit()
        flash(f"Currency rates saved: policy version {saved.version}.", "success")
    return redirect(url_for("rules.index"), code=303)
