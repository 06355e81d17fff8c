"""`make loadtest`, bounded: a few seconds of orders, whole customer visits and two racing
reviewers against the layout `make serve` runs, then the database check that nothing was lost
or doubled (bench/loadtest.py). On PostgreSQL in that pass, in a fresh database of its own."""

from __future__ import annotations

import os

import pytest

from bench import loadtest
from bench.common import fresh_postgres

pytestmark = pytest.mark.slow


def test_a_short_mixed_load_loses_and_doubles_nothing(capsys):
    server = os.environ.get("VERIFIER_TEST_DATABASE_URL")
    if server:
        with fresh_postgres(server) as url:
            ok, tally = loadtest.run_one("PostgreSQL", url, seconds=8, clients=4, visit_every=2)
    else:
        ok, tally = loadtest.run_one("SQLite", None, seconds=8, clients=4, visit_every=2)
    assert ok, capsys.readouterr().out
    # The run did each kind of work, so the check had something to check.
    assert tally.accepted and tally.flagged_cases
    assert tally.stored_uploads >= 2 and tally.sent_cases and tally.approved_cases
    assert tally.approved_cases <= tally.sent_cases
