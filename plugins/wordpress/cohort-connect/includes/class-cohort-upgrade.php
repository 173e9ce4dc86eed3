<?php
/**
 * Plain WordPress → WooCommerce (connect.md §2 `installation/upgrade`): a site
 * connected without WooCommerce is offered the store features once
 * WooCommerce is active; accepting tells Cohort, which queues the initial
 * sync the plugin then carries out.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The offer (an admin notice) and its action.
 */
final class Cohort_Upgrade {

	const ACTION = 'cohort_connect_upgrade';

	/**
	 * Registers the admin hooks.
	 */
	public static function boot(): void {
		add_action( 'admin_notices', array( __CLASS__, 'offer' ) );
		add_action( 'admin_post_' . self::ACTION, array( __CLASS__, 'handle' ) );
	}

	/**
	 * Whether the site is connected as plain WordPress while WooCommerce is active.
	 */
	public static function available(): bool {
		$conn = Cohort_Connection::get();
		return null !== $conn && 'wordpress' === ( $conn['platform'] ?? '' ) && Cohort_Plugin::woocommerce_enabled();
	}

	/**
	 * The offer, on every admin screen for those who may accept it.
	 */
	public static function offer(): void {
		if ( ! self::available() || ! current_user_can( Cohort_Plugin::capability() ) ) {
			return;
		}
		echo '<div class="notice notice-info" id="cohort-connect-upgrade-offer"><p>';
		echo esc_html__( 'WooCommerce is active. Cohort can now sync this store\'s products, customers and orders and follow carts and checkouts.', 'cohort-connect' );
		echo '</p><form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="margin:0 0 8px">';
		echo '<input type="hidden" name="action" value="' . esc_attr( self::ACTION ) . '" />';
		wp_nonce_field( self::ACTION );
		echo '<button type="submit" class="button button-primary" id="cohort-connect-upgrade">' . esc_html__( 'Enable store features in Cohort', 'cohort-connect' ) . '</button>';
		echo '</form></div>';
	}

	/**
	 * Accepting the offer.
	 */
	public static function handle(): void {
		if ( ! current_user_can( Cohort_Plugin::capability() ) ) {
			wp_die( esc_html__( 'You are not allowed to manage the Cohort connection.', 'cohort-connect' ), '', array( 'response' => 403 ) );
		}
		check_admin_referer( self::ACTION );
		$code = self::upgrade() ? 'upgraded' : 'upgrade_failed';
		wp_safe_redirect( Cohort_Plugin::admin_url( array( 'cohort_msg' => $code ) ) );
		exit;
	}

	/**
	 * Tells Cohort, then picks up the sync it queues. False when Cohort refused or could not be reached.
	 */
	public static function upgrade(): bool {
		$conn = Cohort_Connection::get();
		if ( null === $conn || ! Cohort_Plugin::woocommerce_enabled() ) {
			return false;
		}
		$facts    = Cohort_Pairing::store_facts();
		$response = Cohort_Api::request(
			rtrim( (string) $conn['cohort_url'], '/' ) . '/connect/v1/installation/upgrade',
			'POST',
			(string) $conn['installation_token'],
			(string) wp_json_encode(
				array(
					'platform'   => 'woocommerce',
					'wc_version' => (string) $facts['wc_version'],
				)
			),
			15
		);
		if ( 401 === $response->status ) {
			Cohort_Connection::clear( 'revoked', __( 'Cohort rejected this site\'s installation token (401): the connection was revoked or replaced. Nothing is sent until you reconnect.', 'cohort-connect' ) );
			return false;
		}
		if ( ! $response->ok() ) {
			update_option( 'cohort_connect_upgrade_error', $response->describe(), false );
			return false;
		}
		delete_option( 'cohort_connect_upgrade_error' );
		$conn['platform'] = 'woocommerce';
		update_option( Cohort_Connection::OPTION, $conn, false );
		Cohort_Heartbeat::enqueue();
		Cohort_Sync::schedule();
		return true;
	}
}
