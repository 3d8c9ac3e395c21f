#!/usr/bin/env bash
# Checks that each service the tests need answers, starts any that does not with this machine's
# own start command, and fails if one still does not answer.
set -uo pipefail

answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

ensure() { # name port start-command...
  local name=$1 port=$2
  shift 2
  if answers 127.0.0.1 "$port"; then
    echo "== $name answers on $port"
    return 0
  fi
  echo "== $name does not answer on $port: starting it"
  "$@" || true
  for _ in $(seq 1 60); do
    if answers 127.0.0.1 "$port"; then
      echo "== $name started"
      return 0
    fi
    sleep 1
  done
  echo "!! $name still does not answer on $port" >&2
  return 1
}

failed=0
ensure Redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
  --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || failed=1
ensure NATS 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server \
  -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || failed=1
ensure RabbitMQ 5672 rabbitmq-server -detached || failed=1
# The PostgreSQL store's tests (packages/relay/src/store/PostgresStore.test.ts, test/postgres.test.ts).
ensure PostgreSQL 5432 bash -c 'pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start' ||
  failed=1
exit $failed
