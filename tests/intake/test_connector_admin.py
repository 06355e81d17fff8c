"""Setting a connector's secret: the admin integrations page and `verifier connector ...`."""

from __future__ import annotations

from sqlalchemy import select

from tests.intake.connector_helpers import deliver, sample
from verifier.intake.connectors import Connector
from verifier.models import AuditEvent


def test_the_page_shows_each_connectors_address_and_state(client, admin_user, login):
    login(client, admin_user)
    page = client.get("/admin/integrations/").get_data(as_text=True)
    assert "http://localhost/api/v1/connectors/shopify/orders" in page
    assert "http://localhost/api/v1/connectors/woocommerce/orders" in page
    assert page.count("Not set up.") == 2


def test_a_pasted_secret_is_saved_sealed_and_never_shown(client, admin_user, login, db_session):
    login(client, admin_user)
    secret = "shpss_pasted_from_shopify_0123456789"
    response = client.post("/admin/integrations/secret",
                           data={"platform": "shopify", "secret": secret})  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "secret is saved" in page and secret not in page
    assert "No signed webhook has arrived yet." in page
    row = db_session.scalar(select(Connector))
    assert row.platform == "shopify" and secret not in row.secret_sealed
    assert row.updated_by == admin_user.email
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "connector.secret_set"))
    assert (event.actor_type, event.actor_id) == ("staff", str(admin_user.id))
    # It is the one the webhooks are checked with.
    assert deliver(client, "shopify", sample("shopify_orders_create.json"),
                   secret=secret).status_code == 201  # fmt: skip
    later = client.get("/admin/integrations/").get_data(as_text=True)
    assert "Last signed webhook" in later and secret not in later


def test_an_empty_secret_generates_one_shown_once(client, admin_user, login, db_session):
    login(client, admin_user)
    page = client.post("/admin/integrations/secret", data={"platform": "woocommerce"})
    text = page.get_data(as_text=True)
    assert "shown only now" in text
    generated = text.split('<code class="temp-password">')[1].split("</code>")[0]
    assert len(generated) >= 40
    assert generated not in client.get("/admin/integrations/").get_data(as_text=True)
    from tests.intake.connector_helpers import woo_card_order

    assert deliver(client, "woocommerce", woo_card_order(), secret=generated).status_code == 201


def test_a_short_secret_or_unknown_platform_is_refused(client, admin_user, login, db_session):
    login(client, admin_user)
    short = client.post("/admin/integrations/secret", data={"platform": "shopify", "secret": "x"})
    assert short.status_code == 422
    assert "16-200 characters" in short.get_data(as_text=True)
    made = client.post("/admin/integrations/secret", data={"platform": "shopify", "secret": ""})
    assert made.status_code == 422
    assert "Shopify makes its own signing secret" in made.get_data(as_text=True)
    other = client.post("/admin/integrations/secret", data={"platform": "magento", "secret": "y"})
    assert other.status_code == 422
    assert db_session.scalar(select(Connector)) is None


def test_removing_a_connector_refuses_its_webhooks_again(client, admin_user, login, db_session):
    login(client, admin_user)
    secret = "shpss_pasted_from_shopify_0123456789"
    client.post("/admin/integrations/secret", data={"platform": "shopify", "secret": secret})
    removed = client.post("/admin/integrations/remove", data={"platform": "shopify"})
    assert removed.status_code == 303
    assert deliver(client, "shopify", {"id": 1}, secret=secret).status_code == 409
    again = client.post("/admin/integrations/remove", data={"platform": "shopify"})
    assert again.status_code == 404
    assert db_session.scalar(select(AuditEvent.id).where(AuditEvent.action == "connector.removed"))


def test_cli_sets_generates_shows_and_removes(runner, client, db_session):
    pasted = runner.invoke(args=["connector", "set-secret", "shopify", "--secret-stdin"],
                           input="shpss_from_the_cli_0123456789\n")  # fmt: skip
    assert pasted.exit_code == 0, pasted.output
    assert "shpss_from_the_cli" not in pasted.output
    assert deliver(client, "shopify", sample("shopify_orders_create.json"),
                   secret="shpss_from_the_cli_0123456789").status_code == 201  # fmt: skip
    generated = runner.invoke(args=["connector", "set-secret", "woocommerce", "--generate"])
    assert generated.exit_code == 0
    secret = generated.output.strip().splitlines()[-1]
    assert len(secret) >= 40
    status = runner.invoke(args=["connector", "status"])
    assert "shopify      set" in status.output and "last signed webhook 20" in status.output
    assert "woocommerce  set" in status.output and secret not in status.output
    refused = runner.invoke(args=["connector", "set-secret", "shopify", "--generate"])
    assert refused.exit_code != 0 and "copy it from its webhook settings" in refused.output
    prompt = runner.invoke(args=["connector", "set-secret", "shopify"], input="short\n")
    assert prompt.exit_code != 0 and "16-200 characters" in prompt.output
    assert runner.invoke(args=["connector", "remove", "woocommerce"]).exit_code == 0
    assert "woocommerce  not set up" in runner.invoke(args=["connector", "status"]).output


def test_rotate_master_key_reseals_connector_secrets(app, tmp_path):
    import base64

    from tests.auth_helpers import make_app
    from tests.intake.connector_helpers import SECRETS, configure
    from verifier.db import new_session
    from verifier.intake.connectors import open_secret
    from verifier.vault.storage import Keyring, generate_master_key

    configure(app, "shopify")
    old_key = app.config["MASTER_KEYS"][app.config["MASTER_KEY_ID"]]
    new_key = generate_master_key()
    (tmp_path / "new").mkdir()
    rotated = make_app(tmp_path / "new", app.config["DATABASE_URL"],
                       {"VERIFIER_MASTER_KEY": base64.b64encode(new_key).decode(),
                        "VERIFIER_OLD_MASTER_KEYS": base64.b64encode(old_key).decode(),
                        "VERIFIER_UPLOADS_DIR": app.config["UPLOADS_DIR"]})  # fmt: skip
    result = rotated.test_cli_runner().invoke(args=["rotate-master-key"])
    assert result.exit_code == 0, result.output
    assert "re-sealed 1 secret(s)" in result.output
    current = Keyring.from_config(rotated.config).current_id
    alone = Keyring(current, {current: new_key})
    with new_session(rotated) as session:
        row = session.scalar(select(Connector))
        assert open_secret(alone, row) == SECRETS["shopify"]
    rotated.extensions["verifier.engine"].dispose()
