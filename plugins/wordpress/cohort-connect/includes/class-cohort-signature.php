<?php
/**
 * Verifying the signature of Cohort's calls to the store (connect.md §5).
 * Pure PHP: no WordPress function is called here, so PHPUnit tests it alone.
 *
 *   X-Cohort-Timestamp: <unix seconds>
 *   X-Cohort-Nonce:     <random, 16+ chars>
 *   X-Cohort-Signature: v1=<hex HMAC-SHA256(signing_secret,
 *                         ts \n nonce \n METHOD \n REQUEST_URI \n hex(SHA256(body)))>
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Canonical string, HMAC and the checks, in the order: header format,
 * timestamp window, signature (constant time), then the nonce (claimed last,
 * so unsigned calls cannot fill the nonce store).
 */
final class Cohort_Signature {

	const TOLERANCE_S   = 300;
	const MIN_NONCE_LEN = 16;
	const MAX_NONCE_LEN = 128;
	const PREFIX        = 'v1=';

	const OK            = 'ok';
	const MISSING       = 'missing_headers';
	const BAD_TIMESTAMP = 'bad_timestamp';
	const STALE         = 'stale_timestamp';
	const BAD_NONCE     = 'bad_nonce';
	const BAD_HEADER    = 'bad_signature_header';
	const MISMATCH      = 'signature_mismatch';
	const REPLAY        = 'replayed_nonce';
	const NO_SECRET     = 'not_connected';

	/**
	 * Lines joined with "\n" (the shape of every signed string).
	 *
	 * @param array<int,string> $parts Parts.
	 */
	public static function join_lines( array $parts ): string {
		return implode( "\n", $parts );
	}

	/**
	 * Lowercase hex HMAC-SHA256.
	 *
	 * @param string $secret  Key.
	 * @param string $message Message.
	 */
	public static function hmac_hex( string $secret, string $message ): string {
		return hash_hmac( 'sha256', $message, $secret );
	}

	/**
	 * The string Cohort signs.
	 *
	 * @param string $timestamp   X-Cohort-Timestamp as sent.
	 * @param string $nonce       X-Cohort-Nonce.
	 * @param string $method      HTTP method.
	 * @param string $request_uri Path and query exactly as requested.
	 * @param string $body        Raw body ('' when none).
	 */
	public static function canonical( string $timestamp, string $nonce, string $method, string $request_uri, string $body ): string {
		return self::join_lines( array( $timestamp, $nonce, strtoupper( $method ), $request_uri, hash( 'sha256', $body ) ) );
	}

	/**
	 * The X-Cohort-Signature value for a call.
	 *
	 * @param string $secret      The installation's signing secret.
	 * @param string $timestamp   Timestamp.
	 * @param string $nonce       Nonce.
	 * @param string $method      Method.
	 * @param string $request_uri Path and query.
	 * @param string $body        Body.
	 */
	public static function header( string $secret, string $timestamp, string $nonce, string $method, string $request_uri, string $body ): string {
		return self::PREFIX . self::hmac_hex( $secret, self::canonical( $timestamp, $nonce, $method, $request_uri, $body ) );
	}

	/**
	 * Checks one call.
	 *
	 * @param string|null $secret      Signing secret; null or '' when the site is not connected.
	 * @param string|null $timestamp   X-Cohort-Timestamp.
	 * @param string|null $nonce       X-Cohort-Nonce.
	 * @param string|null $signature   X-Cohort-Signature.
	 * @param string      $method      Method.
	 * @param string      $request_uri REQUEST_URI.
	 * @param string      $body        Raw body.
	 * @param int         $now         Unix time.
	 * @param callable    $claim_nonce fn(string $nonce, int $expires_at): bool, true when the nonce was
	 *                                 not seen before (and is now remembered until $expires_at).
	 * @return string One of the constants; self::OK when the call may proceed.
	 */
	public static function verify( ?string $secret, ?string $timestamp, ?string $nonce, ?string $signature, string $method, string $request_uri, string $body, int $now, callable $claim_nonce ): string {
		if ( null === $secret || '' === $secret ) {
			return self::NO_SECRET;
		}
		if ( null === $timestamp || null === $nonce || null === $signature || '' === $timestamp || '' === $nonce || '' === $signature ) {
			return self::MISSING;
		}
		if ( ! preg_match( '/^[0-9]{1,12}$/', $timestamp ) ) {
			return self::BAD_TIMESTAMP;
		}
		if ( abs( $now - (int) $timestamp ) > self::TOLERANCE_S ) {
			return self::STALE;
		}
		$len = strlen( $nonce );
		if ( $len < self::MIN_NONCE_LEN || $len > self::MAX_NONCE_LEN || ! preg_match( '/^[A-Za-z0-9_.~-]+$/', $nonce ) ) {
			return self::BAD_NONCE;
		}
		if ( ! preg_match( '/^v1=[0-9a-f]{64}$/', $signature ) ) {
			return self::BAD_HEADER;
		}
		$expected = self::header( $secret, $timestamp, $nonce, $method, $request_uri, $body );
		if ( ! hash_equals( $expected, $signature ) ) {
			return self::MISMATCH;
		}
		// Remembered past both ends of the window: a nonce can never be reused while its timestamp is valid.
		if ( ! $claim_nonce( $nonce, (int) $timestamp + self::TOLERANCE_S + 1 ) ) {
			return self::REPLAY;
		}
		return self::OK;
	}
}
