#!/usr/bin/env bash
# `make serve`: the production layout on one host. nginx (deploy/nginx.conf.in) listens on
# HOST:PORT and buffers each request in memory; gunicorn serves the app behind it on a unix
# socket in the instance directory that no client can reach. Ctrl+C stops both.
set -euo pipefail
BIN=${BIN:-.venv/bin}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
WORKERS=${WORKERS:-4}
THREADS=${THREADS:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
INSTANCE=$(realpath -m "${VERIFIER_INSTANCE_DIR:-$ROOT/instance}")
FRONT="$INSTANCE/front"
SOCKET="$FRONT/gunicorn.sock"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx is not installed: run make system-deps" >&2; exit 1; }
mkdir -p "$FRONT"/{client_body,proxy,fastcgi,uwsgi,scgi}
chmod 0700 "$FRONT"
# Connections are recycled (see worker_shutdown_timeout in deploy/nginx.conf.in): none lives
# longer than RECYCLE + GRACE seconds, and a request always has GRACE seconds to finish.
recycle=${VERIFIER_FRONT_RECYCLE_SECONDS:-60}
grace=${VERIFIER_FRONT_GRACE_SECONDS:-120}
max_file=${VERIFIER_UPLOAD_MAX_FILE_BYTES:-15728640}
max_body=$(( max_file + 1048576 ))  # the app's own cap is the file plus form overhead
sed -e "s|@PREFIX@|$FRONT|g" -e "s|@SOCKET@|$SOCKET|g" -e "s|@LISTEN@|$HOST:$PORT|g" \
    -e "s|@MAX_BODY@|$max_body|g" -e "s|@RECYCLE@|$recycle|g" -e "s|@GRACE@|$grace|g" -e "s|@CONN_PER_ADDRESS@|${VERIFIER_FRONT_CONN_PER_ADDRESS:-64}|g" \
    "$ROOT/deploy/nginx.conf.in" > "$FRONT/nginx.conf"
# Run it as an ordinary user. Started as root, nginx would hand its workers to `nobody`, who
# cannot enter a private (0700) instance directory; keep them as the caller instead.
if [ "$(id -u)" -eq 0 ]; then sed -i 's/^user .*/user root root;/' "$FRONT/nginx.conf"
else sed -i '/^user /d' "$FRONT/nginx.conf"; fi
"$NGINX" -t -q -p "$FRONT" -c "$FRONT/nginx.conf"
rm -f "$SOCKET"
# Exactly one proxy, which replaces X-Forwarded-For: the client address the app sees is real.
export VERIFIER_TRUSTED_PROXIES=1
export VERIFIER_BASE_URL=${VERIFIER_BASE_URL:-http://$HOST:$PORT}
"$BIN/gunicorn" --config "$ROOT/gunicorn.conf.py" --workers "$WORKERS" --threads "$THREADS" \
    --bind "unix:$SOCKET" ${GUNICORN_ARGS:-} wsgi:app &
app=$!
"$NGINX" -p "$FRONT" -c "$FRONT/nginx.conf" &
front=$!
# The reload that recycles connections: a new worker takes over at once, the old one drains.
( while sleep "$recycle"; do kill -HUP "$front" 2>/dev/null || exit 0; done ) &
recycler=$!
stop() {
    pkill -TERM -P "$recycler" 2>/dev/null || true  # its sleep
    kill -TERM "$recycler" "$front" "$app" 2>/dev/null || true
    wait "$recycler" "$front" "$app" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 0' INT TERM
echo "Verifier is serving on http://$HOST:$PORT/ (nginx pid $front in front of gunicorn pid $app). Ctrl+C stops both."
# Either one ending ends the other.
wait -n "$front" "$app" || true
