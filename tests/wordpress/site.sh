#!/usr/bin/env bash
# A throwaway real WordPress for the plugin's end-to-end tests and benchmark:
# Debian's `wordpress` package copied into a directory of ours, our own
# wp-config.php (WP_DEBUG on, errors logged to <dir>/debug.log), a MariaDB
# server of ours on a Unix socket (no TCP port to collide with), and PHP's
# built-in web server with several workers.
#
#   site.sh db-start  DIR            start MariaDB with its data in DIR/db (socket DIR/mysql.sock)
#   site.sh db-stop   DIR
#   site.sh create    DIR URL NAME   copy WordPress into DIR/www, database NAME, install it for URL
#                                    (admin user `admin` / `password`, a subscriber `shopper` / `password`),
#                                    and copy the plugin into wp-content/plugins (not activated)
#   site.sh serve     DIR PORT       run `php -S 127.0.0.1:PORT` on DIR/www (foreground; opcache on;
#                                    PHP_CLI_SERVER_WORKERS workers, default 4, forked by it: start
#                                    it in a process group of its own and stop the whole group,
#                                    or the workers keep the port)
#   site.sh php       DIR CODE       run PHP CODE with WordPress loaded (as a CLI request)
#   site.sh woocommerce DIR WC       add the WooCommerce plugin unpacked at WC (linked, never copied
#                                    into the project), activate and install it: USD, cash on
#                                    delivery, guest checkout, coupons on, no tax; plus a must-use
#                                    plugin letting its webhooks reach a loopback receiver
#
# Needs Debian's wordpress, mariadb-server, php-cli, php-mysql (scripts/test.sh installs them).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PLUGIN="$ROOT/plugins/wordpress/cohort-connect"
WP_SRC="${COHORT_TEST_WORDPRESS_SRC:-/usr/share/wordpress}"

die() { printf 'site.sh: %s\n' "$*" >&2; exit 1; }

mysql_root() { mariadb --no-defaults -S "$1/mysql.sock" -uroot "${@:2}"; }

db_start() {
  local dir="$1"
  mkdir -p "$dir"
  if [[ -S "$dir/mysql.sock" ]] && mysql_root "$dir" -e 'select 1' >/dev/null 2>&1; then
    return 0
  fi
  if [[ ! -d "$dir/db/mysql" ]]; then
    rm -rf "$dir/db"
    mariadb-install-db --no-defaults --datadir="$dir/db" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/db-install.log" 2>&1 ||
      die "mariadb-install-db failed (see $dir/db-install.log)"
  fi
  # Durability off: a test database, recreated every run.
  mariadbd --no-defaults --datadir="$dir/db" --socket="$dir/mysql.sock" --skip-networking \
    --user="$(id -un)" --pid-file="$dir/mysqld.pid" --log-error="$dir/mysqld.err" \
    --innodb-flush-log-at-trx-commit=0 --skip-log-bin --innodb-buffer-pool-size=64M \
    >/dev/null 2>&1 &
  local i
  for i in $(seq 1 100); do
    mysql_root "$dir" -e 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "MariaDB did not start (see $dir/mysqld.err)"
}

db_stop() {
  local dir="$1" pid
  pid="$(cat "$dir/mysqld.pid" 2>/dev/null || true)"
  [[ -n "$pid" ]] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

create() {
  local dir="$1" url="$2" name="$3" www="$1/www"
  [[ -d "$WP_SRC/wp-includes" ]] || die "no WordPress at $WP_SRC (apt-get install wordpress)"
  [[ "$name" =~ ^[a-z0-9_]+$ ]] || die "bad database name: $name"
  rm -rf "$www"
  mkdir -p "$www"
  # Debian's tree links some libraries to other packages: copy the files, not the links;
  # its wp-content lives in /var/lib: ours is a plain directory without the translations.
  cp -rL "$WP_SRC/." "$www/"
  rm -rf "$www/wp-content/languages" "$www/.htaccess"
  mkdir -p "$www/wp-content/uploads"
  mysql_root "$dir" -e "DROP DATABASE IF EXISTS \`$name\`; CREATE DATABASE \`$name\` CHARACTER SET utf8mb4;"
  local salt
  salt="$(head -c 48 /dev/urandom | base64 | tr -d '/+=')"
  cat >"$www/wp-config.php" <<PHP
<?php
define( 'DB_NAME', '$name' );
define( 'DB_USER', 'root' );
define( 'DB_PASSWORD', '' );
define( 'DB_HOST', 'localhost:$dir/mysql.sock' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
foreach ( array( 'AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT' ) as \$cohort_key ) {
	define( \$cohort_key, '$salt' . \$cohort_key );
}
\$table_prefix = 'wp_';
define( 'WP_HOME', '$url' );
define( 'WP_SITEURL', '$url' );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_LOG', '$dir/debug.log' );
define( 'WP_DEBUG_DISPLAY', false );
define( 'COHORT_TEST_PLUGIN_ERRORS_LOG', '$dir/plugin-errors.log' );
define( 'SCRIPT_DEBUG', false );
define( 'WP_AUTO_UPDATE_CORE', false );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'WP_ACCESSIBLE_HOSTS', '127.0.0.1,localhost' );
// The tests run WP-Cron themselves (GET /wp-cron.php?doing_wp_cron), so runs are deterministic.
define( 'DISABLE_WP_CRON', true );
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
PHP
  mkdir -p "$www/wp-content/mu-plugins"
  cp "$HERE/error-attribution.php" "$www/wp-content/mu-plugins/cohort-test-error-attribution.php"
  cp -r "$PLUGIN" "$www/wp-content/plugins/cohort-connect"
  rm -rf "$www/wp-content/plugins/cohort-connect/tests"
  (cd "$www" && php -d display_errors=stderr -r '
    define( "WP_INSTALLING", true );
    $_SERVER["HTTP_HOST"] = parse_url( $argv[1], PHP_URL_HOST );
    require "wp-load.php";
    require_once ABSPATH . "wp-admin/includes/upgrade.php";
    add_filter( "pre_wp_mail", "__return_false" ); // no MTA here: skip the welcome mail
    $r = wp_install( "Cohort Test Shop", "admin", "admin@shop.test", false, "", "password" );
    update_option( "permalink_structure", "" );
    $id = wp_insert_user( array( "user_login" => "shopper", "user_pass" => "password", "user_email" => "shopper@shop.test", "role" => "subscriber", "first_name" => "Sam" ) );
    if ( is_wp_error( $id ) ) { fwrite( STDERR, $id->get_error_message() ); exit( 1 ); }
    echo "installed\n";
  ' "$url") >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; die "wp_install failed"; }
  : >"$dir/debug.log"
}

serve() {
  local dir="$1" port="$2"
  # Several workers: WordPress pages, the SDK's calls and cron runs overlap.
  # opcache on, as on any production PHP (the CLI SAPI leaves it off by default).
  PHP_CLI_SERVER_WORKERS="${PHP_CLI_SERVER_WORKERS:-4}" exec php -d opcache.enable_cli=1 -d opcache.validate_timestamps=1 -S "127.0.0.1:$port" -t "$dir/www"
}

run_php() {
  local dir="$1" code="$2"
  (cd "$dir/www" && php -d display_errors=stderr -r '
    $_SERVER["HTTP_HOST"] = "127.0.0.1";
    require "wp-load.php";
    require_once ABSPATH . "wp-admin/includes/plugin.php";
    eval( $argv[1] );
  ' "$code")
}

woocommerce() {
  local dir="$1" wc="$2" www="$1/www"
  [[ -f "$wc/woocommerce.php" ]] || die "no WooCommerce plugin at $wc (woocommerce.php missing)"
  ln -sfn "$(cd "$wc" && pwd)" "$www/wp-content/plugins/woocommerce"
  cp "$HERE/woocommerce-test.php" "$www/wp-content/mu-plugins/cohort-test-woocommerce.php"
  # Activation and installation in separate processes, as WordPress itself does them.
  run_php "$dir" '
    $r = activate_plugin( "woocommerce/woocommerce.php" );
    if ( is_wp_error( $r ) ) { fwrite( STDERR, $r->get_error_message() ); exit( 1 ); }
    echo "activated\n";' >>"$dir/install.log" 2>>"$dir/woocommerce-install.log" ||
    die "activating WooCommerce failed (see $dir/woocommerce-install.log)"
  run_php "$dir" '
    WC_Install::install();
    update_option( "woocommerce_currency", "USD" );
    update_option( "woocommerce_default_country", "US:CA" );
    update_option( "woocommerce_store_address", "1 Market St" );
    update_option( "woocommerce_store_city", "San Francisco" );
    update_option( "woocommerce_store_postcode", "94105" );
    update_option( "woocommerce_calc_taxes", "no" );
    update_option( "woocommerce_enable_coupons", "yes" );
    update_option( "woocommerce_enable_guest_checkout", "yes" );
    update_option( "woocommerce_coming_soon", "no" );
    update_option( "woocommerce_onboarding_profile", array( "skipped" => true ) );
    update_option( "woocommerce_task_list_hidden", "yes" );
    update_option( "woocommerce_cod_settings", array( "enabled" => "yes", "title" => "Cash on delivery", "enable_for_methods" => array(), "enable_for_virtual" => "yes" ) );
    echo "installed\n";' >>"$dir/install.log" 2>>"$dir/woocommerce-install.log" ||
    die "installing WooCommerce failed (see $dir/woocommerce-install.log)"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  db-start) db_start "$@" ;;
  db-stop) db_stop "$@" ;;
  create) create "$@" ;;
  serve) serve "$@" ;;
  php) run_php "$@" ;;
  woocommerce) woocommerce "$@" ;;
  *) die "usage: site.sh db-start|db-stop|create|serve|php|woocommerce …" ;;
esac
