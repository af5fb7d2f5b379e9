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

# One call for every queue and exchange: each rabbitmqctl run starts an
# Erlang node, which takes a second; hundreds of leftovers took minutes.
if command -v rabbitmqctl >/dev/null; then
  rabbitmqctl -q eval '
    Match = fun(Name) ->
      re:run(Name, <<"^t[0-9a-f]{12}\\.">>, [{capture, none}]) =:= match
    end,
    Queues = [Q || Q <- rabbit_amqqueue:list(<<"/">>),
                   Match(element(4, amqqueue:get_name(Q)))],
    [rabbit_amqqueue:delete(Q, false, false, <<"cleanup">>) || Q <- Queues],
    Exchanges = [element(2, X) || X <- rabbit_exchange:list(<<"/">>),
                                  Match(element(4, element(2, X)))],
    [rabbit_exchange:delete(X, false, <<"cleanup">>) || X <- Exchanges],
    io:format("removed ~b test queues and ~b test exchanges~n",
              [length(Queues), length(Exchanges)]).' </dev/null 2>/dev/null
fi
if command -v redis-cli >/dev/null; then
  redis-cli --scan --pattern 'muster:t:*' 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1
fi
exit 0
