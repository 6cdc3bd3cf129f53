#!/usr/bin/env bash
# Starts the local PostgreSQL server the tests use (127.0.0.1:5432) when it is not running.
# Debian's packaging: one cluster named `main` per installed version; pg_ctlcluster starts it
# without systemd (containers and CI machines have none). Tests that cannot reach a server fail
# with a message naming this script; they never skip.
set -euo pipefail
if [ -n "${JOBWORKER_TEST_POSTGRES:-}" ]; then
  echo "start-postgres: JOBWORKER_TEST_POSTGRES is set; using that server"
  exit 0
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "start-postgres: no PostgreSQL server here; install Debian's postgresql package, or set JOBWORKER_TEST_POSTGRES to a server's URL" >&2
  exit 1
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
echo "start-postgres: starting PostgreSQL ${version}/main"
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 0.5
done
echo "start-postgres: PostgreSQL ${version}/main did not accept connections on 127.0.0.1:5432 within 30 s" >&2
exit 1
