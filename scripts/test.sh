#!/usr/bin/env bash
# Cohort's single test command (README and .ci/run call exactly this).
#
# On a fresh Debian 12 machine, as root, it:
#   1. installs what the tests need: Debian's postgresql, chromium and postfix (its
#      smtp-sink; no mail system configured) (skipped when dpkg already has them), the Python client (tests/clients/requirements.txt) and
#      the Node clients + playwright-core (npm ci in tests/clients);
#   2. gates: `cargo fmt --all --check` and
#      `cargo clippy --workspace --all-targets --locked -- -D warnings`; either failing
#      fails the script before any test runs;
#   3. starts a throwaway PostgreSQL cluster (trust auth, 127.0.0.1, fsync off) in a
#      fresh temp dir, stopped and deleted on exit;
#   4. runs `cargo test --workspace --locked --no-fail-fast` with the environment below, then prints,
#      as its last lines, `tests: N passed, N failed, N skipped` and the skipped tests
#      with their reasons (or "no test skipped"), and exits with the test command's
#      status. Under CI=true a skip of anything but what needs WooCommerce (which no
#      registry serves: COHORT_WOOCOMMERCE_DIR not set) fails the run.
# It is idempotent: re-runs skip installed packages and replace a cluster left behind on
# the same port by an aborted earlier run.
#
# Skips: a test that cannot run a real part calls `cohort_testkit::skip(what, reason)`,
# which appends `<package>/<test binary>/<test>\t<what>: <reason>` to the file named by
# COHORT_TEST_SKIP_LOG (created here). A test's own `eprintln!` is hidden by cargo for a
# passing test; a skip is not.
#
# One file's tests: the crates cohort and cohort-store have one integration test binary,
# `it` (tests/it/main.rs, one module per file), so a file is a module filter, e.g.
#   COHORT_TEST_SKIP_LINT=1 COHORT_TEST_CMD='cargo test -p cohort --test it wordpress_plugin::' bash scripts/test.sh
#   cargo test -p cohort-store --test it projection::   (SQLite only, without this script)
#
# Environment it exports for the tests:
#   COHORT_TEST_POSTGRES_URL      postgres://postgres@127.0.0.1:$PORT/postgres
#   COHORT_TEST_REQUIRE_POSTGRES=1
#   COHORT_TEST_REQUIRE_CLIENTS=1
#   COHORT_TEST_REQUIRE_WORDPRESS=1  (the plugin's end-to-end test in a real WordPress:
#                                     Debian's wordpress, mariadb-server, php-mysql; each test
#                                     starts its own MariaDB and `php -S`, see tests/wordpress/site.sh)
#   COHORT_TEST_CLIENTS_DIR       absolute path of tests/clients
#   COHORT_TEST_SKIP_LOG          the file skips are recorded in (see above)
#   CHROMIUM=/usr/bin/chromium
#
# Knobs (environment):
#   COHORT_TEST_PG_PORT   port of the throwaway cluster (default 55432)
#   COHORT_TEST_CMD       command run instead of `cargo test --workspace --locked`, through
#                         `bash -c` (e.g. COHORT_TEST_CMD='psql "$COHORT_TEST_POSTGRES_URL" -c "select 1"'
#                         to check the setup without building anything)
#   COHORT_TEST_SKIP_INSTALL=1  skip apt/pip/npm (everything must already be there)
#   COHORT_TEST_SKIP_LINT=1     skip the fmt and clippy gates (a developer's knob, default off;
#                               refused under CI=true)
#   CI=true                     skips other than those needing WooCommerce fail the run
set -euo pipefail

START_SECONDS=$SECONDS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS_DIR="$ROOT/tests/clients"
PG_PORT="${COHORT_TEST_PG_PORT:-55432}"
PG_DIR_PREFIX="/tmp/cohort-test-pg."  # /tmp: the postgres user must reach it
TEST_CMD="${COHORT_TEST_CMD:-cargo test --workspace --locked --no-fail-fast}"

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# A CI run builds once from nothing: incremental caches would only double the disk it needs.
if [[ "${CI:-}" == true ]]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

IS_ROOT=0
[[ $EUID -eq 0 ]] && IS_ROOT=1

# Run a PostgreSQL server command as the `postgres` user (root may not run postgres).
as_pg() {
  if [[ $IS_ROOT -eq 1 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# ---------------------------------------------------------------- 1. installs
install_deps() {
  local missing=()
  local pkg
  for pkg in postgresql chromium postfix; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [[ -x /usr/bin/chromium ]] || { [[ " ${missing[*]} " == *" chromium "* ]] || missing+=(chromium); }
  if ((${#missing[@]})); then
    [[ $IS_ROOT -eq 1 ]] || die "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)"
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # postfix only for its smtp-sink and smtp-source (the mail tests' real SMTP
    # server and the send benchmark's ceiling): no mail system is configured.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # Lock::Timeout: wait for another apt/dpkg (e.g. a machine-setup install) instead of failing.
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${missing[@]}" >/dev/null
  else
    say "Debian packages present: postgresql chromium postfix"
  fi

  say "pip install -r tests/clients/requirements.txt"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    -r "$CLIENTS_DIR/requirements.txt"

  say "npm ci (tests/clients)"
  (cd "$CLIENTS_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

if [[ "${COHORT_TEST_SKIP_INSTALL:-0}" == 1 ]]; then
  say "COHORT_TEST_SKIP_INSTALL=1: skipping apt/pip/npm"
else
  install_deps
fi

# ---------------------------------------------------------------- 2. gates
lint() {
  say "cargo fmt --all --check"
  (cd "$ROOT" && cargo fmt --all --check) ||
    die "cargo fmt --all --check failed: the files above are not formatted (run \`cargo fmt --all\`)"
  say "cargo clippy --workspace --all-targets --locked -- -D warnings"
  (cd "$ROOT" && cargo clippy --workspace --all-targets --locked -- -D warnings) ||
    die "cargo clippy --workspace --all-targets --locked -- -D warnings failed: fix the warnings above"
}
if [[ "${COHORT_TEST_SKIP_LINT:-0}" == 1 ]]; then
  [[ "${CI:-}" != true ]] || die "COHORT_TEST_SKIP_LINT=1 is a developer's knob: CI runs the fmt and clippy gates"
  say "COHORT_TEST_SKIP_LINT=1: skipping cargo fmt --check and cargo clippy"
else
  lint
fi

# ---------------------------------------------------------------- WordPress plugin (begin)
# PHP lint + PHPUnit for plugins/wordpress/cohort-connect (pure outbox/retry logic,
# no WordPress needed), and the packages of the real WordPress that the cargo test
# crates/cohort/tests/it/wordpress_plugin.rs runs the plugin in. Installs Debian's
# php-cli php-xml php-mbstring phpunit wordpress mariadb-server php-mysql php-curl
# when missing (unless COHORT_TEST_SKIP_INSTALL=1); any failure fails this script.
php_plugin_checks() {
  local plugin="$ROOT/plugins/wordpress/cohort-connect"
  local missing=() pkg f
  if [[ "${COHORT_TEST_SKIP_INSTALL:-0}" != 1 ]]; then
    for pkg in php-cli php-xml php-mbstring phpunit wordpress mariadb-server php-mysql php-curl; do
      dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
      [[ $IS_ROOT -eq 1 ]] || die "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)"
      say "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get -o DPkg::Lock::Timeout=900 update -qq
      apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${missing[@]}" >/dev/null
    fi
  fi
  command -v php >/dev/null 2>&1 || die "php not found (apt-get install php-cli)"
  command -v phpunit >/dev/null 2>&1 || die "phpunit not found (apt-get install phpunit)"
  say "php -l on the WordPress plugin"
  while IFS= read -r -d '' f; do
    php -l "$f" >/dev/null || die "php -l failed: $f"
  done < <(find "$ROOT/plugins/wordpress" -name '*.php' -print0)
  say "phpunit (WordPress plugin)"
  phpunit -c "$plugin/tests/phpunit.xml.dist" || die "WordPress plugin PHPUnit suite failed"
}
php_plugin_checks
# ---------------------------------------------------------------- WordPress plugin (end)

# ---------------------------------------------------------------- 3. PostgreSQL
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
[[ -n "$PG_BIN" && -x "$PG_BIN/initdb" ]] || die "no initdb under /usr/lib/postgresql/*/bin (is postgresql installed?)"

pg_answers() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

# Stop the server of a data dir of ours (made by an earlier run) and delete the dir.
stop_and_remove() {
  local dir="$1"
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    local pid
    pid="$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf -- "$dir"
}

# Leftovers of aborted runs: a cluster of ours on our port is stopped and removed;
# dirs whose server is gone are removed; clusters of other live runs (other ports) stay.
# A cluster whose owning test run is still alive is never touched: two runs
# on the same port is an operator error, reported as such.
owner_alive() {
  local owner
  owner="$(cat "$1/owner.pid" 2>/dev/null || true)"
  [[ -n "$owner" && "$owner" != "$$" ]] && kill -0 "$owner" 2>/dev/null
}
for dir in "$PG_DIR_PREFIX"*; do
  [[ -d "$dir" ]] || continue
  if owner_alive "$dir"; then
    port="$(sed -n 4p "$dir/data/postmaster.pid" 2>/dev/null || true)"
    [[ "$port" != "$PG_PORT" ]] || die "another test run (pid $(cat "$dir/owner.pid")) uses port $PG_PORT; set COHORT_TEST_PG_PORT"
    continue
  fi
  pidfile="$dir/data/postmaster.pid"
  if [[ -f "$pidfile" ]]; then
    pid="$(sed -n 1p "$pidfile")"
    port="$(sed -n 4p "$pidfile")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && [[ "$port" != "$PG_PORT" ]]; then
      continue
    fi
    say "removing cluster left by an earlier run: $dir (pid ${pid:-?}, port ${port:-?})"
  else
    say "removing leftover dir: $dir"
  fi
  stop_and_remove "$dir"
done
if pg_answers; then
  # Something still answers there: identify it before touching it.
  other_dir="$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XAtqc 'SHOW data_directory' 2>/dev/null || true)"
  if [[ "$other_dir" == "$PG_DIR_PREFIX"*/data ]]; then
    say "stopping earlier test cluster on port $PG_PORT: $other_dir"
    stop_and_remove "${other_dir%/data}"
  else
    die "port $PG_PORT is taken by a PostgreSQL server that is not a test cluster of ours (${other_dir:-unknown data dir}); set COHORT_TEST_PG_PORT"
  fi
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; then
  die "port $PG_PORT is in use by another program; set COHORT_TEST_PG_PORT"
fi

PG_DIR="$(mktemp -d "${PG_DIR_PREFIX}XXXXXX")"
echo "$$" > "$PG_DIR/owner.pid"
# The skip log and the test command's output, for the summary.
RUN_DIR="$(mktemp -d /tmp/cohort-test-run.XXXXXX)"
stop_postgres() {
  if [[ -n "${PG_DIR:-}" && -d "$PG_DIR" ]]; then
    say "stopping PostgreSQL and removing $PG_DIR"
    stop_and_remove "$PG_DIR"
  fi
  PG_DIR=""
}
cleanup() {
  local status=$?
  stop_postgres
  rm -rf -- "$RUN_DIR"
  exit "$status"
}
TEST_PID=""
on_signal() {
  # Forward to the test command (it runs in the background so that signals are
  # handled at once), then exit through cleanup.
  [[ -n "$TEST_PID" ]] && kill -TERM "$TEST_PID" 2>/dev/null && wait "$TEST_PID" 2>/dev/null
  exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

[[ $IS_ROOT -eq 1 ]] && chown postgres:postgres "$PG_DIR"
chmod 700 "$PG_DIR"
say "initdb ($PG_BIN) in $PG_DIR, port $PG_PORT"
as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C \
  --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1 || {
  cat "$PG_DIR/initdb.log" >&2
  die "initdb failed"
}
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null || {
  cat "$PG_DIR/server.log" >&2 || true
  die "PostgreSQL did not start"
}
for _ in $(seq 1 60); do
  pg_answers && break
  sleep 0.5
done
pg_answers || {
  cat "$PG_DIR/server.log" >&2 || true
  die "PostgreSQL on 127.0.0.1:$PG_PORT is not ready"
}
say "PostgreSQL ready on 127.0.0.1:$PG_PORT"

# ---------------------------------------------------------------- 4. tests
SKIP_LOG="$RUN_DIR/skipped.tsv"
TEST_OUTPUT="$RUN_DIR/test-output.log"
: >"$SKIP_LOG"
export COHORT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export COHORT_TEST_REQUIRE_POSTGRES=1
export COHORT_TEST_REQUIRE_CLIENTS=1
export COHORT_TEST_REQUIRE_WORDPRESS=1
export COHORT_TEST_CLIENTS_DIR="$CLIENTS_DIR"
export COHORT_TEST_SKIP_LOG="$SKIP_LOG"
export CHROMIUM=/usr/bin/chromium

cd "$ROOT"
say "running: $TEST_CMD"
# The command's stdout goes on to ours and to TEST_OUTPUT (for the count of
# cargo's `test result:` lines) through a fifo, so that TEST_PID is the command
# itself and a signal reaches it.
mkfifo "$RUN_DIR/test-output.fifo"
tee "$TEST_OUTPUT" <"$RUN_DIR/test-output.fifo" &
TEE_PID=$!
bash -c "$TEST_CMD" >"$RUN_DIR/test-output.fifo" &
TEST_PID=$!
set +e
wait "$TEST_PID"
status=$?
# tee ends when the last writer closes the fifo; a process the tests left
# running with their stdout would hold it open for ever.
for _ in $(seq 1 50); do
  kill -0 "$TEE_PID" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$TEE_PID" 2>/dev/null; then
  say "a process started by the tests still holds their stdout (left running?): not waiting for it"
  kill "$TEE_PID" 2>/dev/null
fi
wait "$TEE_PID"
set -e
TEST_PID=""

left="$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XAtqc \
  "SELECT count(*) FROM pg_database WHERE datname LIKE 'cohort\_test\_%'" 2>/dev/null || echo '?')"
say "test databases left on the cluster: $left"
# Stopped here, not on exit: the summary below stays the last lines.
stop_postgres
say "finished in $((SECONDS - START_SECONDS))s (exit status $status)"

# ---------------------------------------------------------------- summary
sort -u -o "$SKIP_LOG" "$SKIP_LOG"
read -r passed failed < <(awk '
  /^test result: / {
    for (i = 2; i <= NF; i++) {
      if ($i ~ /^passed;?$/) passed += $(i - 1)
      if ($i ~ /^failed;?$/) failed += $(i - 1)
    }
  }
  END { print passed + 0, failed + 0 }' "$TEST_OUTPUT")
skipped="$(wc -l <"$SKIP_LOG")"
# Skips CI tolerates: what needs WooCommerce (cohort_testkit::WOOCOMMERCE_NOT_SET).
not_allowed_in_ci="$(grep -vc 'COHORT_WOOCOMMERCE_DIR is not set' "$SKIP_LOG" || true)"
if [[ "${CI:-}" == true && "$not_allowed_in_ci" -gt 0 ]]; then
  say "ERROR: CI=true: $not_allowed_in_ci skipped test(s) need something CI must provide (only skips for want of WooCommerce, COHORT_WOOCOMMERCE_DIR, are allowed); see the list below"
  [[ "$status" -ne 0 ]] || status=1
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [[ "$skipped" -eq 0 ]]; then
  echo "no test skipped"
else
  echo "skipped tests:"
  while IFS=$'\t' read -r test reason; do
    echo "  $test: $reason"
  done <"$SKIP_LOG"
fi
exit "$status"
