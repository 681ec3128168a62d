#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis servers the next command uses answer.
#
#   ensure-services.sh run    DATABASE_URL and REDIS_URL (make run, make bench)
#   ensure-services.sh test   TEST_DATABASE_URL and TEST_REDIS_URL (make test; the default)
#
# Unset, each is the local default: PostgreSQL on 127.0.0.1:5432, Redis on
# 127.0.0.1:6379. The host and port checked are the ones the URL names. When
# that host is this machine and nothing answers, the machine's own server is
# started if it is installed; a server elsewhere is only reported. NATS needs
# nothing: the tests and make run embed their own server.
set -u
mode=${1:-test}
case $mode in
  run) pg_var=DATABASE_URL redis_var=REDIS_URL ;;
  test) pg_var=TEST_DATABASE_URL redis_var=TEST_REDIS_URL ;;
  *) echo "usage: $0 [run|test]" >&2; exit 2 ;;
esac

# with_timeout runs a command for at most 3 seconds where timeout(1) exists.
with_timeout() { if command -v timeout >/dev/null; then timeout 3 "$@"; else "$@"; fi; }

# redact hides the password of a URL: scheme://user:[redacted]@host/...
redact() { sed -E 's#^([a-z+]+://[^:@/]*):[^@/]*@#\1:[redacted]@#' <<<"$1"; }

# parse_url URL DEFAULT_PORT sets host and port from a URL (scheme://[user[:password]@]host[:port][,host2...][/...])
# or, for PostgreSQL, a key=value connection string (host=... port=...). For several hosts, the first.
parse_url() {
  local url=$1 rest authority
  host="" port=$2
  if [[ $url != *://* ]]; then
    host=$(sed -nE 's/(^|.*[[:space:]])host=([^[:space:]]*).*/\2/p' <<<"$url")
    local p; p=$(sed -nE 's/(^|.*[[:space:]])port=([0-9]+).*/\2/p' <<<"$url")
    port=${p:-$port}
  else
    rest=${url#*://}
    authority=${rest%%[/?]*}
    [[ $authority == *@* ]] && authority=${authority##*@}
    authority=${authority%%,*}
    if [[ $authority == \[* ]]; then # [::1]:5432
      host=${authority%%]*}; host=${host#[}
      [[ $authority == *\]:* ]] && port=${authority##*]:}
    else
      host=${authority%%:*}
      [[ $authority == *:* ]] && port=${authority##*:}
    fi
  fi
  host=${host%%,*}
  [ -n "$host" ] || host=localhost
}

is_local() { case $1 in 127.0.0.1|localhost|::1|/*) return 0 ;; *) return 1 ;; esac; }

tcp_up() { with_timeout bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

pg_up() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -t 3 -h "$pg_host" -p "$pg_port" 2>/dev/null
  else
    [[ $pg_host == /* ]] || tcp_up "$pg_host" "$pg_port"
  fi
}

redis_up() {
  if command -v redis-cli >/dev/null && [[ $redis_url != rediss://* ]]; then
    # A server asking for a password answers too: it is up.
    case $(with_timeout redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null) in
      PONG|NOAUTH*) return 0 ;;
      *) return 1 ;;
    esac
  fi
  tcp_up "$redis_host" "$redis_port"
}

# describe VAR URL: which server the check is about, for messages.
describe() {
  if [ -n "$2" ]; then echo "$1=$(redact "$2")"; else echo "$1 is unset: the local default"; fi
}

pg_url=${!pg_var:-}
parse_url "${pg_url:-postgres://postgres@127.0.0.1:5432/postgres}" 5432
pg_host=$host pg_port=$port
pg_what=$(describe "$pg_var" "$pg_url")

redis_url=${!redis_var:-}
parse_url "${redis_url:-redis://127.0.0.1:6379/0}" 6379
redis_host=$host redis_port=$port
redis_what=$(describe "$redis_var" "$redis_url")

if ! pg_up; then
  online="" # ports of this machine's clusters already running
  if is_local "$pg_host" && command -v pg_lsclusters >/dev/null; then
    online=$(pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $3}' | paste -sd, -)
    # Start a stopped cluster only when none runs: a running one on another port would not help.
    if [ -z "$online" ] && [ -d /etc/postgresql ]; then
      echo "PostgreSQL does not answer on $pg_host:$pg_port ($pg_what); starting this machine's cluster"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
      for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    fi
  fi
  if ! pg_up; then
    if [ -n "$online" ]; then
      echo "error: PostgreSQL does not answer on $pg_host:$pg_port ($pg_what), but this machine's PostgreSQL runs on port $online:" \
        "correct $pg_var, or leave it unset for the local default." >&2
    elif is_local "$pg_host"; then
      echo "error: PostgreSQL does not answer on $pg_host:$pg_port ($pg_what). Start it (user postgres, trust auth), e.g.:" \
        "pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start; or set $pg_var to a server that answers." >&2
    else
      echo "error: PostgreSQL does not answer on $pg_host:$pg_port, the server $pg_var names ($(redact "$pg_url")):" \
        "check the URL, and that the server is up and reachable from here. A server elsewhere is never started from here." >&2
    fi
    exit 1
  fi
fi

if ! redis_up; then
  if is_local "$redis_host" && [[ $redis_host != /* ]] && command -v redis-server >/dev/null; then
    echo "Redis does not answer on $redis_host:$redis_port ($redis_what); starting it"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
  if ! redis_up; then
    if is_local "$redis_host"; then
      echo "error: Redis does not answer on $redis_host:$redis_port ($redis_what). Start it, e.g.:" \
        "redis-server --daemonize yes --port $redis_port --save '' --appendonly no; or set $redis_var to a server that answers." >&2
    else
      echo "error: Redis does not answer on $redis_host:$redis_port, the server $redis_var names ($(redact "$redis_url")):" \
        "check the URL, and that the server is up and reachable from here. A server elsewhere is never started from here." >&2
    fi
    exit 1
  fi
fi
echo "PostgreSQL ($pg_host:$pg_port) and Redis ($redis_host:$redis_port) answer."
