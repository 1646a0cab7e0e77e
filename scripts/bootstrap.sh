#!/usr/bin/env bash
# Makes a fresh clone runnable, then runs the given command with TEMPORAL_CLI_PATH exported.
# Idempotent and quiet once everything is in place.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# 1. Dependencies: install when missing or when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: installing npm dependencies" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# 2. The Temporal CLI (it carries the dev server). Order: TEMPORAL_CLI_PATH, `temporal` on PATH,
#    the project-local copy, the per-user cache (survives fresh clones), and last a `go install`.
version="v1.5.1"
local_dir="$root/.tools/temporal-$version"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/node-lifecycle/temporal-$version"
cli=""
if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then
  [ -x "$TEMPORAL_CLI_PATH" ] || { echo "bootstrap: TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH is not an executable" >&2; exit 1; }
  cli="$TEMPORAL_CLI_PATH"
elif command -v temporal >/dev/null 2>&1; then
  cli="$(command -v temporal)"
elif [ -x "$local_dir/temporal" ]; then
  cli="$local_dir/temporal"
else
  if [ ! -x "$cache_dir/temporal" ]; then
    command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
    command -v go >/dev/null 2>&1 || { echo "bootstrap: no Temporal CLI found and no Go toolchain to build it; install Go or set TEMPORAL_CLI_PATH" >&2; exit 1; }
    echo "bootstrap: building the Temporal CLI $version with go install (first run only, a few minutes)" >&2
    mkdir -p "$cache_dir"
    GOBIN="$cache_dir" go install "github.com/temporalio/cli/cmd/temporal@$version" >&2
  fi
  mkdir -p "$local_dir"
  # A hard link costs no space; fall back to a copy across file systems.
  ln -f "$cache_dir/temporal" "$local_dir/temporal" 2>/dev/null || cp "$cache_dir/temporal" "$local_dir/temporal"
  cli="$local_dir/temporal"
fi
export TEMPORAL_CLI_PATH="$cli"

# 3. The cluster engine (a Temporal server on PostgreSQL), only when asked for: ENGINE=cluster
#    (`npm run cluster`) or BOOTSTRAP_CLUSTER=1 (`npm test`, whose cluster tests need it).
if [ "${ENGINE:-}" = cluster ] || [ "${BOOTSTRAP_CLUSTER:-}" = 1 ]; then
  # shellcheck source=scripts/cluster.sh
  source "$root/scripts/cluster.sh"
fi

[ "$#" -gt 0 ] || exit 0
bin="$1"; shift
if [ -x "$root/node_modules/.bin/$bin" ]; then bin="$root/node_modules/.bin/$bin"; fi
exec "$bin" "$@"
