#!/usr/bin/env bash
# The project's one test command: installs what the tests need when it is
# missing, then vets and runs every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || { echo "test.sh: Go is not installed (need Go $(sed -n 's/^go //p' go.mod))" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# Integration tests start real redis-server processes (internal/redistest).
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "== installing redis-server and redis-tools"
  apt_install redis-server redis-tools
fi

# ... and PostgreSQL 15 primaries and standbys (internal/pgtest), which take
# their binaries from PGTEST_BINDIR or Debian's postgresql-15 directory.
pg_bin="${PGTEST_BINDIR:-/usr/lib/postgresql/15/bin}"
if [ ! -x "$pg_bin/initdb" ] || [ ! -x "$pg_bin/postgres" ] || [ ! -x "$pg_bin/pg_basebackup" ]; then
  if [ -n "${PGTEST_BINDIR:-}" ]; then
    echo "test.sh: PGTEST_BINDIR=$PGTEST_BINDIR lacks initdb, postgres or pg_basebackup" >&2; exit 1
  fi
  echo "== installing postgresql-15"
  # The tests start their own servers: no system cluster on port 5432.
  apt_install postgresql-common
  $sudo sed -ri 's/^#?\s*create_main_cluster\b.*$/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
  apt_install postgresql-15
fi

echo "== go vet"
go vet ./...
# The benchmark harness is a module of its own (so go-redis and rueidis
# stay out of tendril's dependencies): build it and run it in short mode so
# it cannot rot.
./bench/ci.sh

echo "== go test -race"
go test -race -count=1 "$@" ./...
