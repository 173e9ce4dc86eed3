<?php
/**
 * Uninstall: revokes the installation on Cohort, then deletes every option and
 * the outbox table (on every site of a network).
 *
 * @package CohortConnect
 */

if ( ! defined( 'WP_UNINSTALL_PLUGIN' ) ) {
	exit;
}

if ( ! defined( 'COHORT_CONNECT_VERSION' ) ) {
	define( 'COHORT_CONNECT_VERSION', '0.1.0' );
}
require_once __DIR__ . '/includes/class-cohort-installer.php';
require_once __DIR__ . '/includes/class-cohort-discounts.php';

/**
 * Revokes and removes everything on the current site.
 */
function cohort_connect_uninstall_site(): void {
	global $wpdb;
	$revocations = array();
	$conn        = get_option( 'cohort_connect_connection' );
	if ( is_array( $conn ) && ! empty( $conn['installation_token'] ) && ! empty( $conn['cohort_url'] ) ) {
		$revocations[] = array( $conn['cohort_url'] . '/connect/v1/installation', (string) $conn['installation_token'] );
	}
	// Revocations of earlier installations still waiting in the outbox.
	$table = $wpdb->prefix . 'cohort_connect_outbox';
	if ( $wpdb->get_var( $wpdb->prepare( 'SHOW TABLES LIKE %s', $wpdb->esc_like( $table ) ) ) === $table ) { // phpcs:ignore WordPress.DB.DirectDatabaseQuery
		$rows = $wpdb->get_results( "SELECT path, token FROM {$table} WHERE method = 'DELETE' AND token IS NOT NULL AND token <> ''", ARRAY_A ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery,WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		foreach ( (array) $rows as $row ) {
			$revocations[] = array( (string) $row['path'], (string) $row['token'] );
		}
	}
	foreach ( $revocations as $revocation ) {
		wp_remote_request(
			$revocation[0],
			array(
				'method'      => 'DELETE',
				'timeout'     => 5,
				'redirection' => 0,
				'headers'     => array(
					'Authorization' => 'Bearer ' . $revocation[1],
					'User-Agent'    => 'CohortConnect/' . COHORT_CONNECT_VERSION . ' (uninstall)',
				),
			)
		);
	}
	Cohort_Installer::remove_all();
	Cohort_Discounts::uninstall();
}

if ( is_multisite() ) {
	foreach ( get_sites( array( 'fields' => 'ids' ) ) as $cohort_site_id ) {
		switch_to_blog( (int) $cohort_site_id );
		cohort_connect_uninstall_site();
		restore_current_blog();
	}
} else {
	cohort_connect_uninstall_site();
}
