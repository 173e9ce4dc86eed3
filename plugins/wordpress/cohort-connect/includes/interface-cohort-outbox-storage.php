<?php
/**
 * Where outboxed calls are kept. The plugin uses a database table
 * (Cohort_Db_Storage); the tests use an in-memory implementation.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * A row is an array with the keys id, method, path, body (JSON string or ''),
 * dedupe_key (string|null), token (string|null), attempts, next_attempt_at,
 * created_at (Unix seconds), last_status (int|null) and last_error (string|null).
 */
interface Cohort_Outbox_Storage {

	/**
	 * Adds a row (without id) and returns its id. Ids grow with insertion order.
	 *
	 * @param array<string,mixed> $row The row.
	 */
	public function insert( array $row ): int;

	/**
	 * The first row that has this dedupe key, or null.
	 *
	 * @param string $key The key.
	 * @return array<string,mixed>|null
	 */
	public function find_by_key( string $key ): ?array;

	/**
	 * Up to $limit rows whose next_attempt_at <= $now, oldest id first.
	 *
	 * @param int $now   Unix time.
	 * @param int $limit Maximum rows.
	 * @return array<int,array<string,mixed>>
	 */
	public function due( int $now, int $limit ): array;

	/**
	 * Changes some fields of a row.
	 *
	 * @param int                 $id     Row id.
	 * @param array<string,mixed> $fields Fields to set.
	 */
	public function update( int $id, array $fields ): void;

	/**
	 * Deletes a row.
	 *
	 * @param int $id Row id.
	 */
	public function delete( int $id ): void;

	/**
	 * Number of rows.
	 */
	public function depth(): int;

	/**
	 * Sets next_attempt_at = $now on every row (Retry now).
	 *
	 * @param int $now Unix time.
	 */
	public function make_all_due( int $now ): void;

	/**
	 * Until when nothing may be sent (after a network error or a 429), 0 if not paused.
	 */
	public function paused_until(): int;

	/**
	 * Sets the pause.
	 *
	 * @param int $until Unix time, 0 to lift it.
	 */
	public function set_paused_until( int $until ): void;
}
