"""CSV order import: same validation as the API, one savepoint per line, a line-by-line report."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.errors import ConflictError, ValidationError
from verifier.intake.orders import submit_order
from verifier.intake.payload import ADDRESS_ALIASES, ADDRESS_FIELDS, parse_order
from verifier.portal.customer_mail import PortalContext

ADDRESS_NAMES = [*ADDRESS_FIELDS, *ADDRESS_ALIASES]
ADDRESS_COLUMNS = [f"{p}_{f}" for p in ("billing", "shipping") for f in ADDRESS_NAMES]
COLUMNS = [
    "external_id", "placed_at", "amount", "currency", "customer_name", "customer_email",
    "customer_phone", *ADDRESS_COLUMNS, "card_brand", "card_last4", "card_holder_name",
    "ip_address", "device_id", "locale", "timezone",
]  # fmt: skip
REQUIRED_COLUMNS = {
    "external_id", "placed_at", "amount", "currency", "customer_name", "customer_email",
    "billing_line1", "billing_city", "billing_country", "shipping_line1", "shipping_city",
    "shipping_country", "card_last4", "card_holder_name",
}  # fmt: skip
BATCH_SIZE = 200


@dataclass
class ImportReport:
    imported: int = 0
    flagged: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return len(self.errors)


def row_to_payload(row: dict[str, str]) -> dict[str, Any]:
    """Turn a flat CSV row into the API's nested payload (empty cells are left out)."""

    def cell(name: str) -> str | None:
        value = (row.get(name) or "").strip()
        return value or None

    def group(prefix: str, names: Iterable[str]) -> dict[str, str | None]:
        return {n: cell(f"{prefix}_{n}") for n in names if cell(f"{prefix}_{n}") is not None}

    payload: dict[str, Any] = {
        k: cell(k) for k in ("external_id", "placed_at", "amount", "currency")
    }
    payload["customer"] = {"name": cell("customer_name"), "email": cell("customer_email"),
                           "phone": cell("customer_phone")}  # fmt: skip
    payload["billing_address"] = group("billing", ADDRESS_NAMES)
    payload["shipping_address"] = group("shipping", ADDRESS_NAMES)
    payload["ip_address"] = cell("ip_address")
    payload["device_id"] = cell("device_id")
    payload["locale"] = cell("locale")
    payload["timezone"] = cell("timezone")
    payload["card"] = {
        "brand": cell("card_brand"),
        "last4": cell("card_last4"),
        "holder_name": cell("card_holder_name"),
    }
    return payload


def column_for(path: str) -> str:
    """Name the CSV column behind an API field path: customer.email -> customer_email."""
    head, _, tail = path.partition(".")
    prefix = {"billing_address": "billing", "shipping_address": "shipping"}.get(head, head)
    return f"{prefix}_{tail}" if tail else head


def check_header(fieldnames: Sequence[str] | None) -> None:
    """Raise ValidationError naming missing or unknown columns before any line is read."""
    names = [n.strip() for n in fieldnames or []]
    # An alias stands for its field's column: billing_zip for billing_postcode.
    present = set(names) | {
        f"{prefix}_{field}"
        for prefix in ("billing", "shipping")
        for alias, field in ADDRESS_ALIASES.items()
        if f"{prefix}_{alias}" in names
    }
    missing = sorted(REQUIRED_COLUMNS - present)
    unknown = sorted(set(names) - set(COLUMNS))
    problems = {}
    if missing:
        problems["missing columns"] = ", ".join(missing)
    if unknown:
        problems["unknown columns"] = ", ".join(unknown)
    if problems:
        raise ValidationError("The CSV header is not usable.", problems)


def import_orders(
    session: Session,
    lines: Iterable[str],
    *,
    rng: random.Random,
    now: datetime,
    portal: PortalContext,
    progress: Callable[[int], None] = lambda _n: None,
) -> ImportReport:
    """Import every valid line; a bad line is reported and leaves nothing behind. Commits."""
    reader = csv.DictReader(lines)
    check_header(reader.fieldnames)
    assert reader.fieldnames is not None  # no header is missing every column: refused above
    reader.fieldnames = [n.strip() for n in reader.fieldnames]
    report = ImportReport()
    pending = 0
    for row in reader:
        line = reader.line_num
        progress(1)
        if None in row:
            report.errors.append((line, "has more cells than the header"))
            continue
        try:
            data = parse_order(row_to_payload(row), now)
            with session.begin_nested():
                result = submit_order(session, data, source="csv", rng=rng, now=now, portal=portal)
        except ValidationError as exc:
            detail = "; ".join(f"{column_for(k)}: {v}" for k, v in exc.fields.items())
            report.errors.append((line, detail or exc.message))
            continue
        except ConflictError as exc:
            report.errors.append((line, exc.message))
            continue
        if result.created:
            report.imported += 1
            assert result.order.decision is not None  # a new order is stored with its decision
            report.flagged += int(result.order.decision.flagged)
        else:
            report.duplicates += 1
        pending += 1
        if pending >= BATCH_SIZE:
            session.commit()
            pending = 0
    session.commit()
    return report
