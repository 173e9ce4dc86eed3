<?php
/**
 * Plugin Name:       Cohort Connect
 * Plugin URI:        https://github.com/cohort-cdp/cohort
 * Description:       Connects this site to your self-hosted Cohort: page views and logged-in visitors tracked with Cohort's own SDK, a connection health heartbeat, and reliable delivery through a local outbox.
 * Version:           0.1.0
 * Requires at least: 6.1
 * Requires PHP:      8.1
 * Author:            Cohort
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       cohort-connect
 * Domain Path:       /languages
 * WC requires at least: 7.1
 * WC tested up to:   9.4
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

define( 'COHORT_CONNECT_VERSION', '0.1.0' );
define( 'COHORT_CONNECT_FILE', __FILE__ );
define( 'COHORT_CONNECT_DIR', plugin_dir_path( __FILE__ ) );

require_once COHORT_CONNECT_DIR . 'includes/class-cohort-response.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-retry-policy.php';
require_once COHORT_CONNECT_DIR . 'includes/interface-cohort-outbox-storage.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-failure-log.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-outbox-report.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-outbox.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-pairing-protocol.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-settings.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-installer.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-db-storage.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-connection.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-api.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-pairing.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-heartbeat.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-tracking.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-account-events.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-sync-state.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-sync.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-store-changes.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-cart-signals.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-recover-link.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-cart-events.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-upgrade.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-admin.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-discounts.php';
require_once COHORT_CONNECT_DIR . 'includes/class-cohort-plugin.php';

register_activation_hook( __FILE__, array( 'Cohort_Plugin', 'activate' ) );
register_deactivation_hook( __FILE__, array( 'Cohort_Plugin', 'deactivate' ) );

add_action(
	'before_woocommerce_init',
	static function () {
		if ( class_exists( '\Automattic\WooCommerce\Utilities\FeaturesUtil' ) ) {
			\Automattic\WooCommerce\Utilities\FeaturesUtil::declare_compatibility( 'custom_order_tables', __FILE__, true );
			\Automattic\WooCommerce\Utilities\FeaturesUtil::declare_compatibility( 'cart_checkout_blocks', __FILE__, true );
		}
	}
);

Cohort_Plugin::boot();
