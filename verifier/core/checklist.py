"""The vocabulary of a decision: the reviewer's checklist, its answers and the rejection reasons."""

from __future__ import annotations

# The cross-check a reviewer answers for every case, in the order the page shows it.
CHECKS: dict[str, str] = {
    "card_name_matches": "The name on the card matches the cardholder on the order",
    "card_last4_matches": "The card's last four digits match the order",
    "id_name_matches": "The name on the photo ID matches the customer",
    "id_not_expired": "The photo ID has not expired",
    "address_matches_and_recent": "The proof of address matches the billing address and is recent",
}
YES, NO, NOT_APPLICABLE = "yes", "no", "not_applicable"
ANSWERS = (YES, NO, NOT_APPLICABLE)

REJECTION_REASONS: dict[str, str] = {
    "documents_do_not_match": "The documents do not match the order",
    "suspected_altered_document": "A document looks altered",
    "unreadable_after_resubmission": "Still unreadable after a new upload",
    "other": "Other (explain in the note)",
}
OTHER = "other"
