<?php
/**
 * The heartbeat (connect.md §2), every 5 minutes from WP-Cron, through the outbox.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Queues POST /connect/v1/heartbeat (only the latest one waits in the outbox) and sends it.
 */
final class Cohort_Heartbeat {

	/**
	 * The heartbeat body.
	 *
	 * @return array<string,mixed>
	 */
	public static function payload(): array {
		$facts = Cohort_Pairing::store_facts();
		$log   = Cohort_Api::failure_log();
		$now   = time();
		return array(
			'plugin_version' => $facts['plugin_version'],
			'wp_version'     => $facts['wp_version'],
			'wc_version'     => $facts['wc_version'],
			'php_version'    => $facts['php_version'],
			'store_url'      => $facts['store_url'],
			'site_name'      => $facts['site_name'],
			'currency'       => $facts['currency'],
			'timezone'       => $facts['timezone'],
			'outbox_depth'   => Cohort_Api::storage()->depth(),
			'failures_24h'   => $log->count_24h( $now ),
			'last_error'     => $log->last_error(),
		);
	}

	/**
	 * Queues a heartbeat (replacing a queued one).
	 */
	public static function enqueue(): void {
		Cohort_Api::enqueue( 'POST', '/connect/v1/heartbeat', self::payload(), 'heartbeat' );
	}

	/**
	 * WP-Cron: queue and send at once (cron already runs outside any visitor's request).
	 */
	public static function run(): void {
		if ( ! Cohort_Connection::is_connected() ) {
			return;
		}
		self::enqueue();
		Cohort_Api::flush();
	}
}
