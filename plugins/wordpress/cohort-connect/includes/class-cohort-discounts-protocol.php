<?php
/**
 * The discounts contract (connect.md §5) as pure functions: validating a new
 * discount, the redemptions `since` and cursor, and the answer shapes.
 * No WordPress or WooCommerce call here (PHPUnit tests it alone).
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Validation and encoding for Cohort_Discounts.
 */
final class Cohort_Discounts_Protocol {

	const MAX_CODE_LEN  = 50;
	const MAX_EMAILS    = 100;
	const PAGE_SIZE     = 100;
	const KIND_PERCENT  = 'percentage';
	const CURSOR_PREFIX = 'c1.';

	/**
	 * Validates the body of POST /discounts.
	 *
	 * @param mixed $input The decoded JSON body.
	 * @param int   $now   Unix time (an expiry must be in the future).
	 * @return array{ok:true, discount:array{code:string, kind:string, amount:string, min_purchase_amount:?string, expires_at:?int, usage_limit:?int, email_restrictions:array<int,string>}}|array{ok:false, field:string, message:string}
	 */
	public static function validate_new( $input, int $now ): array {
		if ( ! is_array( $input ) || ( array() !== $input && array_keys( $input ) === range( 0, count( $input ) - 1 ) ) ) {
			return self::invalid( 'body', 'The body must be a JSON object.' );
		}
		$code = $input['code'] ?? null;
		if ( ! is_string( $code ) || '' === trim( $code ) ) {
			return self::invalid( 'code', 'code is required.' );
		}
		$code = trim( $code );
		if ( strlen( $code ) > self::MAX_CODE_LEN || preg_match( '/[\x00-\x1f\x7f<>"\'\\\\]/', $code ) ) {
			return self::invalid( 'code', 'code must be at most 50 characters, without control characters, quotes, backslashes or angle brackets.' );
		}
		$kind = $input['kind'] ?? null;
		if ( self::KIND_PERCENT !== $kind ) {
			return self::invalid( 'kind', 'kind must be "percentage".' );
		}
		$amount = self::decimal( $input['amount'] ?? null );
		if ( null === $amount || (float) $amount <= 0 || (float) $amount > 100 ) {
			return self::invalid( 'amount', 'amount must be a number greater than 0 and at most 100 (a percentage).' );
		}
		$min = null;
		if ( isset( $input['minPurchaseAmount'] ) ) {
			$min = self::decimal( $input['minPurchaseAmount'] );
			if ( null === $min || (float) $min < 0 ) {
				return self::invalid( 'minPurchaseAmount', 'minPurchaseAmount must be a number of at least 0.' );
			}
		}
		$expires = null;
		if ( isset( $input['expiresAt'] ) ) {
			$expires = is_string( $input['expiresAt'] ) ? self::parse_time( $input['expiresAt'] ) : null;
			if ( null === $expires ) {
				return self::invalid( 'expiresAt', 'expiresAt must be an RFC 3339 time, e.g. 2030-12-31T23:59:59Z.' );
			}
			if ( $expires <= $now ) {
				return self::invalid( 'expiresAt', 'expiresAt must be in the future.' );
			}
		}
		$limit = null;
		if ( isset( $input['usageLimit'] ) ) {
			$limit = $input['usageLimit'];
			if ( ! is_int( $limit ) || $limit < 1 || $limit > 2147483647 ) {
				return self::invalid( 'usageLimit', 'usageLimit must be a whole number of at least 1.' );
			}
		}
		$emails = array();
		if ( isset( $input['emailRestrictions'] ) ) {
			$list = $input['emailRestrictions'];
			if ( ! is_array( $list ) || count( $list ) > self::MAX_EMAILS ) {
				return self::invalid( 'emailRestrictions', 'emailRestrictions must be a list of at most 100 email addresses.' );
			}
			foreach ( array_values( $list ) as $i => $email ) {
				if ( ! is_string( $email ) || ! self::is_email( $email ) ) {
					return self::invalid( "emailRestrictions[{$i}]", 'emailRestrictions must hold email addresses.' );
				}
				$emails[] = strtolower( trim( $email ) );
			}
		}
		return array(
			'ok'       => true,
			'discount' => array(
				'code'                => $code,
				'kind'                => self::KIND_PERCENT,
				'amount'              => $amount,
				'min_purchase_amount' => $min,
				'expires_at'          => $expires,
				'usage_limit'         => $limit,
				'email_restrictions'  => $emails,
			),
		);
	}

	/**
	 * A provider id from the path: a positive integer.
	 *
	 * @param mixed $raw The path segment.
	 */
	public static function provider_id( $raw ): ?int {
		if ( is_int( $raw ) ) {
			return $raw > 0 ? $raw : null;
		}
		if ( ! is_string( $raw ) || ! preg_match( '/^[1-9][0-9]{0,18}$/', $raw ) ) {
			return null;
		}
		return (int) $raw;
	}

	/**
	 * Parses an RFC 3339 time to Unix seconds (UTC); null when invalid.
	 *
	 * @param string $text The time.
	 */
	public static function parse_time( string $text ): ?int {
		if ( ! preg_match( '/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/', $text ) ) {
			return null;
		}
		$normalised = preg_replace( '/\.\d+/', '', strtoupper( $text ) );
		$date       = DateTimeImmutable::createFromFormat( 'Y-m-d\TH:i:sP', str_replace( ' ', 'T', (string) $normalised ) );
		if ( false === $date ) {
			return null;
		}
		$errors = DateTimeImmutable::getLastErrors();
		if ( is_array( $errors ) && ( $errors['warning_count'] > 0 || $errors['error_count'] > 0 ) ) {
			return null;
		}
		return $date->getTimestamp();
	}

	/**
	 * Unix seconds as RFC 3339 UTC (`2026-01-02T10:00:00Z`).
	 *
	 * @param int $time Unix seconds.
	 */
	public static function format_time( int $time ): string {
		return gmdate( 'Y-m-d\TH:i:s\Z', $time );
	}

	/**
	 * Encodes the position after a row: (created time in UTC as stored, order id, order item id).
	 * Opaque to Cohort; base64url of JSON.
	 *
	 * @param string $created_gmt `Y-m-d H:i:s` as in the database.
	 * @param int    $order_id    Order id.
	 * @param int    $item_id     The coupon line's order item id.
	 */
	public static function encode_cursor( string $created_gmt, int $order_id, int $item_id ): string {
		$json = (string) json_encode( array( $created_gmt, $order_id, $item_id ) );
		return self::CURSOR_PREFIX . rtrim( strtr( base64_encode( $json ), '+/', '-_' ), '=' );
	}

	/**
	 * Decodes a cursor; null when it is not one of ours.
	 *
	 * @param string $cursor The cursor.
	 * @return array{0:string, 1:int, 2:int}|null
	 */
	public static function decode_cursor( string $cursor ): ?array {
		if ( 0 !== strpos( $cursor, self::CURSOR_PREFIX ) || strlen( $cursor ) > 200 ) {
			return null;
		}
		$raw = base64_decode( strtr( substr( $cursor, strlen( self::CURSOR_PREFIX ) ), '-_', '+/' ), true );
		if ( false === $raw ) {
			return null;
		}
		$data = json_decode( $raw, true );
		if ( ! is_array( $data ) || 3 !== count( $data ) || ! isset( $data[0], $data[1], $data[2] ) ) {
			return null;
		}
		if ( ! is_string( $data[0] ) || ! preg_match( '/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/', $data[0] ) ) {
			return null;
		}
		if ( ! is_int( $data[1] ) || ! is_int( $data[2] ) || $data[1] < 0 || $data[2] < 0 ) {
			return null;
		}
		return array( $data[0], $data[1], $data[2] );
	}

	/**
	 * Reads the redemptions query: `since` (RFC 3339, required), `cursor` (optional), `limit` (1–500).
	 *
	 * @param array<string,mixed> $query The query parameters.
	 * @return array{ok:true, since:string, after:?array{0:string,1:int,2:int}, limit:int}|array{ok:false, field:string, message:string}
	 */
	public static function read_redemptions_query( array $query ): array {
		$since = $query['since'] ?? null;
		$time  = is_string( $since ) ? self::parse_time( $since ) : null;
		if ( null === $time ) {
			return self::invalid( 'since', 'since is required: an RFC 3339 time, e.g. 2026-01-01T00:00:00Z.' );
		}
		$after = null;
		if ( isset( $query['cursor'] ) && '' !== $query['cursor'] ) {
			$after = is_string( $query['cursor'] ) ? self::decode_cursor( $query['cursor'] ) : null;
			if ( null === $after ) {
				return self::invalid( 'cursor', 'cursor is not a cursor this store returned.' );
			}
		}
		$limit = self::PAGE_SIZE;
		if ( isset( $query['limit'] ) && '' !== $query['limit'] ) {
			$raw = $query['limit'];
			if ( ! ( is_int( $raw ) || ( is_string( $raw ) && preg_match( '/^[0-9]{1,4}$/', $raw ) ) ) || (int) $raw < 1 || (int) $raw > 500 ) {
				return self::invalid( 'limit', 'limit must be between 1 and 500.' );
			}
			$limit = (int) $raw;
		}
		return array(
			'ok'    => true,
			'since' => gmdate( 'Y-m-d H:i:s', $time ),
			'after' => $after,
			'limit' => $limit,
		);
	}

	/**
	 * One page of redemptions from rows fetched with limit + 1 (the extra row says there is more).
	 *
	 * @param array<int,array{created_gmt:string, order_id:int, item_id:int, redemption:array<string,mixed>}> $rows Rows in key order.
	 * @param int                                                                                          $limit Page size.
	 * @return array{redemptions:array<int,array<string,mixed>>, nextCursor:?string}
	 */
	public static function page( array $rows, int $limit ): array {
		$more = count( $rows ) > $limit;
		$rows = array_slice( $rows, 0, $limit );
		$last = end( $rows );
		return array(
			'redemptions' => array_map(
				static function ( $row ) {
					return $row['redemption'];
				},
				$rows
			),
			'nextCursor'  => ( $more && false !== $last ) ? self::encode_cursor( $last['created_gmt'], $last['order_id'], $last['item_id'] ) : null,
		);
	}

	/**
	 * A decimal number from JSON (number or numeric string) as a plain string; null when not one.
	 *
	 * @param mixed $value The value.
	 */
	public static function decimal( $value ): ?string {
		if ( is_int( $value ) ) {
			return (string) $value;
		}
		if ( is_float( $value ) && is_finite( $value ) ) {
			$text = rtrim( rtrim( number_format( $value, 6, '.', '' ), '0' ), '.' );
			return '' === $text || '-' === $text ? '0' : $text;
		}
		if ( is_string( $value ) && preg_match( '/^-?[0-9]{1,12}(\.[0-9]{1,6})?$/', $value ) ) {
			return $value;
		}
		return null;
	}

	/**
	 * A plausible email address (the same bar as WordPress's is_email, without WordPress).
	 *
	 * @param string $email The address.
	 */
	private static function is_email( string $email ): bool {
		$email = trim( $email );
		return strlen( $email ) <= 254 && false !== filter_var( $email, FILTER_VALIDATE_EMAIL );
	}

	/**
	 * A refusal naming the field.
	 *
	 * @param string $field   The field.
	 * @param string $message The message.
	 * @return array{ok:false, field:string, message:string}
	 */
	private static function invalid( string $field, string $message ): array {
		return array(
			'ok'      => false,
			'field'   => $field,
			'message' => $message,
		);
	}
}
