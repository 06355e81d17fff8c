"""Fixtures of the portal tests."""

from __future__ import annotations

import pytest

from tests.portal_helpers import create_flagged_order, flag_everything, token_path


@pytest.fixture
def opened(client, auth, db_session):
    """A flagged order whose link this client has opened: the portal session is set."""
    flag_everything(db_session)
    body = create_flagged_order(client, auth)
    assert client.get(token_path(body)).status_code == 303
    return body
