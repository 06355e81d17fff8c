"""The case page's layout as data: documents grouped with the checks that concern them.

Pure: takes the case's documents and saved answers, returns what the template walks.
A check about a kind of document the case has none of (the shop did not ask for it) starts
as "not applicable"; the reviewer still sees it and can change it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from verifier.core.checklist import CHECKS, NOT_APPLICABLE
from verifier.models import Document


@dataclass(frozen=True)
class Group:
    key: str  # card | photo_id | proof_of_address: also what the order facts beside it are
    title: str
    kinds: tuple[str, ...]
    checks: tuple[str, ...]
    documents: tuple[Document, ...]


GROUPS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("card", "Card", ("card_front", "card_back"), ("card_name_matches", "card_last4_matches")),
    ("photo_id", "Photo ID", ("photo_id",), ("id_name_matches", "id_not_expired")),
    ("proof_of_address", "Proof of address", ("proof_of_address",),
     ("address_matches_and_recent",)),
)  # fmt: skip
assert [c for *_, checks in GROUPS for c in checks] == list(CHECKS)  # every check, in order


def document_groups(documents: Iterable[Document]) -> list[Group]:
    """The three groups in checklist order, each with its documents in page order."""
    docs = list(documents)
    return [
        Group(key, title, kinds, checks, tuple(d for d in docs if d.kind in kinds))
        for key, title, kinds, checks in GROUPS
    ]


def starting_answers(saved: Mapping[str, str] | None, groups: Iterable[Group]) -> dict[str, str]:
    """The saved answers, with "not applicable" for checks whose group has no document."""
    answers = dict(saved or {})
    for group in groups:
        if not any(d.status == "active" for d in group.documents):
            for name in group.checks:
                answers.setdefault(name, NOT_APPLICABLE)
    return answers
