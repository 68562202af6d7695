#!/usr/bin/env bash
# The whole test suite on a fresh Debian/Ubuntu machine: installs redis-server (and openssl)
# if missing, then runs the format check, clippy with -D warnings, and every test.
# The tests start their own redis-server processes on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server for the tests' own servers (redis-cli, of redis-tools, makes their clusters);
# openssl to make the TLS test's certificates.
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ -n "$missing" ]; then
  echo "installing from the distribution's packages:$missing"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi
redis-server --version

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The in-memory store alone (`default-features = false`): no redis, no deadpool.
cargo clippy -p cache-runtime --no-default-features --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
{
  cargo test --workspace 2>&1
  cargo test -p cache-runtime --no-default-features --lib 2>&1
} | tee "$log"
# One closing line for the whole run, summed over every test binary and doc-test run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
