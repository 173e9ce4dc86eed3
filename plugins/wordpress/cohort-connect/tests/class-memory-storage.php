<?php
/**
 * In-memory outbox storage for the tests.
 *
 * @package CohortConnect
 */

/**
 * Keeps rows in an array keyed by id.
 */
final class Memory_Storage implements Cohort_Outbox_Storage {

	/**
	 * Rows by id.
	 *
	 * @var array<int,array<string,mixed>>
	 */
	public array $rows = array();

	/**
	 * Next id.
	 *
	 * @var int
	 */
	private int $next_id = 1;

	/**
	 * Pause.
	 *
	 * @var int
	 */
	private int $paused = 0;

	public function insert( array $row ): int {
		$id                = $this->next_id++;
		$row['id']         = $id;
		$this->rows[ $id ] = $row;
		return $id;
	}

	public function find_by_key( string $key ): ?array {
		foreach ( $this->rows as $row ) {
			if ( ( $row['dedupe_key'] ?? null ) === $key ) {
				return $row;
			}
		}
		return null;
	}

	public function due( int $now, int $limit ): array {
		$due = array_filter(
			$this->rows,
			static function ( array $row ) use ( $now ): bool {
				return $row['next_attempt_at'] <= $now;
			}
		);
		ksort( $due );
		return array_values( array_slice( $due, 0, $limit, true ) );
	}

	public function update( int $id, array $fields ): void {
		if ( isset( $this->rows[ $id ] ) ) {
			$this->rows[ $id ] = array_merge( $this->rows[ $id ], $fields );
		}
	}

	public function delete( int $id ): void {
		unset( $this->rows[ $id ] );
	}

	public function depth(): int {
		return count( $this->rows );
	}

	public function make_all_due( int $now ): void {
		foreach ( $this->rows as $id => $row ) {
			$this->rows[ $id ]['next_attempt_at'] = $now;
		}
	}

	public function paused_until(): int {
		return $this->paused;
	}

	public function set_paused_until( int $until ): void {
		$this->paused = $until;
	}
}
