<?php
/**
 * The bounded log of failed calls shown on the admin page, with a count of the
 * failures of the last 24 hours for the heartbeat. Pure PHP.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Newest entry first; at most MAX entries; failures counted in hourly buckets.
 */
final class Cohort_Failure_Log {

	const MAX = 50;

	/**
	 * Entries: {time, call, status, message, outcome}.
	 *
	 * @var array<int,array<string,mixed>>
	 */
	private array $entries = array();

	/**
	 * Failures per hour: Unix hour start => count.
	 *
	 * @var array<int,int>
	 */
	private array $hours = array();

	/**
	 * Restores a log saved with to_array().
	 *
	 * @param mixed $data Saved data (anything unreadable gives an empty log).
	 */
	public static function from_array( $data ): self {
		$log = new self();
		if ( is_array( $data ) ) {
			if ( isset( $data['entries'] ) && is_array( $data['entries'] ) ) {
				$log->entries = array_values( array_slice( array_filter( $data['entries'], 'is_array' ), 0, self::MAX ) );
			}
			if ( isset( $data['hours'] ) && is_array( $data['hours'] ) ) {
				foreach ( $data['hours'] as $hour => $count ) {
					$log->hours[ (int) $hour ] = (int) $count;
				}
			}
		}
		return $log;
	}

	/**
	 * The data to save.
	 *
	 * @return array<string,mixed>
	 */
	public function to_array(): array {
		return array(
			'entries' => $this->entries,
			'hours'   => $this->hours,
		);
	}

	/**
	 * Records a failure.
	 *
	 * @param int    $time    Unix time.
	 * @param string $call    "METHOD /path".
	 * @param int    $status  HTTP status, 0 for a network error.
	 * @param string $message What went wrong.
	 * @param string $outcome retry | drop | unauthorized.
	 */
	public function record( int $time, string $call, int $status, string $message, string $outcome ): void {
		array_unshift(
			$this->entries,
			array(
				'time'    => $time,
				'call'    => $call,
				'status'  => $status,
				'message' => $message,
				'outcome' => $outcome,
			)
		);
		if ( count( $this->entries ) > self::MAX ) {
			$this->entries = array_slice( $this->entries, 0, self::MAX );
		}
		$hour                 = $time - ( $time % 3600 );
		$this->hours[ $hour ] = ( $this->hours[ $hour ] ?? 0 ) + 1;
		$this->prune( $time );
	}

	/**
	 * Entries, newest first.
	 *
	 * @return array<int,array<string,mixed>>
	 */
	public function entries(): array {
		return $this->entries;
	}

	/**
	 * Failures in the 24 hours before $now (hour resolution).
	 *
	 * @param int $now Unix time.
	 */
	public function count_24h( int $now ): int {
		$this->prune( $now );
		return array_sum( $this->hours );
	}

	/**
	 * The newest failure's message, or null.
	 */
	public function last_error(): ?string {
		return isset( $this->entries[0] ) ? (string) $this->entries[0]['message'] : null;
	}

	/**
	 * Forgets everything.
	 */
	public function clear(): void {
		$this->entries = array();
		$this->hours   = array();
	}

	/**
	 * Drops buckets older than 24 hours.
	 *
	 * @param int $now Unix time.
	 */
	private function prune( int $now ): void {
		$oldest = $now - ( $now % 3600 ) - 23 * 3600;
		foreach ( array_keys( $this->hours ) as $hour ) {
			if ( $hour < $oldest ) {
				unset( $this->hours[ $hour ] );
			}
		}
	}
}
