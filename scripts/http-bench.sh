#!/usr/bin/env bash
# The HTTP benchmark (benches/http.rs) on a fresh Debian/Ubuntu machine: installs wrk and
# redis-server if missing, then runs `cargo bench --bench http`. The bench starts its own
# redis-server on a free loopback port and its own axum server; it never touches port 6379.
# Settings pass through the environment: HTTP_BENCH_ROUNDS (default 5), HTTP_BENCH_SECS
# (seconds per run, default 5), WRK, REDIS_SERVER, CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
command -v "${WRK:-wrk}" >/dev/null 2>&1 || missing="$missing wrk"
command -v "${REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || missing="$missing redis-server"
if [ -n "$missing" ]; then
  echo "installing from the distribution's packages:$missing"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

exec cargo bench --bench http "$@"
