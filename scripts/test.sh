#!/usr/bin/env bash
# The project's one test command: installs what the tests need when it is
# missing, then vets and runs every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || { echo "test.sh: Go is not installed (need Go $(sed -n 's/^go //p' go.mod))" >&2; exit 1; }

# Integration tests start real redis-server processes (internal/redistest).
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "== installing redis-server and redis-tools"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
fi

echo "== go vet"
go vet ./...
# The benchmark harness is a module of its own (so go-redis and rueidis
# stay out of tendril's dependencies): build it and run it in short mode so
# it cannot rot.
./bench/ci.sh

echo "== go test -race"
go test -race -count=1 "$@" ./...
