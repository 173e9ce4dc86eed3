<?php
/**
 * The `recover_url` token: the cart's lines, signed, so following the link
 * rebuilds the cart on any device without a server-side record and without
 * anything personal in the URL. Pure: PHPUnit checks it in plain PHP.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Encodes and verifies cart-recovery tokens: base64url(JSON lines) "." base64url(HMAC-SHA256).
 */
final class Cohort_Recover_Link {

	/**
	 * At most this many lines are carried; a longer cart is cut (the link still rebuilds the first ones).
	 */
	const MAX_LINES = 50;

	/**
	 * The token for these lines.
	 *
	 * @param array<int,array<string,mixed>> $items Lines with product_id, variation_id, quantity.
	 * @param string                         $key   The site's secret key.
	 */
	public static function encode( array $items, string $key ): string {
		$lines = array();
		foreach ( array_slice( $items, 0, self::MAX_LINES ) as $item ) {
			$lines[] = array(
				(int) ( $item['product_id'] ?? 0 ),
				(int) ( $item['variation_id'] ?? 0 ),
				max( 1, (int) ( $item['quantity'] ?? 1 ) ),
			);
		}
		$payload = self::b64( (string) json_encode( $lines ) );
		return $payload . '.' . self::b64( hash_hmac( 'sha256', $payload, $key, true ) );
	}

	/**
	 * The lines of a token, or null when it is malformed or not signed with `$key`.
	 *
	 * @param string $token The token from the URL.
	 * @param string $key   The site's secret key.
	 * @return array<int,array{product_id:int,variation_id:int,quantity:int}>|null
	 */
	public static function decode( string $token, string $key ): ?array {
		$parts = explode( '.', $token );
		if ( 2 !== count( $parts ) || '' === $parts[0] ) {
			return null;
		}
		$expected = self::b64( hash_hmac( 'sha256', $parts[0], $key, true ) );
		if ( ! hash_equals( $expected, $parts[1] ) ) {
			return null;
		}
		$json  = base64_decode( strtr( $parts[0], '-_', '+/' ), true );
		$lines = false === $json ? null : json_decode( $json, true );
		if ( ! is_array( $lines ) || array() === $lines || count( $lines ) > self::MAX_LINES ) {
			return null;
		}
		$items = array();
		foreach ( $lines as $line ) {
			if ( ! is_array( $line ) || 3 !== count( $line ) ) {
				return null;
			}
			list( $product, $variation, $quantity ) = array_map( 'intval', array_values( $line ) );
			if ( $product <= 0 || $variation < 0 || $quantity <= 0 ) {
				return null;
			}
			$items[] = array(
				'product_id'   => $product,
				'variation_id' => $variation,
				'quantity'     => $quantity,
			);
		}
		return $items;
	}

	/**
	 * Unpadded base64url.
	 *
	 * @param string $bytes Bytes.
	 */
	private static function b64( string $bytes ): string {
		return rtrim( strtr( base64_encode( $bytes ), '+/', '-_' ), '=' );
	}
}
