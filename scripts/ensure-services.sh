#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on their local defaults (or on
# TEST_DATABASE_URL's / TEST_REDIS_URL's host), starting the machine's own
# servers when they are installed but stopped. NATS needs nothing: tests and
# `make run` embed their own server.
set -u
pg_host=127.0.0.1; pg_port=5432; redis_host=127.0.0.1; redis_port=6379

pg_up() { pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null || (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null; }
redis_up() { [ "$(redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null)" = "PONG" ]; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is not answering on $pg_host:$pg_port; starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "error: PostgreSQL is required on $pg_host:$pg_port (user postgres, trust auth). Start it, e.g.: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2; exit 1; }
fi

if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "Redis is not answering on $redis_host:$redis_port; starting it"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
  redis_up || { echo "error: Redis is required on $redis_host:$redis_port. Start it, e.g.: redis-server --daemonize yes --port 6379 --save '' --appendonly no" >&2; exit 1; }
fi
echo "PostgreSQL and Redis answer."
