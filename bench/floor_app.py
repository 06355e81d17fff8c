"""The floor the intake benchmark stands on: a bare Flask endpoint that parses the same body.

Served by the same gunicorn settings as Verifier (`bench.intake`), it answers what a JSON API
costs before any of Verifier's own work: no database, no validation, no sampling.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/v1/orders")
def create_order():
    payload = request.get_json()
    response = jsonify({"external_id": payload["external_id"], "status": "received"})
    response.status_code = 201
    return response


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
