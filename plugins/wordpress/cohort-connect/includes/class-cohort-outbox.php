<?php
/**
 * The outbox: every call to Cohort except pairing is queued here and sent
 * later, outside the shopper's request. Pure PHP over a storage interface.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Delivery rules:
 * - due calls are sent oldest first;
 * - 2xx: delivered and removed;
 * - network error or 429: the call is rescheduled (backoff or Retry-After) and
 *   the whole outbox pauses until then, since every other call would fail too;
 * - 5xx: the call is rescheduled with backoff; the others go on (three 5xx in a
 *   row end the run);
 * - 401: the installation is unknown or revoked: the run stops and the report
 *   says so (the plugin then shows "disconnected" and stops sending); the calls
 *   stay queued for a reconnect;
 * - any other status: recorded as a failure and dropped;
 * - a call still failing after MAX_ATTEMPTS attempts is recorded and dropped.
 * Calls made with their own token (the revocation of an old installation) are
 * sent even when disconnected, and a 401 for them means "already revoked".
 */
final class Cohort_Outbox {

	const MAX_CONSECUTIVE_5XX = 3;

	/**
	 * Storage.
	 *
	 * @var Cohort_Outbox_Storage
	 */
	private Cohort_Outbox_Storage $storage;

	/**
	 * Retry policy.
	 *
	 * @var Cohort_Retry_Policy
	 */
	private Cohort_Retry_Policy $policy;

	/**
	 * Failure log (the caller saves it after a run).
	 *
	 * @var Cohort_Failure_Log
	 */
	private Cohort_Failure_Log $log;

	/**
	 * Constructor.
	 *
	 * @param Cohort_Outbox_Storage $storage Storage.
	 * @param Cohort_Retry_Policy   $policy  Retry policy.
	 * @param Cohort_Failure_Log    $log     Failure log.
	 */
	public function __construct( Cohort_Outbox_Storage $storage, Cohort_Retry_Policy $policy, Cohort_Failure_Log $log ) {
		$this->storage = $storage;
		$this->policy  = $policy;
		$this->log     = $log;
	}

	/**
	 * Queues a call. With a dedupe key, a queued call with the same key is
	 * replaced (its body changes, its place and schedule stay): used by the
	 * heartbeat, where only the latest matters. With `$due_at` the call is
	 * not sent before then, and a replaced call takes the new time: a
	 * debounce (a cart's `Cart Updated` waits for the shopper to pause).
	 *
	 * @param string                   $method     HTTP method.
	 * @param string                   $path       Path under Cohort's URL, e.g. /connect/v1/heartbeat.
	 * @param array<string,mixed>|null $body       JSON body or null.
	 * @param int                      $now        Unix time.
	 * @param string|null              $dedupe_key Replace a queued call with this key.
	 * @param string|null              $token      Use this token instead of the current one.
	 * @param int|null                 $due_at     Not before this Unix time.
	 * @return int The row id.
	 */
	public function enqueue( string $method, string $path, ?array $body, int $now, ?string $dedupe_key = null, ?string $token = null, ?int $due_at = null ): int {
		$encoded = null === $body ? '' : (string) json_encode( $body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE );
		if ( null !== $dedupe_key ) {
			$existing = $this->storage->find_by_key( $dedupe_key );
			if ( null !== $existing ) {
				$fields = array(
					'method' => strtoupper( $method ),
					'path'   => $path,
					'body'   => $encoded,
					'token'  => $token,
				);
				if ( null !== $due_at ) {
					$fields['next_attempt_at'] = $due_at;
				}
				$this->storage->update( (int) $existing['id'], $fields );
				return (int) $existing['id'];
			}
		}
		return $this->storage->insert(
			array(
				'method'          => strtoupper( $method ),
				'path'            => $path,
				'body'            => $encoded,
				'dedupe_key'      => $dedupe_key,
				'token'           => $token,
				'attempts'        => 0,
				'next_attempt_at' => $due_at ?? $now,
				'created_at'      => $now,
				'last_status'     => null,
				'last_error'      => null,
			)
		);
	}

	/**
	 * Sends due calls.
	 *
	 * @param callable $send      function (array $row): Cohort_Response — makes the HTTP call.
	 * @param int      $now       Unix time.
	 * @param bool     $connected Whether the plugin has a working connection.
	 * @param int      $limit     Maximum calls to attempt.
	 */
	public function run( callable $send, int $now, bool $connected, int $limit = 25 ): Cohort_Outbox_Report {
		$report = new Cohort_Outbox_Report();
		$paused = $this->storage->paused_until();
		if ( $paused > $now ) {
			$report->paused_until = $paused;
			return $report;
		}
		if ( $paused > 0 ) {
			$this->storage->set_paused_until( 0 );
		}

		$consecutive_5xx = 0;
		foreach ( $this->storage->due( $now, $limit ) as $row ) {
			$own_token = isset( $row['token'] ) && null !== $row['token'] && '' !== $row['token'];
			if ( ! $connected && ! $own_token ) {
				continue;
			}
			$response = $send( $row );
			if ( ! $response instanceof Cohort_Response ) {
				$response = Cohort_Response::network_error( 'transport returned no response' );
			}
			$call    = strtoupper( (string) $row['method'] ) . ' ' . (string) $row['path'];
			$outcome = $this->policy->classify( $response );

			if ( Cohort_Retry_Policy::DELIVERED === $outcome || ( Cohort_Retry_Policy::UNAUTHORIZED === $outcome && $own_token ) ) {
				$this->storage->delete( (int) $row['id'] );
				$report->delivered[] = array( $row, $response );
				$consecutive_5xx     = 0;
				continue;
			}

			if ( Cohort_Retry_Policy::UNAUTHORIZED === $outcome ) {
				$this->log->record( $now, $call, $response->status, $response->describe(), $outcome );
				$this->storage->update(
					(int) $row['id'],
					array(
						'last_status' => $response->status,
						'last_error'  => $response->describe(),
					)
				);
				$report->unauthorized = true;
				return $report;
			}

			if ( Cohort_Retry_Policy::DROP === $outcome ) {
				$this->log->record( $now, $call, $response->status, $response->describe(), $outcome );
				$this->storage->delete( (int) $row['id'] );
				++$report->dropped;
				$consecutive_5xx = 0;
				continue;
			}

			// Transient failure.
			$attempts = (int) $row['attempts'] + 1;
			if ( $attempts >= Cohort_Retry_Policy::MAX_ATTEMPTS ) {
				$this->log->record( $now, $call, $response->status, sprintf( 'gave up after %d attempts: %s', $attempts, $response->describe() ), Cohort_Retry_Policy::DROP );
				$this->storage->delete( (int) $row['id'] );
				++$report->dropped;
			} else {
				$delay = $this->policy->retry_delay( $response, $attempts, $now );
				$this->log->record( $now, $call, $response->status, $response->describe(), $outcome );
				$this->storage->update(
					(int) $row['id'],
					array(
						'attempts'        => $attempts,
						'next_attempt_at' => $now + $delay,
						'last_status'     => $response->status,
						'last_error'      => $response->describe(),
					)
				);
				++$report->retried;
				if ( 0 === $response->status || 429 === $response->status ) {
					$this->storage->set_paused_until( $now + $delay );
					$report->paused_until = $now + $delay;
					return $report;
				}
			}
			if ( $response->status >= 500 ) {
				++$consecutive_5xx;
				if ( $consecutive_5xx >= self::MAX_CONSECUTIVE_5XX ) {
					return $report;
				}
			}
		}
		return $report;
	}

	/**
	 * Makes every queued call due at once and lifts any pause ("Retry now").
	 *
	 * @param int $now Unix time.
	 */
	public function retry_now( int $now ): void {
		$this->storage->make_all_due( $now );
		$this->storage->set_paused_until( 0 );
	}

	/**
	 * Number of queued calls.
	 */
	public function depth(): int {
		return $this->storage->depth();
	}

	/**
	 * The failure log.
	 */
	public function log(): Cohort_Failure_Log {
		return $this->log;
	}
}
