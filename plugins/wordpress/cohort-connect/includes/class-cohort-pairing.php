<?php
/**
 * Pairing with Cohort (connect.md §1): server-to-server, no secret in the browser.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Starts a pairing, polls it (on the return to the admin page and from WP-Cron)
 * and stores the installation once approved.
 */
final class Cohort_Pairing {

	const OPTION        = 'cohort_connect_pairing';
	const NOTICE_OPTION = 'cohort_connect_pairing_notice';
	const LOCK_OPTION   = 'cohort_connect_poll_lock';

	/**
	 * Facts about the store sent when pairing and in every heartbeat.
	 *
	 * @return array<string,mixed>
	 */
	public static function store_facts(): array {
		$woo = Cohort_Plugin::woocommerce_active();
		return array(
			'store_url'      => home_url( '/' ),
			'site_name'      => wp_specialchars_decode( (string) get_bloginfo( 'name' ), ENT_QUOTES ),
			'plugin_version' => COHORT_CONNECT_VERSION,
			'wp_version'     => (string) get_bloginfo( 'version' ),
			'wc_version'     => $woo && defined( 'WC_VERSION' ) ? (string) WC_VERSION : null,
			'php_version'    => PHP_VERSION,
			'currency'       => $woo && function_exists( 'get_woocommerce_currency' ) ? (string) get_woocommerce_currency() : null,
			'timezone'       => wp_timezone_string(),
		);
	}

	/**
	 * The pending pairing, or null.
	 *
	 * @return array<string,mixed>|null
	 */
	public static function pending(): ?array {
		$pairing = get_option( self::OPTION );
		return is_array( $pairing ) && ! empty( $pairing['pairing_id'] ) ? $pairing : null;
	}

	/**
	 * Starts a pairing: POST /connect/v1/pairings.
	 *
	 * @return array{ok:bool, authorize_url?:string, message?:string}
	 */
	public static function start(): array {
		$url = Cohort_Settings::get()['cohort_url'];
		if ( '' === $url ) {
			return array(
				'ok'      => false,
				'message' => __( 'Enter and save the Cohort URL first.', 'cohort-connect' ),
			);
		}
		$body                = self::store_facts();
		$body['platform']    = Cohort_Plugin::woocommerce_enabled() ? 'woocommerce' : 'wordpress';
		$body['return_url']  = Cohort_Plugin::admin_url( array( 'cohort_return' => '1' ) );
		$response            = Cohort_Api::request( $url . '/connect/v1/pairings', 'POST', null, (string) wp_json_encode( $body ), 15 );
		$created             = Cohort_Pairing_Protocol::read_created( $response, time() );
		if ( ! $created['ok'] ) {
			return array(
				'ok'      => false,
				/* translators: %s: the error from Cohort or the network. */
				'message' => sprintf( __( 'Cohort could not start the connection: %s', 'cohort-connect' ), $created['message'] ?? '' ),
			);
		}
		$pairing = $created['pairing'];
		// The browser is sent to authorize_url: it must be on the configured Cohort.
		$authorize = wp_parse_url( (string) $pairing['authorize_url'] );
		$expected  = wp_parse_url( $url );
		if ( ! is_array( $authorize ) || ( $authorize['host'] ?? '' ) !== ( $expected['host'] ?? '' ) || ! in_array( strtolower( $authorize['scheme'] ?? '' ), array( 'http', 'https' ), true ) ) {
			return array(
				'ok'      => false,
				'message' => __( 'Cohort answered with an authorize address on another host; the connection was not started.', 'cohort-connect' ),
			);
		}
		$pairing['cohort_url'] = $url;
		update_option( self::OPTION, $pairing, false );
		delete_option( self::NOTICE_OPTION );
		wp_clear_scheduled_hook( Cohort_Plugin::CRON_POLL );
		wp_schedule_single_event( time() + (int) $pairing['poll_interval_s'], Cohort_Plugin::CRON_POLL );
		return array(
			'ok'            => true,
			'authorize_url' => (string) $pairing['authorize_url'],
		);
	}

	/**
	 * Polls the pending pairing once and applies the answer.
	 *
	 * @return string The state: none | pending | approved | denied | expired | claimed | error.
	 */
	public static function poll(): string {
		$pairing = self::pending();
		if ( null === $pairing ) {
			return 'none';
		}
		if ( time() > (int) $pairing['expires_at'] + 60 ) {
			self::finish( Cohort_Pairing_Protocol::EXPIRED, '' );
			return Cohort_Pairing_Protocol::EXPIRED;
		}
		if ( ! add_option( self::LOCK_OPTION, time(), '', false ) ) {
			if ( time() - (int) get_option( self::LOCK_OPTION, 0 ) < 60 ) {
				return 'pending';
			}
			update_option( self::LOCK_OPTION, time(), false );
		}
		try {
			$response = Cohort_Api::request(
				$pairing['cohort_url'] . '/connect/v1/pairings/' . rawurlencode( (string) $pairing['pairing_id'] ) . '/poll',
				'POST',
				(string) $pairing['poll_secret'],
				'{}',
				10
			);
			$result   = Cohort_Pairing_Protocol::read_poll( $response );
			$state    = $result['state'];
			if ( Cohort_Pairing_Protocol::APPROVED === $state ) {
				Cohort_Connection::save( $result['connection'], (string) $pairing['cohort_url'] );
				self::finish( $state, '' );
				// Tell Cohort at once that the plugin is alive.
				Cohort_Heartbeat::enqueue();
			} elseif ( Cohort_Pairing_Protocol::PENDING === $state ) {
				$pairing['last_error'] = '';
				update_option( self::OPTION, $pairing, false );
			} elseif ( Cohort_Pairing_Protocol::ERROR === $state ) {
				// Cohort unreachable or confused: keep polling until the pairing expires.
				$pairing['last_error'] = (string) ( $result['message'] ?? '' );
				update_option( self::OPTION, $pairing, false );
			} else {
				self::finish( $state, (string) ( $result['message'] ?? '' ) );
			}
			return $state;
		} finally {
			delete_option( self::LOCK_OPTION );
		}
	}

	/**
	 * WP-Cron: polls while pending, then reschedules itself.
	 */
	public static function cron_poll(): void {
		$state   = self::poll();
		$pairing = self::pending();
		if ( null !== $pairing && ( 'pending' === $state || 'error' === $state ) ) {
			wp_schedule_single_event( time() + (int) $pairing['poll_interval_s'], Cohort_Plugin::CRON_POLL );
		}
	}

	/**
	 * Abandons the pending pairing.
	 */
	public static function cancel(): void {
		delete_option( self::OPTION );
		delete_option( self::NOTICE_OPTION );
		wp_clear_scheduled_hook( Cohort_Plugin::CRON_POLL );
	}

	/**
	 * Ends the pairing and remembers how, for the admin page.
	 *
	 * @param string $state   Final state.
	 * @param string $message Details.
	 */
	private static function finish( string $state, string $message ): void {
		$pairing = self::pending();
		delete_option( self::OPTION );
		wp_clear_scheduled_hook( Cohort_Plugin::CRON_POLL );
		// "claimed" after a concurrent poll already stored this approval is not news.
		if ( Cohort_Pairing_Protocol::CLAIMED === $state ) {
			$conn = Cohort_Connection::get();
			if ( null !== $conn && null !== $pairing && (int) ( $conn['connected_at'] ?? 0 ) >= (int) ( $pairing['started_at'] ?? 0 ) ) {
				return;
			}
		}
		update_option(
			self::NOTICE_OPTION,
			array(
				'state'   => $state,
				'message' => $message,
				'at'      => time(),
			),
			false
		);
	}

	/**
	 * The outcome of the last pairing, or null.
	 *
	 * @return array<string,mixed>|null
	 */
	public static function notice(): ?array {
		$notice = get_option( self::NOTICE_OPTION );
		return is_array( $notice ) ? $notice : null;
	}
}
