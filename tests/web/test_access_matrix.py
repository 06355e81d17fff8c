"""Who may reach what: every route of the URL map, for every kind of visitor → expected status.

The visitors:
    anonymous  a browser with no session at all
    customer   a browser that opened an upload link: a portal session for its own case, no staff
    shop       the shop's order system: a valid API key in `Authorization`, no cookies
    reviewer   a signed-in reviewer
    admin      a signed-in admin

`ROUTES` is the one table. `test_every_route_has_a_row` fails when a rule of the URL map (other
than `static`) has no row, so a route cannot be added without saying who may reach it.

Refusals are exact (anonymous and customer on staff pages: 302 to /staff/login; reviewer on
admin pages: 403; the API without a key: 401 whatever cookies come along; the portal without a
portal session: 403 "Please open your link again"). The allowed visitor sends an empty or
minimal body with CSRF off (as in the test app): the point is authorisation, so it may meet a
validation error, but it must get past the access check and into the view (never 401/403,
never sent to sign in, never a server error). Path parameters are real ids made by `world`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from tests.conftest import STAFF_PASSWORDS
from tests.notify_helpers import closed_port
from tests.review_helpers import add_document, jpeg_bytes, make_case, make_staff
from verifier.core.policies import current_policy
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    QualityReview,
    SamplingDecision,
    VerificationCase,
    WebhookEvent,
)
from verifier.notify.endpoints import EndpointInput, create_endpoint
from verifier.portal.links import create_link
from verifier.vault.storage import Keyring

VISITORS = ("anonymous", "customer", "shop", "reviewer", "admin")
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Refused:
    """Exactly this status; for a redirect, the path it leads to; for a page, a phrase on it."""

    status: int
    location: str | None = None
    text: str | None = None

    def check(self, response, where: str) -> None:
        assert response.status_code == self.status, f"{where}: got {response.status_code}"
        if self.location is not None:
            target = urlsplit(response.headers.get("Location", "")).path
            assert target == self.location, f"{where}: redirected to {target!r}"
        if self.text is not None:
            assert self.text in response.get_data(as_text=True), f"{where}: {self.text!r} missing"


@dataclass(frozen=True)
class Reached:
    """Past the access check: one of `statuses`, and never a refusal or a trip to sign-in."""

    statuses: frozenset[int]
    location: str | None = None

    def check(self, response, where: str) -> None:
        status = response.status_code
        assert status in self.statuses, f"{where}: got {status}, expected one of {self.statuses}"
        target = urlsplit(response.headers.get("Location", "")).path
        if status in (301, 302, 303, 307, 308):
            if self.location is not None:
                assert target == self.location, f"{where}: redirected to {target!r}"
            else:
                assert not target.startswith("/staff/login"), f"{where}: sent to sign in"


def reached(*statuses: int, location: str | None = None) -> Reached:
    return Reached(frozenset(statuses), location)


TO_SIGN_IN = Refused(302, "/staff/login")
FORBIDDEN = Refused(403)
NO_API_KEY = Refused(401)
NO_PORTAL_SESSION = Refused(403, text="Please open your link again")
UNKNOWN_LINK = Refused(404, text="This link is not valid")

PAGE = reached(200)
# What a view may answer to an empty or minimal form once it has let the visitor in.
FORM_POST = reached(200, 302, 303, 400, 404, 409, 422)


def everyone(expect) -> dict:
    return dict.fromkeys(VISITORS, expect)


def staff_only(ok=PAGE) -> dict:
    return {"anonymous": TO_SIGN_IN, "customer": TO_SIGN_IN, "shop": TO_SIGN_IN,
            "reviewer": ok, "admin": ok}  # fmt: skip


def admin_only(ok=PAGE) -> dict:
    return {"anonymous": TO_SIGN_IN, "customer": TO_SIGN_IN, "shop": TO_SIGN_IN,
            "reviewer": FORBIDDEN, "admin": ok}  # fmt: skip


def api_key_only(ok) -> dict:
    return everyone(NO_API_KEY) | {"shop": ok}


COVERED = reached(303, 400, 422)  # nothing to cover yet: a clear refusal


def portal_only(ok=PAGE) -> dict:
    return everyone(NO_PORTAL_SESSION) | {"customer": ok}


@dataclass(frozen=True)
class Row:
    endpoint: str
    method: str
    path: str  # `{name}` placeholders are filled from the `world` fixture
    expect: dict = field(hash=False)
    json: dict | None = field(default=None, hash=False)  # API bodies
    form: dict | None = field(default=None, hash=False)  # form fields; most forms go empty

    @property
    def id(self) -> str:
        fields = "&".join(f"{k}={v}" for k, v in (self.form or {}).items())
        return f"{self.method} {self.path}" + (f" ({fields})" if fields else "")


# Signed-in staff opening the sign-in page are sent on to where they work.
SIGNED_IN_ELSEWHERE = reached(302, location="/review/")
# Not a refusal: the sign-in flow's own pages send everyone back to its start.
BACK_TO_SIGN_IN = reached(302, location="/staff/login")

ROUTES = [
    # Public pages.
    Row("home.index", "GET", "/", everyone(PAGE)),
    Row("home.healthz", "GET", "/healthz", everyone(PAGE)),
    Row("home.readyz", "GET", "/readyz", everyone(PAGE)),
    Row("api.openapi", "GET", "/api/v1/openapi.json", everyone(PAGE)),
    # Staff sign-in: open to all; a signed-in user is sent on, sign-out works for anyone.
    Row("staff.login", "GET", "/staff/login",
        everyone(PAGE) | {"reviewer": SIGNED_IN_ELSEWHERE, "admin": SIGNED_IN_ELSEWHERE}),
    Row("staff.login", "POST", "/staff/login",
        everyone(reached(422)) | {"reviewer": SIGNED_IN_ELSEWHERE, "admin": SIGNED_IN_ELSEWHERE}),
    # No password step pending: back to the sign-in page, for everyone.
    Row("staff.login_code", "GET", "/staff/login/code", everyone(BACK_TO_SIGN_IN)),
    Row("staff.login_code", "POST", "/staff/login/code", everyone(BACK_TO_SIGN_IN)),
    Row("staff.logout", "POST", "/staff/logout", everyone(BACK_TO_SIGN_IN)),
    # Staff account pages.
    Row("staff.password", "GET", "/staff/password", staff_only()),
    Row("staff.password", "POST", "/staff/password", staff_only(reached(200, 422))),
    Row("staff.two_factor", "GET", "/staff/two-factor", staff_only()),
    Row("staff.two_factor", "POST", "/staff/two-factor", staff_only(reached(200, 400, 422))),
    Row("staff.sessions", "GET", "/staff/sessions", staff_only()),
    Row("staff.passkey_options", "POST", "/staff/passkeys/options", staff_only()),
    Row("staff.passkey_add", "POST", "/staff/passkeys", staff_only(reached(400)), json={}),
    Row("staff.passkey_remove", "POST", "/staff/passkeys/999999/remove", staff_only(FORM_POST)),
    # No password step pending: a JSON answer that sends the browser back to sign in.
    Row("staff.login_passkey_options", "POST", "/staff/login/passkey/options",
        everyone(reached(409)), json={}),
    Row("staff.login_passkey", "POST", "/staff/login/passkey", everyone(reached(409)), json={}),
    # Session ids are not staff ids: an id nobody holds is 404 (or a stale form's redirect).
    Row("staff.end_session", "POST", "/staff/sessions/999999/end", staff_only(FORM_POST)),
    Row("staff.end_other_sessions", "POST", "/staff/sessions/end-others", staff_only(FORM_POST)),
    # Shop API: a key or nothing; staff cookies and portal sessions never count.
    Row("api.create_order", "POST", "/api/v1/orders", api_key_only(reached(422)), json={}),
    Row("api.read_order", "GET", "/api/v1/orders/{review_order}", api_key_only(PAGE)),
    Row("api.hold_order_view", "POST", "/api/v1/orders/{review_order}/hold",
        api_key_only(reached(200, 422)), json={"reason": "Chargeback 4821"}),
    Row("api.release_order_hold_view", "DELETE", "/api/v1/orders/{review_order}/hold",
        api_key_only(reached(200, 409, 422)), json={"reason": "Chargeback withdrawn"}),
    # Platform connectors: the body's signature is the key, so without a connector's secret
    # (none in this world) everyone gets 409 "not configured"; cookies and API keys never count.
    Row("connectors.shopify_orders", "POST", "/api/v1/connectors/shopify/orders",
        everyone(Refused(409)), json={}),
    Row("connectors.woocommerce_orders", "POST", "/api/v1/connectors/woocommerce/orders",
        everyone(Refused(409)), json={}),
    Row("api.record_outcome_view", "POST", "/api/v1/orders/{review_order}/outcome",
        api_key_only(reached(200, 201)), json={"outcome": "delivered_ok"}),
    # Customer portal: the link is the key; every other page needs the portal session it gives.
    Row("portal.open_link", "GET", "/u/{token}", everyone(reached(303, location="/portal/"))),
    Row("portal.open_link", "GET", "/u/{unknown_token}", everyone(UNKNOWN_LINK)),
    Row("portal.index", "GET", "/portal/", portal_only()),
    Row("portal.upload", "POST", "/portal/documents/card_back", portal_only(reached(303, 422))),
    Row("portal.preview", "GET", "/portal/documents/{customer_doc}/preview", portal_only()),
    Row("portal.cover", "POST", "/portal/documents/card_back/cover", portal_only(COVERED)),
    Row("portal.status", "GET", "/portal/status", portal_only()),
    Row("portal.submit", "POST", "/portal/submit", portal_only(reached(303))),
    Row("portal.decline", "GET", "/portal/decline", portal_only()),
    Row("portal.decline", "POST", "/portal/decline", portal_only(reached(200, 303))),
    Row("portal.handoff", "POST", "/portal/handoff", portal_only()),
    # The shop's logo is public (it is on the invalid-link page too); none is set here.
    Row("home.logo", "GET", "/brand/logo/0123456789abcdef.png", everyone(reached(404))),
    # Review queue: reviewers and admins.
    Row("review.queue", "GET", "/review/", staff_only()),
    Row("review.next_case", "POST", "/review/next", staff_only(reached(303))),
    Row("review_filters.save", "POST", "/review/filters/", staff_only(reached(303))),
    Row("review_filters.delete", "POST", "/review/filters/delete", staff_only(FORM_POST)),
    Row("review.bulk", "POST", "/review/bulk", staff_only(FORM_POST)),
    # Reassigning is for admins even though the bulk form is on the reviewers' queue.
    Row("review.bulk", "POST", "/review/bulk",
        staff_only(reached(303)) | {"reviewer": FORBIDDEN},
        form={"action": "reassign", "case_id": "{case}", "reviewer": "{target}"}),
    Row("review.case", "GET", "/review/cases/{case}", staff_only()),
    Row("review.claim", "POST", "/review/cases/{case}/claim", staff_only(reached(303))),
    Row("review.release", "POST", "/review/cases/{case}/release", staff_only(reached(303))),
    Row("review.lease", "POST", "/review/cases/{case}/lease", staff_only(reached(200, 409))),
    Row("review.checklist", "POST", "/review/cases/{case}/checklist", staff_only(FORM_POST)),
    Row("review.approve", "POST", "/review/cases/{case}/approve", staff_only(FORM_POST)),
    Row("review.reject", "POST", "/review/cases/{case}/reject", staff_only(FORM_POST)),
    Row("review.confirm", "POST", "/review/cases/{case}/confirm-rejection", staff_only(FORM_POST)),
    Row("review.overturn", "POST", "/review/cases/{case}/overturn-rejection",
        staff_only(FORM_POST)),
    Row("review.resubmission", "POST", "/review/cases/{case}/resubmission",
        staff_only(FORM_POST)),
    Row("review.document", "GET", "/review/documents/{doc}", staff_only()),
    Row("review.erase", "POST", "/review/documents/{doc}/erase", staff_only(FORM_POST)),
    Row("quality.next_check", "GET", "/review/quality/", staff_only()),
    Row("quality.record", "POST", "/review/quality/{quality_review}", staff_only(FORM_POST)),
    Row("quality.disagreements", "GET", "/review/quality/disagreements", admin_only()),
    Row("quality.resolve", "POST", "/review/quality/disagreements/{quality_review}/resolve",
        admin_only(FORM_POST)),
    # Admin pages.
    Row("admin.staff", "GET", "/admin/staff", admin_only()),
    Row("admin.invite", "POST", "/admin/staff", admin_only(FORM_POST)),
    Row("admin.reset_staff_password", "POST", "/admin/staff/{target}/reset-password",
        admin_only(FORM_POST)),
    Row("admin.staff_role", "POST", "/admin/staff/{target}/role", admin_only(FORM_POST)),
    Row("admin.two_factor_rule", "POST", "/admin/staff/two-factor-rule", admin_only(FORM_POST)),
    Row("admin.staff_action", "POST", "/admin/staff/{target}/deactivate", admin_only(FORM_POST)),
    Row("admin.staff_action", "POST", "/admin/staff/{target}/reactivate", admin_only(FORM_POST)),
    Row("admin.staff_action", "POST", "/admin/staff/{target}/reset-two-factor",
        admin_only(FORM_POST)),
    Row("admin.audit", "GET", "/admin/audit", admin_only()),
    Row("admin.audit_export", "GET", "/admin/audit/export", admin_only()),
    Row("settings.edit", "GET", "/admin/settings/", admin_only()),
    Row("settings.submit", "POST", "/admin/settings/", admin_only(FORM_POST)),
    Row("settings.history", "GET", "/admin/settings/history", admin_only()),
    Row("settings.brand", "GET", "/admin/settings/brand", admin_only()),
    Row("settings.save_brand_view", "POST", "/admin/settings/brand", admin_only(FORM_POST)),
    Row("rules.index", "GET", "/admin/settings/rules/", admin_only()),
    Row("rules.new", "GET", "/admin/settings/rules/new", admin_only()),
    Row("rules.create", "POST", "/admin/settings/rules/new", admin_only(FORM_POST)),
    Row("rules.edit", "GET", "/admin/settings/rules/1", admin_only(reached(200, 404))),
    Row("rules.update", "POST", "/admin/settings/rules/1", admin_only(FORM_POST)),
    Row("rules.delete", "POST", "/admin/settings/rules/1/delete", admin_only(FORM_POST)),
    Row("rules.move", "POST", "/admin/settings/rules/1/move", admin_only(FORM_POST)),
    Row("rules.rates", "POST", "/admin/settings/rules/rates", admin_only(FORM_POST)),
    Row("dashboard.index", "GET", "/admin/dashboard/", admin_only()),
    Row("dashboard.daily_export", "GET", "/admin/dashboard/daily.csv", admin_only()),
    Row("webhooks.index", "GET", "/admin/webhooks/", admin_only()),
    Row("webhooks.detail", "GET", "/admin/webhooks/{webhook_event}", admin_only()),
    Row("webhooks.new_endpoint", "GET", "/admin/webhooks/endpoints/new", admin_only()),
    Row("webhooks.new_endpoint", "POST", "/admin/webhooks/endpoints/new", admin_only(FORM_POST)),
    Row("webhooks.edit_endpoint", "GET", "/admin/webhooks/endpoints/{endpoint}", admin_only()),
    Row("webhooks.edit_endpoint", "POST", "/admin/webhooks/endpoints/{endpoint}",
        admin_only(FORM_POST)),
    Row("webhooks.enable_endpoint", "POST", "/admin/webhooks/endpoints/{endpoint}/enable",
        admin_only(FORM_POST)),
    Row("webhooks.disable_endpoint", "POST", "/admin/webhooks/endpoints/{endpoint}/disable",
        admin_only(FORM_POST)),
    Row("webhooks.rotate_secret", "POST", "/admin/webhooks/endpoints/{endpoint}/rotate",
        admin_only(FORM_POST)),
    Row("webhooks.delete_endpoint", "GET", "/admin/webhooks/endpoints/{endpoint}/delete",
        admin_only()),
    Row("webhooks.delete_endpoint", "POST", "/admin/webhooks/endpoints/{endpoint}/delete",
        admin_only(FORM_POST)),
    Row("webhooks.ping_endpoint", "POST", "/admin/webhooks/endpoints/{endpoint}/ping",
        admin_only(FORM_POST)),
    Row("webhooks.redeliver", "POST", "/admin/webhooks/{webhook_event}/redeliver",
        admin_only(FORM_POST)),
    Row("integrations.index", "GET", "/admin/integrations/", admin_only()),
    Row("integrations.secret", "POST", "/admin/integrations/secret", admin_only(FORM_POST)),
    Row("integrations.remove", "POST", "/admin/integrations/remove", admin_only(FORM_POST)),
    Row("retention.index", "GET", "/admin/retention/", admin_only()),
    Row("retention.set_hold", "POST", "/admin/retention/holds", admin_only(FORM_POST)),
    Row("retention.release_hold", "POST", "/admin/retention/holds/{decided_case}/release",
        admin_only(FORM_POST)),
    Row("retention.erase", "POST", "/admin/retention/erasure", admin_only(FORM_POST)),
    Row("retention.find_case", "GET", "/admin/retention/cases", admin_only(reached(200, 303))),
    Row("retention.receipt", "GET", "/admin/retention/cases/{decided_case}/receipt", admin_only()),
    Row("retention.evidence", "POST", "/admin/retention/cases/{decided_case}/evidence",
        admin_only(FORM_POST)),
]  # fmt: skip

# Values of the right shape for matching the table against the URL map without a database.
SAMPLE_IDS = {
    "review_order": "WEB-1", "token": "t" * 43, "unknown_token": "u" * 43, "customer_doc": "d" * 32,
    "case": 1, "doc": "d" * 32, "quality_review": 1, "target": 1, "webhook_event": "e" * 32,
    "decided_case": 1, "endpoint": 1,
}  # fmt: skip


def _url_rules(app) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - IGNORED_METHODS
    }


def _match(app, row: Row):
    """The rule a row's path and method reach (a typo in the table fails here)."""
    adapter = app.url_map.bind("localhost")
    try:
        rule, _args = adapter.match(row.path.format(**SAMPLE_IDS), row.method, return_rule=True)
    except (NotFound, MethodNotAllowed) as exc:
        raise AssertionError(f"{row.id} matches no route ({exc.code})") from None
    return rule


def test_every_route_has_a_row(app):
    covered = set()
    for row in ROUTES:
        rule = _match(app, row)
        assert rule.endpoint == row.endpoint, f"{row.id} reaches {rule.endpoint}"
        assert set(row.expect) == set(VISITORS), f"{row.id} must say what each visitor gets"
        covered.add((rule.rule, row.method))
    missing = sorted(_url_rules(app) - covered)
    assert not missing, f"routes without a row in the access table: {missing}"


def test_the_table_keeps_its_promises():
    """The table itself: no reviewer on an admin page, no API route open without a key, no
    document for anyone without a session."""
    for row in ROUTES:
        if row.path.startswith("/admin/"):
            assert row.expect["reviewer"] == FORBIDDEN, row.id
        if row.endpoint.startswith("connectors."):
            # Signed by the platform, not keyed: nobody gets past without the signature.
            assert all(isinstance(row.expect[v], Refused) for v in VISITORS), row.id
        elif row.path.startswith("/api/") and row.endpoint != "api.openapi":
            assert all(row.expect[v] == NO_API_KEY for v in VISITORS if v != "shop"), row.id
        if "documents/" in row.path and row.method == "GET":
            assert isinstance(row.expect["anonymous"], Refused), row.id


# --- the world every row runs in ---------------------------------------------------------------


@dataclass
class World:
    ids: dict
    clients: dict
    documents: dict  # document id -> "review" | "decided" | "customer" (the case it belongs to)


def _sampled_at_random(session, case: VerificationCase, policy) -> None:
    session.add(SamplingDecision(order_id=case.order_id, policy_id=policy.id, flagged=True,
                                 reason="random", draw=7, rate_bp=policy.rate_bp))  # fmt: skip


@pytest.fixture
def world(app, db_session, reviewer, admin_user, api_key) -> World:
    """Real rows for every path parameter, and one signed-in client per visitor."""
    now = datetime.now(UTC)
    target = make_staff(db_session, "target@example.test")
    case = make_case(db_session, "WEB-1", created_at=now - timedelta(hours=2))
    front = add_document(db_session, app, case, "card_front", data=jpeg_bytes((10, 120, 200)))
    back = add_document(db_session, app, case, "card_back", data=jpeg_bytes((200, 120, 10)))
    decided = make_case(db_session, "WEB-2", status=APPROVED, created_at=now - timedelta(days=2))
    decided.decided_at, decided.decided_by_id = now - timedelta(days=1), target.id
    decided_doc = add_document(db_session, app, decided, "card_front")
    quality = QualityReview(case_id=decided.id, first_reviewer_id=target.id, created_at=now)
    waiting = make_case(db_session, "WEB-3", status=AWAITING_DOCUMENTS, email="cleo@example.com",
                        created_at=now - timedelta(hours=1))  # fmt: skip
    token = create_link(db_session, waiting, expires_at=now + timedelta(days=7), now=now)
    own_doc = add_document(db_session, app, waiting, "card_front")
    policy = current_policy(db_session)
    for sampled in (case, decided, waiting):
        _sampled_at_random(db_session, sampled, policy)
    event = WebhookEvent(
        event_type="case.status_changed",
        payload={"id": "x", "type": "case.status_changed", "data": {"status": "approved"}},
    )
    db_session.add_all([quality, event])
    # Pings from the admin's row go to a closed loopback port: refused at once, never sent out.
    endpoint, _secret = create_endpoint(
        db_session, Keyring.from_config(app.config),
        EndpointInput(url=f"http://127.0.0.1:{closed_port()}/hooks"), production=False,
        actor_id=None, now=now,
    )  # fmt: skip
    db_session.commit()

    clients = {name: app.test_client() for name in VISITORS}
    clients["shop"].environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
    opened = clients["customer"].get(f"/u/{token}")
    assert opened.status_code == 303, opened.status_code
    for name, user in (("reviewer", reviewer), ("admin", admin_user)):
        signed_in = clients[name].post(
            "/staff/login", data={"email": user.email, "password": STAFF_PASSWORDS[user.email]}
        )
        assert signed_in.status_code == 302
        assert not signed_in.headers["Location"].startswith("/staff/login")

    ids = {
        "review_order": case.order.external_id, "token": token, "unknown_token": "x" * 43,
        "customer_doc": own_doc.id, "case": case.id, "doc": front.id,
        "quality_review": quality.id, "target": target.id, "webhook_event": event.event_id,
        "decided_case": decided.id, "endpoint": endpoint.id,
    }  # fmt: skip
    documents = {front.id: "review", back.id: "review", decided_doc.id: "decided",
                 own_doc.id: "customer"}  # fmt: skip
    return World(ids, clients, documents)


def _send(client, row: Row, ids: dict):
    form = {k: v.format(**ids) for k, v in row.form.items()} if row.form else None
    return client.open(row.path.format(**ids), method=row.method, json=row.json, data=form)


@pytest.mark.parametrize("row", ROUTES, ids=lambda row: row.id)
def test_access(world, row):
    for visitor in VISITORS:
        response = _send(world.clients[visitor], row, world.ids)
        row.expect[visitor].check(response, f"{visitor} {row.method} {row.path}")
        assert response.status_code < 500


def _row_for(endpoint: str, method: str = "GET") -> Row:
    return next(r for r in ROUTES if r.endpoint == endpoint and r.method == method)


def test_reviewer_never_reaches_an_admin_route(app, world):
    """Every /admin/ rule of the URL map, with real ids and with ids that do not exist: 403
    before any lookup, so a reviewer cannot even learn what exists."""
    rules = {rule for rule, _ in _url_rules(app) if rule.startswith("/admin")}
    assert rules, "no admin routes?"
    missing = {k: "999999" if isinstance(v, int) else "0" * 32 for k, v in world.ids.items()}
    reviewer = world.clients["reviewer"]
    tried = set()
    for row in ROUTES:
        rule = _match(app, row).rule
        if not rule.startswith("/admin"):
            continue
        tried.add(rule)
        for ids in (world.ids, missing):
            response = _send(reviewer, row, ids)
            FORBIDDEN.check(response, f"reviewer {row.method} {row.path.format(**ids)}")
    assert tried == rules
    # The reviewer is still signed in: the refusals were not a sign-out in disguise.
    assert reviewer.get("/review/").status_code == 200


def test_no_document_without_staff_or_its_own_portal_session(world):
    """No visitor without a staff session gets a document's bytes; the customer's portal session
    shows its own documents only."""
    document, preview = _row_for("review.document"), _row_for("portal.preview")
    for doc_id, owner in world.documents.items():
        ids = world.ids | {"doc": doc_id, "customer_doc": doc_id}
        for visitor in ("anonymous", "customer", "shop"):
            response = _send(world.clients[visitor], document, ids)
            TO_SIGN_IN.check(response, f"{visitor} GET /review/documents/{owner}")
            assert not response.content_type.startswith("image/")
        for visitor in ("anonymous", "shop", "reviewer", "admin"):
            response = _send(world.clients[visitor], preview, ids)
            NO_PORTAL_SESSION.check(response, f"{visitor} preview of {owner} document")
        response = _send(world.clients["customer"], preview, ids)
        if owner == "customer":
            assert response.status_code == 200 and response.content_type == "image/jpeg"
        else:
            assert response.status_code == 404, f"customer sees the {owner} case's document"
            assert not response.content_type.startswith("image/")
        for visitor in ("reviewer", "admin"):
            response = _send(world.clients[visitor], document, ids)
            assert response.status_code == 200 and response.content_type == "image/jpeg"


def test_no_session_never_gets_documents_or_evidence(app, world):
    """Whatever a visitor with no session asks for, no image or PDF comes back (a fresh client
    per request: opening the upload link would give one a portal session)."""
    for row in ROUTES:
        for visitor in ("anonymous", "shop"):
            client = app.test_client()
            client.environ_base.update(world.clients[visitor].environ_base)
            response = _send(client, row, world.ids)
            kind = response.content_type
            assert not kind.startswith(("image/", "application/pdf")), f"{visitor} {row.id}"


def test_admin_routes_wait_for_two_factor_when_it_is_required(app, world):
    """Production requires two-factor for admins: an admin without it reaches no /admin/ route,
    only the enrolment page."""
    app.config["REQUIRE_ADMIN_2FA"] = True
    admin = world.clients["admin"]
    for row in ROUTES:
        if row.path.startswith("/admin/"):
            response = _send(admin, row, world.ids)
            Refused(302, "/staff/two-factor").check(response, f"admin without 2FA {row.id}")
    assert admin.get("/staff/two-factor").status_code == 200


def test_admin_powers_on_the_queue_wait_for_two_factor_too(app, world):
    """Reassigning cases is an admin power: without the required two-factor it is refused."""
    app.config["REQUIRE_ADMIN_2FA"] = True
    row = next(r for r in ROUTES if "reassign" in str(r.form))
    response = _send(world.clients["admin"], row, world.ids)
    assert response.status_code == 403
