<?php
/**
 * The plugin's settings (Settings API).
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Option cohort_connect_settings: {cohort_url, consent_required, debug, woocommerce}.
 */
final class Cohort_Settings {

	const OPTION = 'cohort_connect_settings';
	const GROUP  = 'cohort_connect';

	/**
	 * Settings with defaults.
	 *
	 * @return array{cohort_url:string, consent_required:bool, debug:bool, woocommerce:bool}
	 */
	public static function get(): array {
		$saved = get_option( self::OPTION, array() );
		$saved = is_array( $saved ) ? $saved : array();
		return array(
			'cohort_url'       => isset( $saved['cohort_url'] ) ? (string) $saved['cohort_url'] : '',
			'consent_required' => ! empty( $saved['consent_required'] ),
			'debug'            => ! empty( $saved['debug'] ),
			'woocommerce'      => array_key_exists( 'woocommerce', $saved ) ? (bool) $saved['woocommerce'] : true,
		);
	}

	/**
	 * Normalises a Cohort URL: http(s), a host, any port, an optional path, no
	 * query, no trailing slash. '' when invalid.
	 *
	 * @param string $url The URL typed by the merchant.
	 */
	public static function normalize_url( string $url ): string {
		$url   = trim( $url );
		$parts = wp_parse_url( $url );
		if ( ! is_array( $parts ) || empty( $parts['host'] ) || empty( $parts['scheme'] ) ) {
			return '';
		}
		$scheme = strtolower( $parts['scheme'] );
		if ( 'http' !== $scheme && 'https' !== $scheme ) {
			return '';
		}
		if ( isset( $parts['user'] ) || isset( $parts['pass'] ) ) {
			return '';
		}
		$normalized = $scheme . '://' . strtolower( $parts['host'] );
		if ( isset( $parts['port'] ) ) {
			$normalized .= ':' . (int) $parts['port'];
		}
		if ( isset( $parts['path'] ) ) {
			$normalized .= rtrim( $parts['path'], '/' );
		}
		return $normalized;
	}

	/**
	 * Registers the setting, its section and fields.
	 */
	public static function register(): void {
		register_setting(
			self::GROUP,
			self::OPTION,
			array(
				'type'              => 'array',
				'sanitize_callback' => array( __CLASS__, 'sanitize' ),
				'show_in_rest'      => false,
				'default'           => array(),
			)
		);
		add_settings_section( 'cohort_connect_main', __( 'Settings', 'cohort-connect' ), '__return_false', Cohort_Plugin::SLUG );
		add_settings_field(
			'cohort_url',
			__( 'Cohort URL', 'cohort-connect' ),
			array( __CLASS__, 'field_url' ),
			Cohort_Plugin::SLUG,
			'cohort_connect_main',
			array( 'label_for' => 'cohort_connect_url' )
		);
		add_settings_field( 'consent_required', __( 'Consent', 'cohort-connect' ), array( __CLASS__, 'field_consent' ), Cohort_Plugin::SLUG, 'cohort_connect_main' );
		add_settings_field( 'debug', __( 'Debug mode', 'cohort-connect' ), array( __CLASS__, 'field_debug' ), Cohort_Plugin::SLUG, 'cohort_connect_main' );
		if ( Cohort_Plugin::woocommerce_active() ) {
			add_settings_field( 'woocommerce', __( 'WooCommerce features', 'cohort-connect' ), array( __CLASS__, 'field_woocommerce' ), Cohort_Plugin::SLUG, 'cohort_connect_main' );
		}
	}

	/**
	 * Sanitizes the submitted settings.
	 *
	 * @param mixed $input Submitted values.
	 * @return array<string,mixed>
	 */
	public static function sanitize( $input ): array {
		$input    = is_array( $input ) ? $input : array();
		$previous = self::get();
		$url      = isset( $input['cohort_url'] ) ? self::normalize_url( sanitize_text_field( wp_unslash( (string) $input['cohort_url'] ) ) ) : $previous['cohort_url'];
		if ( isset( $input['cohort_url'] ) && '' !== trim( (string) $input['cohort_url'] ) && '' === $url ) {
			add_settings_error( self::OPTION, 'cohort_url', __( 'The Cohort URL must look like http(s)://host or http(s)://host:port.', 'cohort-connect' ) );
			$url = $previous['cohort_url'];
		}
		return array(
			'cohort_url'       => $url,
			'consent_required' => ! empty( $input['consent_required'] ),
			'debug'            => ! empty( $input['debug'] ),
			'woocommerce'      => Cohort_Plugin::woocommerce_active() ? ! empty( $input['woocommerce'] ) : $previous['woocommerce'],
		);
	}

	/**
	 * The URL field.
	 */
	public static function field_url(): void {
		$settings = self::get();
		printf(
			'<input type="url" class="regular-text code" id="cohort_connect_url" name="%1$s[cohort_url]" value="%2$s" placeholder="https://cohort.example.com" required />',
			esc_attr( self::OPTION ),
			esc_attr( $settings['cohort_url'] )
		);
		echo '<p class="description">' . esc_html__( 'The address of your Cohort server, for example https://cohort.example.com or http://10.0.0.5:8080.', 'cohort-connect' ) . '</p>';
	}

	/**
	 * A checkbox.
	 *
	 * @param string $key   Setting key.
	 * @param string $label Label.
	 */
	private static function checkbox( string $key, string $label ): void {
		$settings = self::get();
		printf(
			'<label><input type="checkbox" name="%1$s[%2$s]" value="1" %3$s /> %4$s</label>',
			esc_attr( self::OPTION ),
			esc_attr( $key ),
			checked( $settings[ $key ], true, false ),
			esc_html( $label )
		);
	}

	/**
	 * The consent field.
	 */
	public static function field_consent(): void {
		self::checkbox( 'consent_required', __( 'Track nothing until the visitor consents (cohort.consent.grant() or the WP Consent API).', 'cohort-connect' ) );
	}

	/**
	 * The debug field.
	 */
	public static function field_debug(): void {
		self::checkbox( 'debug', __( 'Log every SDK call to the browser console.', 'cohort-connect' ) );
	}

	/**
	 * The WooCommerce field.
	 */
	public static function field_woocommerce(): void {
		self::checkbox( 'woocommerce', __( 'Add WooCommerce data (customer id, cart hash, currency) to tracking.', 'cohort-connect' ) );
	}
}
