#!/usr/bin/env bash
# The store sync from the plugin to Cohort (issue 7): a real WooCommerce with
# ORDERS orders (default 20000), paired with a real `cohort serve` (release
# build), synced from WP-Cron slices as on a live site; PHP's built-in server
# is killed with -9 in the middle of the sync and restarted, and the sync
# resumes. Prints items/s and the ratio against a baseline measured in the
# same run: WooCommerce's own REST serialisation of the same objects alone,
# with nothing sent (what reading the store costs before Cohort is involved).
#
#   COHORT_WOOCOMMERCE_DIR=/path/to/woocommerce bash tests/wordpress/bench-sync.sh [ORDERS]
#
# Orders are seeded by copying 50 orders made through WooCommerce's own PHP
# API row for row (posts storage), with distinct ids, emails and dates:
# making 20,000 orders one by one through WC_Order takes hours on this
# machine. Needs what scripts/test.sh installs, plus WooCommerce (see
# docs/PLUGIN.md). Set COHORT_BENCH_DATABASE_URL to run Cohort on
# PostgreSQL instead of a SQLite file.
set -euo pipefail
ORDERS="${1:-20000}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SITE="$ROOT/tests/wordpress/site.sh"
WC="${COHORT_WOOCOMMERCE_DIR:?set COHORT_WOOCOMMERCE_DIR to an unpacked WooCommerce 7.8.x}"
WORK="$(mktemp -d /tmp/cohort-wp-sync.XXXXXX)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WP_PORT="$(free_port)"; COHORT_PORT="$(free_port)"
WP_URL="http://127.0.0.1:$WP_PORT"; COHORT_URL="http://127.0.0.1:$COHORT_PORT"
PIDS=()
PHP_PID=""
cleanup() {
  for p in "${PIDS[@]}" $PHP_PID; do kill "$p" 2>/dev/null || true; done
  [[ -n "$PHP_PID" ]] && pkill -9 -g "$PHP_PID" 2>/dev/null || true
  bash "$SITE" db-stop "$WORK/site" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start_php() {
  # In its own process group: `php -S` workers outlive a parent killed alone.
  setsid bash "$SITE" serve "$WORK/site" "$WP_PORT" >/dev/null 2>>"$WORK/php.log" &
  PHP_PID=$!
  for _ in $(seq 1 100); do curl -fs -o /dev/null "$WP_URL/wp-login.php" && return 0; sleep 0.1; done
  echo "WordPress did not start" >&2; exit 1
}

# COHORT_BIN: an already built release binary (default: build one).
COHORT_BIN="${COHORT_BIN:-}"
if [[ -z "$COHORT_BIN" ]]; then (cd "$ROOT" && cargo build -q --release -p cohort); COHORT_BIN="$ROOT/target/release/cohort"; fi
mkdir -p "$WORK/cohort"
DB_URL="${COHORT_BENCH_DATABASE_URL:-sqlite://$WORK/cohort/cohort.db}"
(cd "$WORK/cohort" && COHORT_DATABASE__URL="$DB_URL" COHORT_SERVER__LISTEN="127.0.0.1:$COHORT_PORT" \
  COHORT_DESTINATIONS__ENABLED=false COHORT_LOG__LEVEL=warn exec "$COHORT_BIN" serve >"$WORK/cohort.log" 2>&1) &
COHORT_PID=$!; PIDS+=($COHORT_PID)

bash "$SITE" db-start "$WORK/site"
bash "$SITE" create "$WORK/site" "$WP_URL" wordpress
bash "$SITE" woocommerce "$WORK/site" "$WC"
echo "seeding $ORDERS orders…"
SEED_START=$(date +%s)
bash "$SITE" php "$WORK/site" "\$target = $ORDERS;"'
  global $wpdb;
  wp_defer_term_counting( true );
  $products = array();
  for ( $i = 0; $i < 40; $i++ ) {
    $p = new WC_Product_Simple(); $p->set_name( "Product $i" ); $p->set_sku( "SKU-$i" );
    $p->set_regular_price( sprintf( "%d.%02d", 5 + $i, ( $i * 37 ) % 100 ) ); $p->save(); $products[] = $p;
  }
  for ( $i = 0; $i < 200; $i++ ) {
    wc_create_new_customer( "customer$i@shop.test", "customer$i", "password" );
  }
  $templates = array();
  for ( $i = 0; $i < min( 50, $target ); $i++ ) {
    $o = wc_create_order( array( "customer_id" => 0 ) );
    $o->add_product( $products[ $i % 40 ], 1 + $i % 3 );
    $o->add_product( $products[ ( $i * 7 ) % 40 ], 1 );
    $o->set_billing_email( "guest$i@guest.test" ); $o->set_billing_first_name( "Guest" ); $o->set_payment_method( "cod" );
    $o->calculate_totals(); $o->save(); $o->update_status( 0 === $i % 5 ? "processing" : "completed" );
    $templates[] = $o->get_id();
  }
  // Copies of the templates, row for row, with their own ids, emails and order items.
  for ( $k = count( $templates ); $k < $target; $k++ ) {
    $src = $templates[ $k % count( $templates ) ];
    $wpdb->query( $wpdb->prepare( "INSERT INTO {$wpdb->posts} (post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, post_status, comment_status, ping_status, post_password, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, post_parent, guid, menu_order, post_type, post_mime_type, comment_count) SELECT post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, post_status, comment_status, ping_status, post_password, CONCAT(post_name, %s), to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, post_parent, guid, menu_order, post_type, post_mime_type, comment_count FROM {$wpdb->posts} WHERE ID = %d", "-$k", $src ) );
    $id = (int) $wpdb->insert_id;
    $email = "guest" . ( $k % 5000 ) . "@guest.test";
    $wpdb->query( $wpdb->prepare( "INSERT INTO {$wpdb->postmeta} (post_id, meta_key, meta_value) SELECT %d, meta_key, IF(meta_key IN (\"_billing_email\"), %s, meta_value) FROM {$wpdb->postmeta} WHERE post_id = %d", $id, $email, $src ) );
    foreach ( $wpdb->get_results( $wpdb->prepare( "SELECT order_item_id, order_item_name, order_item_type FROM {$wpdb->prefix}woocommerce_order_items WHERE order_id = %d", $src ) ) as $item ) {
      $wpdb->insert( "{$wpdb->prefix}woocommerce_order_items", array( "order_item_name" => $item->order_item_name, "order_item_type" => $item->order_item_type, "order_id" => $id ) );
      $new_item = (int) $wpdb->insert_id;
      $wpdb->query( $wpdb->prepare( "INSERT INTO {$wpdb->prefix}woocommerce_order_itemmeta (order_item_id, meta_key, meta_value) SELECT %d, meta_key, meta_value FROM {$wpdb->prefix}woocommerce_order_itemmeta WHERE order_item_id = %d", $new_item, $item->order_item_id ) );
    }
  }
  echo "orders: ", $wpdb->get_var( "SELECT COUNT(*) FROM {$wpdb->posts} WHERE post_type = \"shop_order\"" ), "\n";
'
echo "seeded in $(( $(date +%s) - SEED_START )) s"
start_php
for _ in $(seq 1 100); do curl -fs -o /dev/null "$COHORT_URL/healthz" && break; sleep 0.2; done

drive() {
  node "$ROOT/tests/clients/wordpress_plugin.mjs" "$1" \
    "{\"wp\":\"$WP_URL\",\"cohort\":\"$COHORT_URL\",\"state\":\"$WORK/state.json\",\"shots\":\"$WORK/shots\",\"woocommerce\":true,$2\"_\":0}" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit("driver: "+d["error"]) if "error" in d else None'
}
drive activate ''
# Baseline (the plugin active, not yet paired): WooCommerce's own REST serialisation of every object, batch by batch, nothing sent.
BASELINE="$(bash "$SITE" php "$WORK/site" '
  $t = microtime( true ); $n = 0;
  foreach ( Cohort_Sync_State::ORDER as $resource ) {
    $after = 0;
    while ( $ids = Cohort_Sync::next_ids( $resource, $after ) ) {
      $n += count( Cohort_Sync::serialize( $resource, $ids ) ); $after = max( $ids );
      wp_cache_flush_runtime();
    }
  }
  printf( "%d %.3f", $n, microtime( true ) - $t );')"
echo "baseline (serialise only): $BASELINE (items, seconds)"

SYNC_START=$(date +%s.%N)
drive pair '"account":{"email":"owner@shop.test","password":"correct horse battery"},"org":"Default","decision":"approve",'

# WP-Cron slices, as a site's visitors would trigger them; PHP killed with -9 once, mid-sync.
KILLED=0
for i in $(seq 1 100000); do
  done_json="$(bash "$SITE" php "$WORK/site" 'echo wp_json_encode( get_option( "cohort_connect_last_sync", null ) );')"
  [[ "$done_json" != "null" ]] && break
  progress="$(bash "$SITE" php "$WORK/site" '$s = Cohort_Sync::state(); echo $s ? (int) $s["counts"]["orders"] : -1;')"
  if [[ "$KILLED" == 0 && "$progress" -ge $(( ORDERS / 2 )) ]]; then
    curl -s -o /dev/null -m 3 "$WP_URL/wp-cron.php" &
    CURL_PID=$!
    sleep 2
    pkill -9 -g "$PHP_PID" || true
    wait "$CURL_PID" 2>/dev/null || true
    echo "killed PHP with -9 at $progress orders sent"
    KILLED=1
    bash "$SITE" php "$WORK/site" 'delete_option( "cohort_connect_sync_lock" );' # a lock of a dead slice expires after 2 minutes; do not wait for it here
    start_php
  fi
  curl -fs -o /dev/null -m 600 "$WP_URL/wp-cron.php" || true
done
SYNC_END=$(date +%s.%N)
echo "plugin's last sync: $done_json"
RUNS="$(curl -fs -H "Authorization: Bearer $(cd "$WORK/cohort" && COHORT_DATABASE__URL="$DB_URL" "$COHORT_BIN" token create --name bench 2>/dev/null | tail -1)" \
  "$COHORT_URL/api/v1/installations/$(bash "$SITE" php "$WORK/site" 'echo Cohort_Connection::get()["installation_id"];')/sync-runs" || echo '{}')"
python3 - "$BASELINE" "$SYNC_START" "$SYNC_END" "$done_json" "$RUNS" "$(ps -o rss= -p "$COHORT_PID")" <<'PY'
import json, sys
base_items, base_s = sys.argv[1].split()
base_rate = int(base_items) / float(base_s)
start, end = float(sys.argv[2]), float(sys.argv[3])
done = json.loads(sys.argv[4]); runs = json.loads(sys.argv[5])
items = sum(done["counts"][k] for k in ("products", "customers", "orders"))
rate = items / (end - start)
print(f"synced {items:,} items ({done['counts']}) in {end - start:.1f} s: {rate:,.0f} items/s end to end (pairing included)")
print(f"baseline, WooCommerce's REST serialisation alone: {base_rate:,.0f} items/s; ratio {rate / base_rate:.2f}")
print(f"largest PHP memory of a slice: {done.get('peak_memory', 0) / 1048576:.1f} MiB; cohort serve RSS at the end: {int(sys.argv[6]) / 1024:.1f} MiB")
run = (runs.get("data") or [{}])[0]
print("Cohort's run:", run.get("status"), {k: v.get("accepted") for k, v in (run.get("progress") or {}).items()}, "reported:", run.get("reported_counts"))
PY
