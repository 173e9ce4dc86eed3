<?php
/**
 * What one run of the outbox did. Pure PHP.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Counters and the answers of delivered calls (the heartbeat's answer is read from them).
 */
final class Cohort_Outbox_Report {

	/**
	 * Delivered calls: list of [row, Cohort_Response].
	 *
	 * @var array<int,array{0:array<string,mixed>,1:Cohort_Response}>
	 */
	public array $delivered = array();

	/**
	 * Calls that will be retried.
	 *
	 * @var int
	 */
	public int $retried = 0;

	/**
	 * Calls recorded as failures and dropped.
	 *
	 * @var int
	 */
	public int $dropped = 0;

	/**
	 * True when Cohort answered 401 to a call made with the current token.
	 *
	 * @var bool
	 */
	public bool $unauthorized = false;

	/**
	 * Until when sending is paused (0: not paused).
	 *
	 * @var int
	 */
	public int $paused_until = 0;
}
