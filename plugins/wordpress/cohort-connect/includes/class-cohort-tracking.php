<?php
/**
 * The storefront: Cohort's SDK, async, with the inline configuration (connect.md §4).
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Prints nothing unless connected.
 */
final class Cohort_Tracking {

	const HANDLE = 'cohort-connect-sdk';

	/**
	 * The configuration object, or null when not connected.
	 *
	 * @return array<string,mixed>|null
	 */
	public static function config(): ?array {
		$tracking = get_option( Cohort_Connection::TRACKING_OPTION );
		if ( ! is_array( $tracking ) || empty( $tracking['write_key'] ) || empty( $tracking['api_host'] ) ) {
			return null;
		}
		$settings = Cohort_Settings::get();
		$config   = array(
			'writeKey'        => (string) $tracking['write_key'],
			'apiHost'         => (string) $tracking['api_host'],
			'consentRequired' => $settings['consent_required'],
			'debug'           => $settings['debug'],
			'user'            => null,
			'woocommerce'     => null,
		);
		if ( is_user_logged_in() ) {
			$user = wp_get_current_user();
			if ( $user->exists() ) {
				$config['user'] = array(
					'id'    => (int) $user->ID,
					'email' => (string) $user->user_email,
				);
			}
		}
		if ( Cohort_Plugin::woocommerce_enabled() && function_exists( 'WC' ) ) {
			$wc                    = WC();
			$cart                  = isset( $wc->cart ) && is_object( $wc->cart ) ? $wc->cart : null;
			$config['woocommerce'] = array(
				'customer_id' => is_user_logged_in() ? (int) get_current_user_id() : 0,
				'cart_hash'   => null !== $cart && method_exists( $cart, 'get_cart_hash' ) ? (string) $cart->get_cart_hash() : '',
				'currency'    => function_exists( 'get_woocommerce_currency' ) ? (string) get_woocommerce_currency() : '',
			);
		}
		/**
		 * Filters the configuration given to Cohort's browser SDK.
		 *
		 * @param array<string,mixed> $config The configuration.
		 */
		return apply_filters( 'cohort_connect_sdk_config', $config );
	}

	/**
	 * Enqueues the SDK (async) with the configuration before it.
	 */
	public static function enqueue(): void {
		$config = self::config();
		if ( null === $config ) {
			return;
		}
		$src = rtrim( (string) $config['apiHost'], '/' ) . '/sdk/v1/cohort.js';
		// null version: no ?ver= query, so the SDK stays cacheable by its own headers.
		wp_enqueue_script(
			self::HANDLE,
			$src,
			array(),
			null, // phpcs:ignore WordPress.WP.EnqueuedResourceParameters.MissingVersion
			array(
				'strategy'  => 'async',
				'in_footer' => false,
			)
		);
		$json = wp_json_encode( $config, JSON_HEX_TAG | JSON_HEX_AMP | JSON_HEX_APOS | JSON_HEX_QUOT | JSON_UNESCAPED_SLASHES );
		wp_add_inline_script( self::HANDLE, 'window.cohortConfig = ' . $json . ';', 'before' );
	}

	/**
	 * Adds async to the tag on WordPress < 6.3 (no loading strategies there).
	 *
	 * @param string $tag    The script tag.
	 * @param string $handle The handle.
	 */
	public static function async_tag( $tag, $handle ) {
		if ( self::HANDLE !== $handle || ! is_string( $tag ) || str_contains( $tag, ' async' ) ) {
			return $tag;
		}
		return str_replace( ' src=', ' async src=', $tag );
	}
}
