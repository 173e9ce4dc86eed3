<?php
/**
 * Must-use plugin of the WooCommerce test sites (tests/wordpress/site.sh woocommerce).
 *
 * A test machine has no MTA, and WooCommerce's webhooks refuse loopback
 * receivers and uncommon ports: these filters let a real WooCommerce deliver to
 * the Cohort the test started on 127.0.0.1, synchronously, so a test does not
 * have to run Action Scheduler to see a delivery.
 *
 * @package CohortConnectTests
 */

add_filter( 'pre_wp_mail', '__return_false' );

add_filter(
	'http_request_host_is_external',
	static function ( $external, $host ) {
		return $external || '127.0.0.1' === $host || 'localhost' === $host;
	},
	10,
	2
);

add_filter(
	'http_allowed_safe_ports',
	static function ( $ports ) {
		$ports = is_array( $ports ) ? $ports : array( 80, 443, 8080 );
		// Any port: the receiver's is picked at random by the test.
		return array_merge( $ports, range( 1024, 65535 ) );
	}
);

add_filter( 'woocommerce_webhook_deliver_async', '__return_false' );
