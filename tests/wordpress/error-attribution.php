<?php
/**
 * A must-use plugin of the test site only (tests/wordpress/site.sh copies it):
 * writes every PHP notice, warning or deprecation that the Cohort Connect
 * plugin causes to COHORT_TEST_PLUGIN_ERRORS_LOG, so the end-to-end test can
 * require none. WordPress 6.1 itself logs deprecations under PHP 8.2 (and
 * failed update checks offline) into debug.log, so debug.log alone cannot say
 * whose they are.
 *
 * "Caused by the plugin": raised in one of its files, or raised in a core
 * file while the innermost caller outside core is the plugin (for example
 * passing null to a core function). Core classes declared without PHP 8.1
 * return types deprecate when they are first loaded, whoever loads them:
 * those are not the plugin's.
 *
 * @package CohortConnectTests
 */

set_error_handler(
	static function ( $errno, $errstr, $file, $line ) {
		$ours = static function ( $path ) {
			return str_contains( (string) $path, '/plugins/cohort-connect/' );
		};
		$core = static function ( $path ) {
			return str_contains( (string) $path, '/wp-includes/' ) || str_contains( (string) $path, '/wp-admin/' );
		};
		$blame = $ours( $file );
		if ( ! $blame && $core( $file ) && ! str_starts_with( (string) $errstr, 'Return type of ' ) ) {
			foreach ( debug_backtrace( DEBUG_BACKTRACE_IGNORE_ARGS ) as $frame ) {
				$frame_file = (string) ( $frame['file'] ?? '' );
				if ( '' === $frame_file || $core( $frame_file ) || __FILE__ === $frame_file ) {
					continue;
				}
				$blame = $ours( $frame_file );
				break;
			}
		}
		if ( $blame && defined( 'COHORT_TEST_PLUGIN_ERRORS_LOG' ) ) {
			error_log( sprintf( '[%s] %d %s at %s:%d', gmdate( 'c' ), $errno, $errstr, $file, $line ) . PHP_EOL, 3, COHORT_TEST_PLUGIN_ERRORS_LOG );
		}
		return false;
	}
);
