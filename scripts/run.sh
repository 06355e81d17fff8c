#!/usr/bin/env bash
# `make run`: the worker (emails, webhooks, link expiry, reminders, purge) in the background
# and the web server in the foreground; Ctrl+C stops both.
set -euo pipefail
BIN=${BIN:-.venv/bin}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
export VERIFIER_BASE_URL=${VERIFIER_BASE_URL:-http://$HOST:$PORT}
"$BIN/verifier" worker &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null || true' EXIT INT TERM
echo "Verifier is serving on http://$HOST:$PORT/ (worker pid $worker). Ctrl+C stops both."
"$BIN/verifier" run --host "$HOST" --port "$PORT" --no-reload --with-threads
