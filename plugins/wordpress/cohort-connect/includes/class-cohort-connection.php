<?php
/**
 * The stored connection to Cohort.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Options:
 * - cohort_connect_connection (not autoloaded): cohort_url, installation_id,
 *   installation_token, signing_secret, write_key, organization, connected_at;
 * - cohort_connect_tracking (autoloaded, read on every page): write_key, api_host;
 * - cohort_connect_status: state connected | disconnected | revoked, message, at.
 */
final class Cohort_Connection {

	const OPTION          = 'cohort_connect_connection';
	const TRACKING_OPTION = 'cohort_connect_tracking';
	const STATUS_OPTION   = 'cohort_connect_status';

	/**
	 * The connection, or null when not connected.
	 *
	 * @return array<string,mixed>|null
	 */
	public static function get(): ?array {
		$conn = get_option( self::OPTION );
		if ( ! is_array( $conn ) || empty( $conn['installation_token'] ) || empty( $conn['cohort_url'] ) ) {
			return null;
		}
		return $conn;
	}

	/**
	 * Whether calls may be sent.
	 */
	public static function is_connected(): bool {
		return null !== self::get();
	}

	/**
	 * Whether store data (products, customers, orders, carts) goes to Cohort:
	 * connected as a WooCommerce store, with WooCommerce active and its
	 * features on. A plain WordPress connection sends none until upgraded.
	 */
	public static function commerce(): bool {
		$conn = self::get();
		return null !== $conn && 'woocommerce' === ( $conn['platform'] ?? 'woocommerce' ) && Cohort_Plugin::woocommerce_enabled();
	}

	/**
	 * The status shown on the admin page.
	 *
	 * @return array{state:string, message:string, at:int, organization:string}
	 */
	public static function status(): array {
		$status = get_option( self::STATUS_OPTION );
		$status = is_array( $status ) ? $status : array();
		return array(
			'state'        => isset( $status['state'] ) ? (string) $status['state'] : 'never',
			'message'      => isset( $status['message'] ) ? (string) $status['message'] : '',
			'at'           => isset( $status['at'] ) ? (int) $status['at'] : 0,
			'organization' => isset( $status['organization'] ) ? (string) $status['organization'] : '',
		);
	}

	/**
	 * Stores an approved connection.
	 *
	 * @param array<string,mixed> $connection From Cohort_Pairing_Protocol::read_poll().
	 * @param string              $cohort_url Cohort's URL.
	 */
	public static function save( array $connection, string $cohort_url ): void {
		$connection['cohort_url']   = $cohort_url;
		$connection['connected_at'] = time();
		// What Cohort was told at pairing: a plain WordPress connection is offered the upgrade when WooCommerce arrives.
		$connection['platform'] = $connection['platform'] ?? ( Cohort_Plugin::woocommerce_enabled() ? 'woocommerce' : 'wordpress' );
		update_option( self::OPTION, $connection, false );
		update_option(
			self::TRACKING_OPTION,
			array(
				'write_key' => (string) $connection['write_key'],
				'api_host'  => $cohort_url,
			),
			true
		);
		update_option(
			self::STATUS_OPTION,
			array(
				'state'        => 'connected',
				'message'      => '',
				'at'           => time(),
				'organization' => (string) ( $connection['organization']['name'] ?? '' ),
			),
			false
		);
	}

	/**
	 * Forgets the connection: nothing is tracked or sent afterwards.
	 *
	 * @param string $state   disconnected (by the merchant) | revoked (Cohort answered 401).
	 * @param string $message Shown on the admin page.
	 */
	public static function clear( string $state, string $message = '' ): void {
		$conn = self::get();
		delete_option( self::OPTION );
		delete_option( self::TRACKING_OPTION );
		wp_clear_scheduled_hook( Cohort_Plugin::CRON_POLL );
		update_option(
			self::STATUS_OPTION,
			array(
				'state'        => $state,
				'message'      => $message,
				'at'           => time(),
				'organization' => (string) ( $conn['organization']['name'] ?? '' ),
			),
			false
		);
	}
}
