#!/usr/bin/env bash
# What the Cohort Connect plugin costs a shop's pages: WordPress page time
# with the plugin active and connected vs without it, measured in one run.
#
#   bash tests/wordpress/bench-page-time.sh [REQUESTS_PER_ARM]   (default 2000; needs valgrind)
#
# 1. Instructions per page render (the headline figure: exact and repeatable
#    whatever else the machine does): valgrind's callgrind counts one render of
#    the home page (tests/wordpress/render-home.php, PHP CLI with opcache's
#    file cache warmed first, as a production PHP serves from opcache), median
#    of 3 per site.
# 2. Wall-clock and server CPU time over HTTP, which other load on the machine
#    disturbs (see docs/BENCHMARKS.md).
#
# Two identical real WordPress sites (tests/wordpress/site.sh: Debian's
# wordpress, each with a MariaDB of its own, `php -S` with opcache on and one
# worker): "with" has the plugin active and paired with a real `cohort serve`
# through the browser flow (tests/clients/wordpress_plugin.mjs), "without"
# has the same files but the plugin never activated. One Python client GETs
# the home page as an anonymous visitor, a new connection each time,
# alternating between the two sites in random order, so load from anything
# else on the machine falls on both arms alike. Prints, per arm, the CPU time
# the site's PHP server and MariaDB spent per request (read from /proc: the
# figure that other load on the machine disturbs least) and the wall-clock
# medians, means and p95 seen by the client; then the ratios.
# Needs what scripts/test.sh installs (wordpress, mariadb-server, php-mysql,
# chromium, node with tests/clients/node_modules).
set -euo pipefail
PER_ARM="${1:-2000}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SITE="$ROOT/tests/wordpress/site.sh"
WORK="$(mktemp -d /tmp/cohort-wp-bench.XXXXXX)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WP_PORT="$(free_port)"; BASE_PORT="$(free_port)"; COHORT_PORT="$(free_port)"
WP_URL="http://127.0.0.1:$WP_PORT"; BASE_URL="http://127.0.0.1:$BASE_PORT"; COHORT_URL="http://127.0.0.1:$COHORT_PORT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  bash "$SITE" db-stop "$WORK/with" || true
  bash "$SITE" db-stop "$WORK/without" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build -q -p cohort)
mkdir -p "$WORK/cohort"
(cd "$WORK/cohort" && COHORT_DATABASE__URL="sqlite://$WORK/cohort/cohort.db" COHORT_SERVER__LISTEN="127.0.0.1:$COHORT_PORT" \
  COHORT_LOG__LEVEL=warn exec "$ROOT/target/debug/cohort" serve >"$WORK/cohort.log" 2>&1) &
PIDS+=($!)
for arm in with without; do
  bash "$SITE" db-start "$WORK/$arm"
done
bash "$SITE" create "$WORK/with" "$WP_URL" wordpress
bash "$SITE" create "$WORK/without" "$BASE_URL" wordpress
# `serve` execs php: $! is the PHP server's own pid (one process with one worker).
PHP_CLI_SERVER_WORKERS=1 bash "$SITE" serve "$WORK/with" "$WP_PORT" >/dev/null 2>"$WORK/php-with.log" &
PHP_WITH=$!; PIDS+=($!)
PHP_CLI_SERVER_WORKERS=1 bash "$SITE" serve "$WORK/without" "$BASE_PORT" >/dev/null 2>"$WORK/php-without.log" &
PHP_WITHOUT=$!; PIDS+=($!)
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "$WP_URL/wp-login.php" && curl -fs -o /dev/null "$BASE_URL/wp-login.php" &&
    curl -fs -o /dev/null "$COHORT_URL/healthz" && break
  sleep 0.2
done

drive() {
  node "$ROOT/tests/clients/wordpress_plugin.mjs" "$1" \
    "{\"wp\":\"$WP_URL\",\"cohort\":\"$COHORT_URL\",\"state\":\"$WORK/state.json\",\"shots\":\"$WORK/shots\",$2\"_\":0}" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit("driver: "+d["error"]) if "error" in d else None'
}
drive activate ''
drive pair '"account":{"email":"owner@shop.test","password":"correct horse battery"},"org":"Default","decision":"approve",'
bash "$SITE" php "$WORK/with" 'echo Cohort_Connection::is_connected() ? "connected\n" : "NOT connected\n";'
curl -fs "$WP_URL/" | grep -q "/sdk/v1/cohort.js" || { echo "the SDK tag is missing from the page" >&2; exit 1; }

curl -fs "$BASE_URL/" | grep -q "/sdk/v1/cohort.js" && { echo "the baseline site must not have the SDK tag" >&2; exit 1; }

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
instructions() {  # instructions of one render of site $1 at $2 (median of 3 after a warm-up)
  local www="$WORK/$1/www" n out=()
  mkdir -p "$WORK/opcache-$1"
  local php=(php -d opcache.enable_cli=1 -d "opcache.file_cache=$WORK/opcache-$1" -d opcache.file_cache_only=1 "$ROOT/tests/wordpress/render-home.php" "$2")
  (cd "$www" && "${php[@]}" 2>/dev/null)
  for n in 1 2 3; do
    out+=("$(cd "$www" && valgrind --tool=callgrind --callgrind-out-file=/dev/null "${php[@]}" 2>&1 | sed -n 's/.*refs: *//p' | tr -d ',')")
  done
  printf '%s\n' "${out[@]}" | sort -n | sed -n 2p
}
IR_WITH="$(instructions with "127.0.0.1:$WP_PORT")"
IR_WITHOUT="$(instructions without "127.0.0.1:$BASE_PORT")"
python3 -c "import sys; w, wo = int(sys.argv[1]), int(sys.argv[2]); print(f'instructions per home page render: without the plugin {wo:,}, with it active and connected {w:,}: ratio {w / wo:.4f} ({(w / wo - 1) * 100:+.2f} %)')" "$IR_WITH" "$IR_WITHOUT"

python3 - "$WP_URL" "$BASE_URL" "$PER_ARM" "$PHP_WITH $(cat "$WORK/with/mysqld.pid")" "$PHP_WITHOUT $(cat "$WORK/without/mysqld.pid")" <<'PY'
import http.client, os, random, statistics, sys, time, urllib.parse
with_url, without_url, per_arm = sys.argv[1], sys.argv[2], int(sys.argv[3])
servers = {True: [int(p) for p in sys.argv[4].split()], False: [int(p) for p in sys.argv[5].split()]}
TICK = os.sysconf("SC_CLK_TCK")
def cpu_seconds(pids):
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK
def get(url):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    t0 = time.perf_counter(); c.request("GET", "/"); r = c.getresponse(); body = r.read(); t1 = time.perf_counter()
    c.close()
    assert r.status == 200, r.status
    return (t1 - t0) * 1000, b"/sdk/v1/cohort.js" in body
for _ in range(50):  # warm opcache and the database caches of both
    get(with_url); get(without_url)
times = {True: [], False: []}
cpu_before = {arm: cpu_seconds(pids) for arm, pids in servers.items()}
rng = random.Random(6)
for _ in range(per_arm):
    arms = [True, False]
    rng.shuffle(arms)
    for active in arms:
        ms, tagged = get(with_url if active else without_url)
        assert tagged == active, "the SDK tag must be there exactly on the site with the plugin"
        times[active].append(ms)
cpu = {arm: (cpu_seconds(pids) - cpu_before[arm]) * 1000 / per_arm for arm, pids in servers.items()}
def p95(xs): return sorted(xs)[int(0.95 * len(xs)) - 1]
for active, name in [(False, "without the plugin"), (True, "plugin active, connected")]:
    xs = times[active]
    print(f"{name:26s} n={len(xs):5d}  wall: median {statistics.median(xs):7.2f} ms  mean {statistics.mean(xs):7.2f} ms  p95 {p95(xs):7.2f} ms"
          f"  |  server CPU (PHP + MariaDB): {cpu[active]:6.2f} ms/request")
ratio = statistics.median(times[True]) / statistics.median(times[False])
print(f"server CPU per request, with / without: {cpu[True] / cpu[False]:.4f}  ({(cpu[True] / cpu[False] - 1) * 100:+.2f} %)")
print(f"wall time, ratio of medians:           {ratio:.4f}  ({(ratio - 1) * 100:+.2f} %)")
print(f"wall time, ratio of means:             {statistics.mean(times[True]) / statistics.mean(times[False]):.4f}")
PY
