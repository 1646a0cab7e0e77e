#!/usr/bin/env bash
# The cluster engine's binaries: the Temporal server, its SQL schema tool and the web UI server, built
# once per user with `go install` into the cache (outside the clone) and exported as
# TEMPORAL_SERVER_PATH, TEMPORAL_SQL_TOOL_PATH and TEMPORAL_UI_SERVER_PATH. Sourced by bootstrap.sh when
# ENGINE=cluster (or BOOTSTRAP_CLUSTER=1, for the tests). Quiet when everything is cached.
# The versions are the ones the CLI v1.5.1 embeds; src/cluster/versions.ts and docker-compose.yml
# must name the same (test/compose.test.ts checks).
TEMPORAL_SERVER_VERSION="v1.29.1"
TEMPORAL_UI_SERVER_VERSION="v2.42.1"

cluster_cache="${XDG_CACHE_HOME:-$HOME/.cache}/node-lifecycle"

# $1 env variable, $2 cache dir name, $3 binary name as go install makes it, $4 module path@version.
# Each binary gets a GOBIN of its own: go install names the server and the UI server both `server`.
cluster_binary() {
  local var="$1" dir="$cluster_cache/$2" name="$3" module="$4"
  if [ -n "${!var:-}" ]; then
    [ -x "${!var}" ] || { echo "bootstrap: $var=${!var} is not an executable" >&2; return 1; }
    return 0
  fi
  if [ ! -x "$dir/$name" ]; then
    command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
    command -v go >/dev/null 2>&1 || { echo "bootstrap: the cluster engine needs $module; install Go or set $var" >&2; return 1; }
    echo "bootstrap: building $module with go install (first run only, a few minutes)" >&2
    mkdir -p "$dir"
    # Into a temporary GOBIN first: an interrupted build never leaves a half-written binary in the cache.
    local tmp; tmp="$(mktemp -d "$dir/.build.XXXXXX")"
    GOBIN="$tmp" GOTOOLCHAIN=local go install "$module" >&2 || { rm -rf "$tmp"; return 1; }
    mv -f "$tmp/$name" "$dir/$name"
    rm -rf "$tmp"
  fi
  export "$var=$dir/$name"
}

cluster_binary TEMPORAL_SERVER_PATH "temporal-server-$TEMPORAL_SERVER_VERSION" server \
  "go.temporal.io/server/cmd/server@$TEMPORAL_SERVER_VERSION"
cluster_binary TEMPORAL_SQL_TOOL_PATH "temporal-sql-tool-$TEMPORAL_SERVER_VERSION" sql \
  "go.temporal.io/server/cmd/tools/sql@$TEMPORAL_SERVER_VERSION"
cluster_binary TEMPORAL_UI_SERVER_PATH "temporal-ui-server-$TEMPORAL_UI_SERVER_VERSION" server \
  "github.com/temporalio/ui-server/v2/cmd/server@$TEMPORAL_UI_SERVER_VERSION"
