#!/usr/bin/env bash
# Start the local Redis (127.0.0.1:6379, nothing kept on disk) when it does not answer; the
# rate-limit tests share counters through it. Quiet when it is already up.
set -euo pipefail
up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
up && exit 0
echo "Starting Redis on 127.0.0.1:6379"
mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
  --dir /var/lib/redis --logfile /var/log/redis/ci.log
for _ in $(seq 30); do up && exit 0; sleep 1; done
echo "Redis did not start; see /var/log/redis/ci.log" >&2
exit 1
