#!/usr/bin/env bash
# Stops what `make run` started (the services and the SMTP sink).
set -uo pipefail
cd "$(dirname "$0")/../.."
pids=.muster/pids
[ -f "$pids" ] || { [ "${1:-}" = --quiet ] || echo "nothing to stop"; exit 0; }
while read -r pid name; do
  if kill "$pid" 2>/dev/null; then
    [ "${1:-}" = --quiet ] || echo "stopped $name"
  fi
done < "$pids"
sleep 1
while read -r pid _; do kill -9 "$pid" 2>/dev/null; done < "$pids"
rm -f "$pids"
