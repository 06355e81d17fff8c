"""The `verifier` commands: migrate, staff users, API keys, sampling rate and rules, CSV import,
demo, audit verify/export, master-key rotation."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from verifier.core.audit import record_event
from verifier.core.audit_chain import verify_chain
from verifier.core.audit_export import EXPORT_FORMATS, export_lines
from verifier.core.endpoints import WebhookEndpoint
from verifier.core.policies import create_policy_version, current_policy, current_settings
from verifier.core.sampling import format_rate, parse_rate
from verifier.db import get_session, migrate, new_session
from verifier.demo.shop import DEMO_API_KEY, DEMO_USERS, seed_demo
from verifier.errors import VerifierError
from verifier.intake.apikeys import create_api_key, list_api_keys, revoke_api_key
from verifier.intake.connectors import (
    PLATFORMS,
    Connector,
    connector_statuses,
    generate_secret,
    remove_connector,
    set_connector_secret,
)
from verifier.intake.connectors import SEAL_PURPOSE as CONNECTOR_PURPOSE
from verifier.intake.connectors import binding as connector_binding
from verifier.intake.csvimport import import_orders
from verifier.models import ROLES, OutboxEmail, StaffUser
from verifier.notify.endpoints import ENDPOINT_SECRET_PURPOSE, secret_binding
from verifier.policy.changes import policy_values
from verifier.policy.consequences import consequences_of
from verifier.policy.preview import preview_policy
from verifier.portal.customer_mail import PortalContext
from verifier.retention.priority import run_in_background_priority
from verifier.retention.purge import purge_due_documents
from verifier.rule_commands import rules_group
from verifier.staff.accounts import reset_password, reset_two_factor
from verifier.staff.totp import SEAL_PURPOSE as TOTP_PURPOSE
from verifier.staff.users import create_user, find_user
from verifier.vault.rotation import SealedColumn, key_usage, rotate_master_key
from verifier.vault.secretbox import EMAIL_BODY_PURPOSE, email_body_binding
from verifier.vault.storage import Keyring
from verifier.worker import run_worker


def _now() -> datetime:
    return datetime.now(UTC)


def portal_context() -> PortalContext:
    return PortalContext.from_config(current_app.config)


def _fail(exc: VerifierError) -> None:
    message = exc.message
    for name, problem in getattr(exc, "fields", {}).items():
        message += f"\n  {name}: {problem}"
    raise click.ClickException(message)


commands = AppGroup("verifier")
commands.add_command(rules_group)


def register_commands(app) -> None:
    """Add every command to `app.cli`, where `flask` and the `verifier` script find them."""
    for command in commands.commands.values():
        app.cli.add_command(command)


@commands.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Create or upgrade the database schema to the newest version."""
    migrate(current_app.config["DATABASE_URL"])
    click.echo("Database is up to date.")


@commands.command("create-user")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def create_user_command(email: str, role: str, password_stdin: bool) -> None:
    """Create a staff user (asks for the password unless --password-stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    session = get_session()
    try:
        user = create_user(session, email, role, password, now=_now())
    except VerifierError as exc:
        _fail(exc)
    session.commit()
    click.echo(f"Created {user.role} {user.email} (id {user.id}).")


@commands.command("create-api-key")
@click.argument("name")
@with_appcontext
def create_api_key_command(name: str) -> None:
    """Create an API key for the shop; the key is shown once and never again."""
    session = get_session()
    try:
        row, key = create_api_key(session, name, _now())
    except VerifierError as exc:
        _fail(exc)
    session.commit()
    click.echo(f"API key {row.id} ({row.name}) created. Store it now; it is not shown again:")
    click.echo(key)


@commands.command("revoke-api-key")
@click.argument("ident")
@with_appcontext
def revoke_api_key_command(ident: str) -> None:
    """Revoke an API key by id, name or prefix; requests with it get 401 at once."""
    session = get_session()
    try:
        row = revoke_api_key(session, ident, _now())
    except VerifierError as exc:
        _fail(exc)
    session.commit()
    click.echo(f"Revoked API key {row.id} ({row.name}, {row.prefix}…).")


@commands.command("list-api-keys")
@with_appcontext
def list_api_keys_command() -> None:
    """List API keys with their prefix, status and last use."""
    rows = list_api_keys(get_session())
    if not rows:
        click.echo("No API keys. Create one with `verifier create-api-key NAME`.")
    for row in rows:
        state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
        click.echo(f"{row.id:>4}  {row.prefix}…  {state:<18} last used {used}  {row.name}")


@commands.command("set-rate")
@click.argument("percent")
@click.option("--reason", required=True, help="Why the rate changes (kept in the history).")
@click.option("--yes", is_flag=True, help="Confirm a lower rate without being asked.")
@with_appcontext
def set_rate_command(percent: str, reason: str, yes: bool) -> None:
    """Set the share of orders sampled at random, in percent (0-100, two decimals).

    A lower rate checks fewer orders: the command says how many and asks to confirm.
    """
    if not reason.strip():
        raise click.ClickException("Give a reason with --reason.")
    try:
        rate_bp = parse_rate(percent)
    except VerifierError as exc:
        _fail(exc)
    session = get_session()
    current = policy_values(current_policy(session))
    if rate_bp < current["rate_bp"]:
        proposed = current | {"rate_bp": rate_bp}
        now = _now()
        preview = preview_policy(session, current=current, proposed=proposed, now=now)
        for consequence in consequences_of(
            session, current=current, proposed=proposed, preview=preview, now=now
        ):
            click.echo(consequence.text)
        if not yes:
            click.confirm("Save the lower rate?", abort=True)
    policy = create_policy_version(
        session, changes={"rate_bp": rate_bp}, reason=reason.strip(), actor_label="cli",
        actor_id=None, now=_now(),
    )  # fmt: skip
    session.commit()
    click.echo(
        f"Sampling rate is now {format_rate(policy.rate_bp)} % (policy version {policy.version})."
    )


@commands.command("import-orders")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_orders_command(csv_file: Path) -> None:
    """Import orders from a CSV file (columns in README); bad lines are reported, not imported."""
    with csv_file.open(newline="", encoding="utf-8-sig") as fh:
        total = max(sum(1 for _ in fh) - 1, 0)
    with (
        csv_file.open(newline="", encoding="utf-8-sig") as fh,
        click.progressbar(length=total, label="Importing", file=sys.stderr) as bar,
    ):
        try:
            report = import_orders(
                get_session(),
                fh,
                rng=random.SystemRandom(),
                now=_now(),
                portal=portal_context(),
                progress=bar.update,
            )
        except UnicodeDecodeError:
            raise click.ClickException(f"{csv_file} is not UTF-8 text.") from None
        except VerifierError as exc:
            _fail(exc)
    for line, problem in report.errors:
        click.echo(f"line {line}: {problem}", err=True)
    click.echo(
        f"Imported {report.imported} orders ({report.flagged} flagged for review), "
        f"{report.duplicates} skipped as duplicates, {report.error_count} with errors."
    )
    if report.errors:
        sys.exit(1)


@commands.command("demo")
@with_appcontext
def demo_command() -> None:
    """Seed the demo shop: orders over the past weeks, staff logins, an API key (idempotent)."""
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("The demo data has well-known passwords: not in production.")
    summary = seed_demo(
        get_session(),
        rng=random.SystemRandom(),
        now=_now(),
        portal=portal_context(),
        uploads_dir=current_app.config["UPLOADS_DIR"],
        keyring=Keyring.from_config(current_app.config),
    )
    click.echo(
        f"Demo data ready ({summary.orders_created} new orders, "
        f"{summary.orders_flagged} of them flagged; {summary.users_created} new staff users)."
    )
    click.echo("Demo staff sign-ins (local use only):")
    for email, role, password in DEMO_USERS:
        click.echo(f"  {role:<9} {email}  {password}")
    click.echo(f"Demo API key: {DEMO_API_KEY}")
    if summary.customer_link:
        click.echo(f"Demo customer upload link: {summary.customer_link}")


@commands.command("worker")
@click.option("--once", is_flag=True, help="Run every job once, print a summary and exit (cron).")
@with_appcontext
def worker_command(once: bool) -> None:
    """Deliver emails and webhooks and run the other timers until SIGTERM (or once)."""
    if not once:
        click.echo("Worker running; stop it with Ctrl+C or SIGTERM.")
    # current_app is a werkzeug LocalProxy, which Flask's stubs type as Flask itself.
    results = run_worker(current_app._get_current_object(), once=once)  # type: ignore[attr-defined]
    if once:
        for result in results:
            click.echo(result.line())
        if not all(result.ok for result in results):
            sys.exit(1)


@commands.command("purge")
@click.option("--dry-run", is_flag=True, help="Print what would go and change nothing.")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1, 10_000),
              help="Documents per transaction.")  # fmt: skip
@with_appcontext
def purge_command(dry_run: bool, batch: int) -> None:
    """Destroy documents past their retention period; sweep orphan blobs and temp files."""
    # current_app is a werkzeug LocalProxy, which Flask's stubs type as Flask itself.
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    session = get_session()
    settings = current_settings(session)
    session.commit()  # the purge works through sessions of its own
    if not dry_run:
        run_in_background_priority()  # the web workers beside it come first
    try:
        report = purge_due_documents(
            lambda: new_session(app), app.config["UPLOADS_DIR"], _now(), settings,
            dry_run=dry_run, batch=batch, actor="cli",
        )  # fmt: skip
    except VerifierError as exc:
        _fail(exc)
    for line in report.lines():
        click.echo(line)
    if report.failures:
        sys.exit(1)


def _staff_by_email(email: str):
    user = find_user(get_session(), email.strip())
    if user is None:
        raise click.ClickException(f"There is no staff user with email {email}.")
    return user


@commands.command("reset-password")
@click.argument("email")
@with_appcontext
def reset_password_command(email: str) -> None:
    """Give a staff user a temporary password (printed once), end their sessions, lift a lock."""
    session = get_session()
    user, password = reset_password(session, _staff_by_email(email).id, actor=None, now=_now())
    session.commit()
    click.echo(f"{user.email} must choose a new password at the next sign-in. Temporary password:")
    click.echo(password)


@commands.command("reset-two-factor")
@click.argument("email")
@with_appcontext
def reset_two_factor_command(email: str) -> None:
    """Remove a staff user's two-factor sign-in (a lost phone) and end their sessions."""
    session = get_session()
    user = reset_two_factor(session, _staff_by_email(email).id, actor=None, now=_now())
    session.commit()
    click.echo(f"Two-factor sign-in is off for {user.email}; they can set it up again.")


connector_group = AppGroup("connector", help="Shopify and WooCommerce order webhooks.")
commands.add_command(connector_group)


@connector_group.command("set-secret")
@click.argument("platform", type=click.Choice(list(PLATFORMS)))
@click.option("--generate", is_flag=True, help="Make a new secret and print it once.")
@click.option("--secret-stdin", is_flag=True, help="Read the secret from standard input.")
@with_appcontext
def connector_set_secret_command(platform: str, generate: bool, secret_stdin: bool) -> None:
    """Set the secret PLATFORM signs its webhooks with (asked for, hidden, unless given)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    session = get_session()
    try:
        if generate:
            secret = generate_secret(platform)
        elif secret_stdin:
            secret = sys.stdin.readline().strip()
        else:
            secret = click.prompt(f"{PLATFORMS[platform]} signing secret", hide_input=True)
        set_connector_secret(
            session,
            Keyring.from_config(app.config),
            platform,
            secret,
            actor_type="cli",
            actor_id="cli",
            actor_label="cli",
            now=_now(),
        )
    except VerifierError as exc:
        _fail(exc)
    session.commit()
    click.echo(f"The {PLATFORMS[platform]} connector's secret is saved (sealed).")
    if generate:
        click.echo("Paste it into the platform's webhook settings now; it is not shown again:")
        click.echo(secret)


@connector_group.command("status")
@with_appcontext
def connector_status_command() -> None:
    """Show each connector: set up or not, and when its last signed webhook came."""
    for row in connector_statuses(get_session()):
        if not row.configured:
            click.echo(f"{row.platform:<12} not set up")
            continue
        last = f"{row.last_delivery_at:%Y-%m-%d %H:%M}" if row.last_delivery_at else "never"
        click.echo(
            f"{row.platform:<12} set {row.updated_at:%Y-%m-%d %H:%M} by {row.updated_by}, "
            f"last signed webhook {last}"
        )


@connector_group.command("remove")
@click.argument("platform", type=click.Choice(list(PLATFORMS)))
@with_appcontext
def connector_remove_command(platform: str) -> None:
    """Forget PLATFORM's secret: its webhooks are refused until one is set again."""
    session = get_session()
    try:
        remove_connector(session, platform, actor_type="cli", actor_id="cli", now=_now())
    except VerifierError as exc:
        _fail(exc)
    session.commit()
    click.echo(f"The {PLATFORMS[platform]} connector is removed.")


audit_group = AppGroup("audit", help="Check and export the hash-chained audit log.")
commands.add_command(audit_group)


def _parse_day(value: str | None, option: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date like 2026-01-31", param_hint=option
        ) from None


@audit_group.command("verify")
@click.option("--anchor", metavar="SEQ:HASH",
              help="A head printed by an earlier run, kept outside the database.")  # fmt: skip
@with_appcontext
def audit_verify_command(anchor: str | None) -> None:
    """Re-hash the whole audit chain; name every edited, inserted or deleted event (exit 1)."""
    anchored = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter("give SEQ:HASH as printed by a run", param_hint="--anchor")
        anchored = (int(seq), digest.lower())
    report = verify_chain(get_session(), anchor=anchored)
    for line in report.lines():
        click.echo(line, err=not report.ok and not line.startswith("Audit chain"))
    if not report.ok:
        sys.exit(1)


@audit_group.command("export")
@click.option("--since", help="First day (UTC, YYYY-MM-DD), inclusive.")
@click.option("--until", help="Last day (UTC, YYYY-MM-DD), inclusive.")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="csv",
              show_default=True)  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of standard output.")  # fmt: skip
@with_appcontext
def audit_export_command(since: str | None, until: str | None, fmt: str,
                         output: Path | None) -> None:  # fmt: skip
    """Write the audit events of a date range as CSV or JSON lines, with their chain hashes."""
    start = _parse_day(since, "--since")
    end = _parse_day(until, "--until")
    end = end + timedelta(days=1) if end else None
    session = get_session()
    record_event(session, "audit.exported", actor_type="cli", actor_id="cli",
                 details={"format": fmt, "since": since or "", "until": until or ""})  # fmt: skip
    session.commit()
    out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    count = -1 if fmt == "csv" else 0
    try:
        for line in export_lines(session, fmt, start, end):
            out.write(line)
            count += 1
    finally:
        if output:
            out.close()
    click.echo(f"Exported {count} events.", err=True)


# Every column holding values sealed under the master key (verifier.vault.secretbox).
SEALED_COLUMNS = [
    SealedColumn(OutboxEmail, "text_body", EMAIL_BODY_PURPOSE,
                 lambda row: email_body_binding(row.case_id, row.kind)),
    SealedColumn(OutboxEmail, "html_body", EMAIL_BODY_PURPOSE,
                 lambda row: email_body_binding(row.case_id, row.kind)),
    SealedColumn(StaffUser, "totp_secret", TOTP_PURPOSE, lambda row: f"staff:{row.id}"),
    SealedColumn(Connector, "secret_sealed", CONNECTOR_PURPOSE,
                 lambda row: connector_binding(row.platform)),
    SealedColumn(WebhookEndpoint, "secret", ENDPOINT_SECRET_PURPOSE,
                 lambda row: secret_binding(row.id, "current")),
    SealedColumn(WebhookEndpoint, "previous_secret", ENDPOINT_SECRET_PURPOSE,
                 lambda row: secret_binding(row.id, "previous")),
]  # fmt: skip


@commands.command("rotate-master-key")
@click.option("--batch", default=200, show_default=True, type=click.IntRange(1, 10_000),
              help="Rows per transaction.")  # fmt: skip
@click.option("--status", is_flag=True, help="Only print how many rows each key protects.")
@with_appcontext
def rotate_master_key_command(batch: int, status: bool) -> None:
    """Re-wrap every data key and re-seal every secret under VERIFIER_MASTER_KEY (resumable)."""
    # current_app is a werkzeug LocalProxy, which Flask's stubs type as Flask itself.
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    keyring = Keyring.from_config(app.config)
    if status:
        usage = key_usage(get_session(), SEALED_COLUMNS)
        for key_id, count in sorted(usage.items()):
            where = "current" if key_id == keyring.current_id else (
                "old" if key_id in keyring.keys else "NOT CONFIGURED")  # fmt: skip
            click.echo(f"{key_id}  {where:<14} {count} row(s)")
        if not usage:
            click.echo("Nothing is sealed under any master key.")
        return
    try:
        report = rotate_master_key(lambda: new_session(app), keyring, SEALED_COLUMNS,
                                   now=_now(), batch=batch)  # fmt: skip
    except VerifierError as exc:
        _fail(exc)
    for line in report.lines():
        click.echo(line)
    if not report.done:
        sys.exit(1)
