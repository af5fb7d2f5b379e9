#!/usr/bin/env bash
# The main job on one machine: starts the servers, builds, starts contacts,
# messaging, the gateway and a local SMTP sink, imports the four supporter
# files, sends a campaign to consenting members, and leaves it all running.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
state=$root/.muster
bin=${CARGO_TARGET_DIR:-$root/target}/debug

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

command -v cargo >/dev/null || {
  echo "error: Rust is not installed; install it with rustup (https://rustup.rs), then run make run again" >&2
  exit 1
}

say "checking PostgreSQL, Redis, RabbitMQ and smtp-sink"
deploy/local/services.sh

# A second run would stop the first one's services and replace its
# organization's API key (only a hash of it is kept).
if [ -f "$state/pids" ]; then
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "error: Muster is already running ($name, pid $pid, from an earlier make run);" \
        "use it as it is (its key is in .muster/api-key), or make stop first" >&2
      exit 1
    fi
  done < "$state/pids"
fi

say "building (the first build takes several minutes)"
cargo build --bins

deploy/local/stop.sh --quiet
for port in 2525 7151 7152 8080; do
  if port_open "$port"; then
    echo "error: port $port is in use by another program (ss -ltnp 'sport = :$port' names it);" \
      "stop it, then run make run again" >&2
    exit 1
  fi
done
rm -rf "$state/mail"
mkdir -p "$state/logs" "$state/mail"
chmod 777 "$state/mail"
: > "$state/pids"
# A run that fails stops what it started, so that it can simply be run again.
stop_on_failure() {
  local status=$?
  if [ "$status" != 0 ]; then
    echo "make run failed: stopping what it started (logs stay in .muster/logs/)" >&2
    deploy/local/stop.sh --quiet
  fi
}
trap stop_on_failure EXIT

start() {
  local name=$1; shift
  "$@" >"$state/logs/$name.log" 2>&1 &
  echo "$! $name" >> "$state/pids"
}
wait_for() {
  local port=$1 name=$2
  for _ in $(seq 120); do
    port_open "$port" && return 0
    if ! kill -0 "$(awk -v n="$name" '$2 == n { print $1 }' "$state/pids")" 2>/dev/null; then
      echo "error: $name stopped while starting; its log ends with:" >&2
      tail -n 20 "$state/logs/$name.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "error: $name is not listening on port $port; see $state/logs/$name.log" >&2
  exit 1
}

say "starting the services (logs in .muster/logs/)"
sink_user=()
[ "$(id -u)" = 0 ] && sink_user=(-u nobody)
start smtp-sink /usr/sbin/smtp-sink "${sink_user[@]}" -d "$state/mail/%Y%m%d%H/%M." 127.0.0.1:2525 256
export MUSTER_TELEMETRY__FORMAT=json
start contacts "$bin/muster-contacts" all
start messaging "$bin/muster-messaging" all
start gateway "$bin/muster-gateway" serve
wait_for 2525 smtp-sink
wait_for 7151 contacts
wait_for 7152 messaging
wait_for 8080 gateway

say "creating the organization and its API key"
created=$(MUSTER_TELEMETRY__FILTER=warn "$bin/muster-gateway" create-tenant --name "Démo Muster")
MUSTER_API_KEY=$(awk '$1 == "api_key" { print $2 }' <<<"$created")
export MUSTER_API_KEY
echo "$MUSTER_API_KEY" > "$state/api-key"
# Public pages (the subscription form) name the organization by its id.
awk '$1 == "tenant_id" { print $2 }' <<<"$created" > "$state/organization-id"
echo "API key saved in .muster/api-key, the organization's id in .muster/organization-id"

muster() { "$bin/muster" "$@"; }
for entry in adherents-export-excel-fr.csv:fr_excel \
             nationbuilder-people-export.csv:nationbuilder \
             mailchimp-audience-subscribed.csv:mailchimp_subscribed \
             mailchimp-audience-unsubscribed.csv:mailchimp_unsubscribed; do
  say "importing ${entry%%:*}"
  muster import "data/contacts/${entry%%:*}" --preset "${entry##*:}"
done

say "the segment: members (tag adhérent) who agreed to e-mail"
muster segment count --tag-any adhérent --consent granted --require-email

say "creating and sending the campaign"
template=$(muster template create --name "Rentrée militante" \
  --subject "{{ first_name }}, rendez-vous samedi à {{ city }}" \
  --text-file deploy/local/demo/lettre.txt --html-file deploy/local/demo/lettre.html)
template=$(grep -oE '[0-9a-f-]{36}' <<<"$template" | head -n 1)
campaign=$(muster campaign create --name "Rentrée militante" --template "$template" \
  --from-email equipe@example.org --from-name "Muster démo" --tag-any adhérent)
campaign=$(grep -oE '[0-9a-f-]{36}' <<<"$campaign" | head -n 1)
muster campaign launch "$campaign" --follow

received=$(find "$state/mail" -type f | wc -l)
example=$(find "$state/mail" -type f -print -quit)
say "done"
cat <<TXT
Messages received by the SMTP sink: $received, one file each in .muster/mail/
  for example: ${example#$root/}
Everything is still running:
  gateway   http://127.0.0.1:8080   (export MUSTER_API_KEY=\$(cat .muster/api-key))
  contacts  127.0.0.1:7151 (gRPC)   messaging 127.0.0.1:7152 (gRPC)
  try:      ${bin#$root/}/muster people list --limit 5
            ${bin#$root/}/muster campaign status $campaign
Stop it all with: make stop
TXT
