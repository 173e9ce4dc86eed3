<?php
/**
 * What to do with the answer to an outboxed call, and when to try again.
 * Pure PHP: no WordPress function is called here.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Exponential backoff with jitter (30 s doubling, capped at 24 h), Retry-After,
 * and the classification of answers (connect.md §2 and §4).
 */
final class Cohort_Retry_Policy {

	const DELIVERED    = 'delivered';
	const RETRY        = 'retry';
	const DROP         = 'drop';
	const UNAUTHORIZED = 'unauthorized';

	const BASE_DELAY   = 30;
	const MAX_DELAY    = 86400;
	const JITTER       = 0.2;
	const MAX_ATTEMPTS = 20;

	/**
	 * Returns a float in [0, 1).
	 *
	 * @var callable
	 */
	private $random;

	/**
	 * Constructor.
	 *
	 * @param callable|null $random Returns a float in [0, 1); mt_rand-based by default.
	 */
	public function __construct( ?callable $random = null ) {
		$this->random = $random ?? static function (): float {
			return mt_rand( 0, mt_getrandmax() - 1 ) / mt_getrandmax();
		};
	}

	/**
	 * The outcome of a call from its answer.
	 *
	 * Network errors, 429 and 5xx are retried; 2xx is delivered; 401 means the
	 * installation token is unknown or revoked; any other status is recorded and
	 * dropped (retrying a 400 would fail the same way forever).
	 *
	 * @param Cohort_Response $response The answer.
	 */
	public function classify( Cohort_Response $response ): string {
		$status = $response->status;
		if ( 0 === $status ) {
			return self::RETRY;
		}
		if ( $status >= 200 && $status < 300 ) {
			return self::DELIVERED;
		}
		if ( 401 === $status ) {
			return self::UNAUTHORIZED;
		}
		if ( 429 === $status || $status >= 500 ) {
			return self::RETRY;
		}
		return self::DROP;
	}

	/**
	 * The nominal delay before attempt number $failed_attempts + 1, without jitter:
	 * 30 s after the first failure, doubling, capped at 24 h.
	 *
	 * @param int $failed_attempts Failed attempts so far (>= 1).
	 */
	public function nominal_delay( int $failed_attempts ): int {
		$exponent = max( 0, $failed_attempts - 1 );
		if ( $exponent >= 32 ) {
			return self::MAX_DELAY;
		}
		return (int) min( self::MAX_DELAY, self::BASE_DELAY * ( 2 ** $exponent ) );
	}

	/**
	 * The delay with jitter: uniformly within ±20 % of the nominal delay, never
	 * above 24 h and never below 1 s.
	 *
	 * @param int $failed_attempts Failed attempts so far (>= 1).
	 */
	public function backoff( int $failed_attempts ): int {
		$nominal = $this->nominal_delay( $failed_attempts );
		$r       = (float) ( $this->random )();
		$r       = min( max( $r, 0.0 ), 1.0 );
		$factor  = 1.0 - self::JITTER + ( 2 * self::JITTER * $r );
		$delay   = (int) round( $nominal * $factor );
		return max( 1, min( self::MAX_DELAY, $delay ) );
	}

	/**
	 * Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date.
	 * Null when absent or unreadable; capped at 24 h; a date in the past gives 0.
	 *
	 * @param string|null $value The header value.
	 * @param int         $now   Current Unix time.
	 */
	public function parse_retry_after( ?string $value, int $now ): ?int {
		if ( null === $value ) {
			return null;
		}
		$value = trim( $value );
		if ( '' === $value ) {
			return null;
		}
		if ( preg_match( '/^\d+$/', $value ) ) {
			return (int) min( self::MAX_DELAY, (int) $value );
		}
		$utc = new DateTimeZone( 'UTC' );
		// IMF-fixdate first (RFC 9110), then the two obsolete forms.
		foreach ( array( 'D, d M Y H:i:s \G\M\T', 'l, d-M-y H:i:s \G\M\T', 'D M j H:i:s Y' ) as $format ) {
			$date = DateTimeImmutable::createFromFormat( '!' . $format, $value, $utc );
			if ( false !== $date ) {
				return (int) min( self::MAX_DELAY, max( 0, $date->getTimestamp() - $now ) );
			}
		}
		return null;
	}

	/**
	 * The delay before the next attempt of a call that just failed transiently:
	 * Retry-After when the answer carried one, else the jittered backoff.
	 *
	 * @param Cohort_Response $response        The failed answer.
	 * @param int             $failed_attempts Failed attempts including this one.
	 * @param int             $now             Current Unix time.
	 */
	public function retry_delay( Cohort_Response $response, int $failed_attempts, int $now ): int {
		if ( 429 === $response->status || 503 === $response->status ) {
			$after = $this->parse_retry_after( $response->header( 'retry-after' ), $now );
			if ( null !== $after ) {
				return max( 1, $after );
			}
		}
		return $this->backoff( $failed_attempts );
	}
}
