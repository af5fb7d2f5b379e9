#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis, RabbitMQ and Postfix's smtp-sink are installed
# and running on this Debian machine, and creates Muster's databases.
# Installs what is missing when run as root; otherwise says what to install.
set -euo pipefail

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local port=$1 name=$2 tries=${3:-60}
  for _ in $(seq "$tries"); do port_open "$port" && return 0; sleep 1; done
  die "$name did not start listening on 127.0.0.1:$port; see its log"
}

missing=()
command -v psql >/dev/null && command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
[ -x /usr/sbin/smtp-sink ] || missing+=(postfix)
# Tests make throwaway certificates and sign webhooks with it.
command -v openssl >/dev/null || missing+=(openssl)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    die "missing: ${missing[*]}. Install them with:
  sudo sh -c 'echo \"postfix postfix/main_mailer_type select No configuration\" | debconf-set-selections'
  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
  fi
  say "installing ${missing[*]}"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! port_open 5432; then
  say "starting PostgreSQL"
  cluster=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
  wait_port 5432 PostgreSQL 30
fi

pg() { psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -Atq "$@"; }
if ! pg -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "PostgreSQL refuses postgres@127.0.0.1 without a password:
  add 'host all postgres 127.0.0.1/32 trust' at the top of pg_hba.conf and reload it"
  hba=$(su postgres -c "psql -Atc 'SHOW hba_file'")
  say "allowing local connections as postgres without a password in $hba (development only)"
  sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
  su postgres -c "psql -qc 'SELECT pg_reload_conf()'" >/dev/null
  sleep 1
  pg -d postgres -c 'SELECT 1' >/dev/null || die "still cannot connect to PostgreSQL as postgres"
fi

if ! port_open 6379; then
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/muster-redis.log
  wait_port 6379 Redis 20
fi

if ! port_open 5672; then
  say "starting RabbitMQ (this takes a few seconds)"
  rabbitmq-server -detached
  wait_port 5672 RabbitMQ 90
fi

for db in muster_contacts muster_messaging muster_gateway; do
  if [ -z "$(pg -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    pg -d postgres -c "CREATE DATABASE $db" && say "created database $db"
  fi
done
say "PostgreSQL, Redis, RabbitMQ and smtp-sink are ready"
