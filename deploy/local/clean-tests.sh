#!/usr/bin/env bash
# Removes what interrupted test runs left behind: muster_t_* databases,
# queues and exchanges under a test prefix (t<12 hex>.), and the rate
# limiter's test keys in Redis (muster:t:*).
set -uo pipefail

psql -h 127.0.0.1 -U postgres -Atq -d postgres \
  -c "SELECT datname FROM pg_database WHERE datname LIKE 'muster\_t\_%'" 2>/dev/null |
while read -r db; do
  psql -h 127.0.0.1 -U postgres -q -d postgres -c "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
done

if command -v rabbitmqctl >/dev/null; then
  rabbitmqctl -q list_queues name 2>/dev/null | grep -E '^t[0-9a-f]{12}\.' |
    while read -r queue; do rabbitmqctl -q delete_queue "$queue" </dev/null >/dev/null 2>&1; done
  rabbitmqctl -q list_exchanges name 2>/dev/null | grep -E '^t[0-9a-f]{12}\.' |
    while read -r exchange; do
      rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$exchange\">>), false, <<\"cleanup\">>)." </dev/null >/dev/null 2>&1
    done
fi
if command -v redis-cli >/dev/null; then
  redis-cli --scan --pattern 'muster:t:*' 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1
fi
exit 0
