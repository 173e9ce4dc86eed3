<?php
/**
 * The outbox table (dbDelta, versioned) and the list of the plugin's options.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Creates and removes what the plugin stores.
 */
final class Cohort_Installer {

	const DB_VERSION        = '1';
	const DB_VERSION_OPTION = 'cohort_connect_db_version';

	/**
	 * Every option the plugin writes.
	 */
	const OPTIONS = array(
		'cohort_connect_settings',
		'cohort_connect_connection',
		'cohort_connect_tracking',
		'cohort_connect_status',
		'cohort_connect_pairing',
		'cohort_connect_pairing_notice',
		'cohort_connect_failures',
		'cohort_connect_heartbeat',
		'cohort_connect_outbox_paused',
		'cohort_connect_outbox_lock',
		'cohort_connect_poll_lock',
		'cohort_connect_db_version',
	);

	/**
	 * The outbox table's name.
	 */
	public static function table(): string {
		global $wpdb;
		return $wpdb->prefix . 'cohort_connect_outbox';
	}

	/**
	 * Creates or upgrades the table.
	 */
	public static function install(): void {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$table   = self::table();
		$charset = $wpdb->get_charset_collate();
		$sql     = "CREATE TABLE {$table} (
  id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  method varchar(10) NOT NULL,
  path varchar(2048) NOT NULL,
  body longtext NOT NULL,
  dedupe_key varchar(64) DEFAULT NULL,
  token text DEFAULT NULL,
  attempts int(10) unsigned NOT NULL DEFAULT 0,
  next_attempt_at bigint(20) unsigned NOT NULL DEFAULT 0,
  created_at bigint(20) unsigned NOT NULL DEFAULT 0,
  last_status smallint(5) unsigned DEFAULT NULL,
  last_error text DEFAULT NULL,
  PRIMARY KEY  (id),
  KEY next_attempt_at (next_attempt_at,id),
  KEY dedupe_key (dedupe_key)
) {$charset};";
		dbDelta( $sql );
		update_option( self::DB_VERSION_OPTION, self::DB_VERSION, true );
	}

	/**
	 * Removes the table and every option (uninstall).
	 */
	public static function remove_all(): void {
		global $wpdb;
		$table = self::table();
		$wpdb->query( "DROP TABLE IF EXISTS {$table}" ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared,WordPress.DB.DirectDatabaseQuery
		foreach ( self::OPTIONS as $option ) {
			delete_option( $option );
		}
		// Anything else with the plugin's prefix (older versions, transients).
		$like = $wpdb->esc_like( 'cohort_connect_' ) . '%';
		$rows = $wpdb->get_col( $wpdb->prepare( "SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE %s", $like ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
		foreach ( (array) $rows as $name ) {
			delete_option( $name );
		}
		wp_clear_scheduled_hook( 'cohort_connect_outbox' );
		wp_clear_scheduled_hook( 'cohort_connect_heartbeat' );
		wp_clear_scheduled_hook( 'cohort_connect_poll_pairing' );
		wp_clear_scheduled_hook( 'cohort_connect_sync' );
	}
}
