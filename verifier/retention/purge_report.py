"""What a purge run did, or would do: counts and lines for the command line, never contents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class DueDocument:
    """A document the purge would destroy now; ``due_at`` is None when due at once."""

    document_id: str
    case_id: int
    kind: str
    status: str
    reason: str  # decided | expired | replaced | erased | unfinished
    due_at: datetime | None


@dataclass
class PurgeReport:
    """What one purge run did (or, with ``dry_run``, would do): counts, never contents."""

    dry_run: bool = False
    run_id: int | None = None
    documents_purged: int = 0
    keys_shredded: int = 0
    blobs_deleted: int = 0
    unfinished_completed: int = 0
    held_cases: int = 0
    orphans_removed: int = 0
    temp_files_removed: int = 0
    orders_anonymised: int = 0
    failures: int = 0
    documents: list[DueDocument] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "documents_purged": self.documents_purged,
            "keys_shredded": self.keys_shredded,
            "blobs_deleted": self.blobs_deleted,
            "unfinished_completed": self.unfinished_completed,
            "held_cases": self.held_cases,
            "orphans_removed": self.orphans_removed,
            "temp_files_removed": self.temp_files_removed,
            "orders_anonymised": self.orders_anonymised,
            "failures": self.failures,
        }

    def lines(self) -> list[str]:
        """Human-readable lines for the CLI."""
        if self.dry_run:
            end = ":" if self.documents else "."
            out = [f"Dry run: nothing was changed. {len(self.documents)} document(s) would go{end}"]
            for doc in self.documents:
                due = f"due {doc.due_at:%Y-%m-%d %H:%M} UTC" if doc.due_at else "due at once"
                out.append(
                    f"  document {doc.document_id} ({doc.kind}, {doc.status}) of case "
                    f"{doc.case_id}: {doc.reason}, {due}"
                )
            out.append(
                f"{self.orphans_removed} orphan blob(s), {self.temp_files_removed} temp file(s) "
                f"would be removed; {self.orders_anonymised} order(s) would be anonymised; "
                f"{self.held_cases} case(s) kept under legal hold."
            )
            return out
        return [
            f"Purge run {self.run_id}: {self.documents_purged} document(s) purged "
            f"({self.blobs_deleted} blob file(s) deleted, {self.unfinished_completed} "
            f"unfinished purge(s) completed).",
            f"{self.orphans_removed} orphan blob(s) and {self.temp_files_removed} temp file(s) "
            f"removed; {self.orders_anonymised} order(s) anonymised; {self.held_cases} case(s) "
            f"kept under legal hold; {self.failures} failure(s).",
        ]
