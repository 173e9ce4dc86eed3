<?php
/**
 * Where a store sync is (connect.md §2 sync runs): which command, which
 * run, which resource, the next batch's `seq` and the last store id sent.
 * Pure: PHPUnit checks the transitions in plain PHP.
 *
 * The state is saved after every batch Cohort accepted, so a crashed or
 * timed-out sync continues with the batch after the last accepted one; a
 * batch sent again after a crash between Cohort's answer and the save is
 * counted once by Cohort (its `seq` is the same).
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The sync's state and its transitions.
 */
final class Cohort_Sync_State {

	/**
	 * Resources in the order they are sent: orders last, so their products and
	 * customers are known when they arrive.
	 */
	const ORDER = array( 'products', 'customers', 'orders' );

	/**
	 * The resources a command kind syncs, or null for a kind this plugin does not know.
	 *
	 * @param string $kind The command's kind.
	 * @return array<int,string>|null
	 */
	public static function resources_for( string $kind ): ?array {
		switch ( $kind ) {
			case 'sync_store':
				return self::ORDER;
			case 'sync_products':
				return array( 'products' );
			case 'sync_customers':
				return array( 'customers' );
			case 'sync_orders':
				return array( 'orders' );
			default:
				return null;
		}
	}

	/**
	 * A new state for a command.
	 *
	 * @param string            $command_id The command.
	 * @param string            $kind       Its kind.
	 * @param array<int,string> $resources  What it syncs.
	 * @param string            $now        ISO 8601 UTC.
	 * @return array<string,mixed>
	 */
	public static function start( string $command_id, string $kind, array $resources, string $now ): array {
		return array(
			'command_id' => $command_id,
			'kind'       => $kind,
			'run_id'     => '',
			'resources'  => array_values( $resources ),
			'index'      => 0,
			'seq'        => 0,
			'after'      => 0,
			'counts'     => array(
				'products'  => 0,
				'customers' => 0,
				'guests'    => 0,
				'orders'    => 0,
			),
			'rejected'   => 0,
			'started_at' => $now,
			'failures'   => 0,
			'retry_at'   => 0,
			'last_error' => '',
		);
	}

	/**
	 * A saved state, or null when there is none or it is malformed.
	 *
	 * @param mixed $stored The option's value.
	 * @return array<string,mixed>|null
	 */
	public static function load( $stored ): ?array {
		if ( ! is_array( $stored ) || empty( $stored['command_id'] ) || ! isset( $stored['resources'] ) || ! is_array( $stored['resources'] ) ) {
			return null;
		}
		$state = array_merge( self::start( (string) $stored['command_id'], (string) ( $stored['kind'] ?? '' ), $stored['resources'], (string) ( $stored['started_at'] ?? '' ) ), $stored );
		foreach ( array( 'index', 'seq', 'after', 'rejected', 'failures', 'retry_at' ) as $key ) {
			$state[ $key ] = max( 0, (int) $state[ $key ] );
		}
		return $state;
	}

	/**
	 * The resource being sent, or null when every resource is done.
	 *
	 * @param array<string,mixed> $state The state.
	 */
	public static function current( array $state ): ?string {
		return $state['resources'][ $state['index'] ] ?? null;
	}

	/**
	 * After Cohort accepted a batch: the next `seq`, the last id sent, the counts.
	 *
	 * @param array<string,mixed> $state    The state.
	 * @param int                 $last_id  The largest store id in the batch.
	 * @param int                 $accepted Items Cohort accepted.
	 * @param int                 $rejected Items Cohort rejected.
	 * @return array<string,mixed>
	 */
	public static function batch_accepted( array $state, int $last_id, int $accepted, int $rejected ): array {
		$resource                      = self::current( $state );
		$state['seq']                 += 1;
		$state['after']                = max( (int) $state['after'], $last_id );
		$state['counts'][ $resource ] += $accepted;
		$state['rejected']            += $rejected;
		$state['failures']             = 0;
		$state['retry_at']             = 0;
		return $state;
	}

	/**
	 * The current resource has nothing more: on to the next one.
	 *
	 * @param array<string,mixed> $state The state.
	 * @return array<string,mixed>
	 */
	public static function resource_done( array $state ): array {
		$state['index'] += 1;
		$state['seq']    = 0;
		$state['after']  = 0;
		return $state;
	}

	/**
	 * A transient failure (network, 429, 5xx): try again later, with the outbox's backoff.
	 *
	 * @param array<string,mixed> $state The state.
	 * @param string              $error What went wrong.
	 * @param int                 $retry_at When to try again.
	 * @return array<string,mixed>
	 */
	public static function failed_for_now( array $state, string $error, int $retry_at ): array {
		$state['failures']  += 1;
		$state['retry_at']   = $retry_at;
		$state['last_error'] = $error;
		return $state;
	}

	/**
	 * Cohort no longer takes batches for the run (409): the command starts
	 * over in a new run, from the first resource, so the new run's progress
	 * is whole.
	 *
	 * @param array<string,mixed> $state The state.
	 * @param string              $now   ISO 8601 UTC.
	 * @return array<string,mixed>
	 */
	public static function run_lost( array $state, string $now ): array {
		return self::start( (string) $state['command_id'], (string) $state['kind'], $state['resources'], $now );
	}
}
