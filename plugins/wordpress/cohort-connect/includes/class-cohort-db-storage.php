<?php
/**
 * Outbox storage in the plugin's table.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

// phpcs:disable WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- the plugin's own table, never cached.

/**
 * Implements Cohort_Outbox_Storage with $wpdb.
 */
final class Cohort_Db_Storage implements Cohort_Outbox_Storage {

	const PAUSE_OPTION = 'cohort_connect_outbox_paused';

	/**
	 * Casts a database row to the outbox's row shape.
	 *
	 * @param array<string,mixed> $row Row.
	 * @return array<string,mixed>
	 */
	private static function cast( array $row ): array {
		$row['id']              = (int) $row['id'];
		$row['attempts']        = (int) $row['attempts'];
		$row['next_attempt_at'] = (int) $row['next_attempt_at'];
		$row['created_at']      = (int) $row['created_at'];
		$row['last_status']     = null === $row['last_status'] ? null : (int) $row['last_status'];
		return $row;
	}

	public function insert( array $row ): int { // phpcs:ignore Squiz.Commenting.FunctionComment.Missing
		global $wpdb;
		$wpdb->insert( Cohort_Installer::table(), $row );
		return (int) $wpdb->insert_id;
	}

	public function find_by_key( string $key ): ?array { // phpcs:ignore Squiz.Commenting.FunctionComment.Missing
		global $wpdb;
		$table = Cohort_Installer::table();
		$row   = $wpdb->get_row( $wpdb->prepare( "SELECT * FROM {$table} WHERE dedupe_key = %s ORDER BY id LIMIT 1", $key ), ARRAY_A );
		return is_array( $row ) ? self::cast( $row ) : null;
	}

	public function due( int $now, int $limit ): array { // phpcs:ignore Squiz.Commenting.FunctionComment.Missing
		global $wpdb;
		$table = Cohort_Installer::table();
		$rows  = $wpdb->get_results( $wpdb->prepare( "SELECT * FROM {$table} WHERE next_attempt_at <= %d ORDER BY id LIMIT %d", $now, $limit ), ARRAY_A );
		return array_map( array( __CLASS__, 'cast' ), is_array( $rows ) ? $rows : array() );
	}

	public function update( int $id, array $fields ): void { // phpcs:ignore Squiz.Commenting.FunctionComment.Missing
		global $wpdb;
		$wpdb->update( Cohort_Installer::table(), $fields, array( 'id' => $id ) );
	}

	public function delete( int $id ): void { // phpcs:ignore Squiz.Commenting.FunctionComment.Missing
		global $wpdb;
		$wpdb->delete( Cohort_Installer::table(), array( 'id' => $id ), array( '%d' ) );
	}

	public function depth(): int { // phpcs:ignore Squiz.Commenting.FunctionComment.Missing
		global $wpdb;
		$table = Cohort_Installer::table();
		return (int) $wpdb->get_var( "SELECT COUNT(*) FROM {$table}" );
	}

	public function make_all_due( int $now ): void { // phpcs:ignore Squiz.Commenting.FunctionComment.Missing
		global $wpdb;
		$table = Cohort_Installer::table();
		$wpdb->query( $wpdb->prepare( "UPDATE {$table} SET next_attempt_at = %d", $now ) );
	}

	public function paused_until(): int { // phpcs:ignore Squiz.Commenting.FunctionComment.Missing
		return (int) get_option( self::PAUSE_OPTION, 0 );
	}

	public function set_paused_until( int $until ): void { // phpcs:ignore Squiz.Commenting.FunctionComment.Missing
		update_option( self::PAUSE_OPTION, $until, false );
	}

	/**
	 * Deletes the queued calls of the current installation (those without their own token).
	 */
	public function purge_current(): void {
		global $wpdb;
		$table = Cohort_Installer::table();
		$wpdb->query( "DELETE FROM {$table} WHERE token IS NULL OR token = ''" );
	}
}
