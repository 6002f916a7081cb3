#!/usr/bin/env bash
# CI smoke run of the benchmark harness: vet, unit tests of the harness, and
# `go run . -short` (a local 3+3 cluster, GET at 1 and 16 goroutines, 200 ms
# per point; fails on any failed operation), and `go run . -pg -short` (the
# PostgreSQL comparison, likewise), and `go run . -scale -short` (the memory
# backend at 6 and 60 nodes; fails when a target on counts is missed: one
# probe per node per tend, no fetch, convergence within two tends). Takes
# about 30 s once built.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
# The harness starts real redis-server processes (internal/redistest).
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "== installing redis-server and redis-tools"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "== bench: go mod tidy -diff"
# tendril's own dependencies reach this module through the replace: when a
# package the harness imports gains one, bench/go.mod and go.sum need it too.
go mod tidy -diff || { echo "bench/go.mod or go.sum is stale: run 'cd bench && go mod tidy'" >&2; exit 1; }
echo "== bench: go vet"
go vet ./...
echo "== bench: go test"
go test -count=1 ./...
echo "== bench: go run . -short"
go run . -short -out "$out/results.md"
echo "== bench: go run . -pg -short"
go run . -pg -short -out "$out/pg.md"
echo "== bench: go run . -scale -short"
go run . -scale -short -out "$out/scale.md"
