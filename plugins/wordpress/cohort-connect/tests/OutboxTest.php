<?php
/**
 * The outbox over in-memory storage with a scripted transport.
 *
 * @package CohortConnect
 */

use PHPUnit\Framework\TestCase;

final class OutboxTest extends TestCase {

	private Memory_Storage $storage;
	private Cohort_Outbox $outbox;

	/** @var array<int,string> Calls made, "METHOD path #n". */
	private array $sent = array();

	/** @var array<int,Cohort_Response> Answers to give, in order; empty: 200. */
	private array $answers = array();

	protected function setUp(): void {
		$this->storage = new Memory_Storage();
		$this->outbox  = new Cohort_Outbox( $this->storage, new Cohort_Retry_Policy( static fn(): float => 0.5 ), new Cohort_Failure_Log() );
		$this->sent    = array();
		$this->answers = array();
	}

	private function transport(): callable {
		return function ( array $row ): Cohort_Response {
			$body         = json_decode( (string) $row['body'], true );
			$this->sent[] = $row['method'] . ' ' . $row['path'] . ( isset( $body['n'] ) ? ' #' . $body['n'] : '' );
			return array_shift( $this->answers ) ?? new Cohort_Response( 200, array(), '{}' );
		};
	}

	private function enqueue_events( int $count, int $now ): void {
		for ( $i = 1; $i <= $count; $i++ ) {
			$this->outbox->enqueue( 'post', '/connect/v1/events', array( 'n' => $i ), $now );
		}
	}

	public function test_delivers_in_insertion_order_and_empties(): void {
		$this->enqueue_events( 5, 100 );
		$this->assertSame( 5, $this->outbox->depth() );
		$report = $this->outbox->run( $this->transport(), 100, true );
		$this->assertCount( 5, $report->delivered );
		$this->assertSame(
			array( 'POST /connect/v1/events #1', 'POST /connect/v1/events #2', 'POST /connect/v1/events #3', 'POST /connect/v1/events #4', 'POST /connect/v1/events #5' ),
			$this->sent
		);
		$this->assertSame( 0, $this->outbox->depth() );
		$this->assertSame( array(), $this->outbox->log()->entries() );
	}

	public function test_limit_bounds_one_run(): void {
		$this->enqueue_events( 30, 100 );
		$this->outbox->run( $this->transport(), 100, true, 10 );
		$this->assertCount( 10, $this->sent );
		$this->assertSame( 20, $this->outbox->depth() );
	}

	public function test_network_error_reschedules_and_pauses_everything(): void {
		$this->enqueue_events( 3, 100 );
		$this->answers = array( Cohort_Response::network_error( 'cURL error 7: Failed to connect' ) );
		$report        = $this->outbox->run( $this->transport(), 100, true );
		$this->assertSame( 1, $report->retried );
		$this->assertSame( 130, $report->paused_until );
		$this->assertSame( array( 'POST /connect/v1/events #1' ), $this->sent );
		$this->assertSame( 3, $this->outbox->depth() );
		$this->assertSame( 1, $this->storage->rows[1]['attempts'] );
		$this->assertSame( 130, $this->storage->rows[1]['next_attempt_at'] );

		// Still paused: nothing is sent.
		$this->outbox->run( $this->transport(), 129, true );
		$this->assertCount( 1, $this->sent );

		// Cohort is back: everything goes out once, in order.
		$this->outbox->run( $this->transport(), 130, true );
		$this->assertSame(
			array( 'POST /connect/v1/events #1', 'POST /connect/v1/events #1', 'POST /connect/v1/events #2', 'POST /connect/v1/events #3' ),
			$this->sent
		);
		$this->assertSame( 0, $this->outbox->depth() );
		$entry = $this->outbox->log()->entries()[0];
		$this->assertSame( 'POST /connect/v1/events', $entry['call'] );
		$this->assertSame( 0, $entry['status'] );
		$this->assertSame( 'cURL error 7: Failed to connect', $entry['message'] );
	}

	public function test_backoff_doubles_across_repeated_failures(): void {
		$this->outbox->enqueue( 'POST', '/connect/v1/events', array( 'n' => 1 ), 0 );
		$now = 0;
		foreach ( array( 30, 60, 120, 240, 480 ) as $expected ) {
			$this->answers = array( new Cohort_Response( 503 ) );
			$this->outbox->run( $this->transport(), $now, true );
			$this->assertSame( $now + $expected, $this->storage->rows[1]['next_attempt_at'] );
			$now = $this->storage->rows[1]['next_attempt_at'];
		}
		$this->assertSame( 5, $this->storage->rows[1]['attempts'] );
	}

	public function test_429_pauses_for_retry_after(): void {
		$this->enqueue_events( 2, 1000 );
		$this->answers = array( new Cohort_Response( 429, array( 'Retry-After' => '600' ) ) );
		$report        = $this->outbox->run( $this->transport(), 1000, true );
		$this->assertSame( 1600, $report->paused_until );
		$this->assertSame( 1600, $this->storage->rows[1]['next_attempt_at'] );
		$this->outbox->run( $this->transport(), 1599, true );
		$this->assertCount( 1, $this->sent );
		$this->outbox->run( $this->transport(), 1600, true );
		$this->assertSame( 0, $this->outbox->depth() );
	}

	public function test_429_with_http_date(): void {
		$now = gmmktime( 12, 0, 0, 6, 1, 2030 );
		$this->enqueue_events( 1, $now );
		$this->answers = array( new Cohort_Response( 429, array( 'Retry-After' => gmdate( 'D, d M Y H:i:s', $now + 45 ) . ' GMT' ) ) );
		$report        = $this->outbox->run( $this->transport(), $now, true );
		$this->assertSame( $now + 45, $report->paused_until );
	}

	public function test_5xx_backs_off_that_call_and_goes_on_with_the_others(): void {
		$this->enqueue_events( 3, 100 );
		$this->answers = array( new Cohort_Response( 500 ) );
		$report        = $this->outbox->run( $this->transport(), 100, true );
		$this->assertSame( 1, $report->retried );
		$this->assertCount( 2, $report->delivered );
		$this->assertSame( 0, $report->paused_until );
		$this->assertSame( array( 1 ), array_keys( $this->storage->rows ) );
		$this->assertSame( 130, $this->storage->rows[1]['next_attempt_at'] );
	}

	public function test_three_5xx_in_a_row_end_the_run(): void {
		$this->enqueue_events( 5, 100 );
		$this->answers = array( new Cohort_Response( 502 ), new Cohort_Response( 503 ), new Cohort_Response( 504 ) );
		$report        = $this->outbox->run( $this->transport(), 100, true );
		$this->assertSame( 3, $report->retried );
		$this->assertCount( 3, $this->sent );
		$this->assertSame( 5, $this->outbox->depth() );
	}

	public function test_other_4xx_are_recorded_and_dropped(): void {
		$this->enqueue_events( 3, 100 );
		$this->answers = array(
			new Cohort_Response( 400, array(), '{"error":{"code":"invalid","message":"events must be an array","field":"batch"}}' ),
			new Cohort_Response( 413 ),
		);
		$report        = $this->outbox->run( $this->transport(), 100, true );
		$this->assertSame( 2, $report->dropped );
		$this->assertCount( 1, $report->delivered );
		$this->assertSame( 0, $this->outbox->depth() );
		$entries = $this->outbox->log()->entries();
		$this->assertCount( 2, $entries );
		$this->assertSame( 413, $entries[0]['status'] );
		$this->assertSame( 'HTTP 400: events must be an array', $entries[1]['message'] );
		$this->assertSame( 'drop', $entries[1]['outcome'] );
	}

	public function test_401_reports_disconnected_and_stops_sending(): void {
		$this->enqueue_events( 3, 100 );
		$this->answers = array( new Cohort_Response( 200 ), new Cohort_Response( 401 ) );
		$report        = $this->outbox->run( $this->transport(), 100, true );
		$this->assertTrue( $report->unauthorized );
		$this->assertCount( 2, $this->sent );
		$this->assertSame( 2, $this->outbox->depth(), 'kept for a reconnect' );
		$this->assertSame( 401, $this->outbox->log()->entries()[0]['status'] );

		// Disconnected: nothing is sent any more.
		$this->outbox->run( $this->transport(), 200, false );
		$this->assertCount( 2, $this->sent );
	}

	public function test_calls_with_their_own_token_go_out_while_disconnected(): void {
		$this->enqueue_events( 1, 100 );
		$this->outbox->enqueue( 'DELETE', '/connect/v1/installation', null, 100, null, 'old-token' );
		$this->outbox->run( $this->transport(), 100, false );
		$this->assertSame( array( 'DELETE /connect/v1/installation' ), $this->sent );
		$this->assertSame( 1, $this->outbox->depth() );
	}

	public function test_401_for_a_revocation_means_already_revoked(): void {
		$this->outbox->enqueue( 'DELETE', '/connect/v1/installation', null, 100, null, 'old-token' );
		$this->answers = array( new Cohort_Response( 401 ) );
		$report        = $this->outbox->run( $this->transport(), 100, false );
		$this->assertFalse( $report->unauthorized );
		$this->assertSame( 0, $this->outbox->depth() );
	}

	public function test_a_debounced_call_waits_and_each_replacement_pushes_it_back(): void {
		$this->outbox->enqueue( 'POST', '/connect/v1/events', array( 'n' => 1 ), 100, 'cart-updated:c1', null, 160 );
		$this->outbox->run( $this->transport(), 159, true );
		$this->assertSame( array(), $this->sent, 'not before its time' );
		$this->outbox->enqueue( 'POST', '/connect/v1/events', array( 'n' => 2 ), 150, 'cart-updated:c1', null, 210 );
		$this->outbox->run( $this->transport(), 200, true );
		$this->assertSame( array(), $this->sent, 'the later change pushed it back' );
		$this->outbox->run( $this->transport(), 210, true );
		$this->assertSame( array( 'POST /connect/v1/events #2' ), $this->sent, 'one call, with the latest body' );
		$this->assertSame( 0, $this->outbox->depth() );
	}

	public function test_heartbeat_is_coalesced(): void {
		$this->outbox->enqueue( 'POST', '/connect/v1/heartbeat', array( 'n' => 1 ), 100, 'heartbeat' );
		$this->enqueue_events( 1, 100 );
		$this->outbox->enqueue( 'POST', '/connect/v1/heartbeat', array( 'n' => 2 ), 400, 'heartbeat' );
		$this->assertSame( 2, $this->outbox->depth() );
		$this->outbox->run( $this->transport(), 400, true );
		$this->assertSame( array( 'POST /connect/v1/heartbeat #2', 'POST /connect/v1/events #1' ), $this->sent );
	}

	public function test_gives_up_after_max_attempts(): void {
		$this->outbox->enqueue( 'POST', '/connect/v1/events', array( 'n' => 1 ), 0 );
		$now = 0;
		for ( $i = 1; $i <= Cohort_Retry_Policy::MAX_ATTEMPTS; $i++ ) {
			$this->answers = array( new Cohort_Response( 500 ) );
			$this->outbox->run( $this->transport(), $now, true );
			$now += 86400;
		}
		$this->assertSame( 0, $this->outbox->depth() );
		$this->assertStringStartsWith( 'gave up after 20 attempts', $this->outbox->log()->entries()[0]['message'] );
	}

	public function test_retry_now_makes_everything_due_and_lifts_the_pause(): void {
		$this->enqueue_events( 2, 100 );
		$this->answers = array( Cohort_Response::network_error( 'timeout' ) );
		$this->outbox->run( $this->transport(), 100, true );
		$this->outbox->retry_now( 101 );
		$this->outbox->run( $this->transport(), 101, true );
		$this->assertSame( 0, $this->outbox->depth() );
		$this->assertSame( array( 'POST /connect/v1/events #1', 'POST /connect/v1/events #1', 'POST /connect/v1/events #2' ), $this->sent );
	}

	public function test_failure_log_keeps_the_last_50(): void {
		$log = new Cohort_Failure_Log();
		for ( $i = 1; $i <= 120; $i++ ) {
			$log->record( 1000 + $i, 'POST /connect/v1/events', 400, 'failure ' . $i, 'drop' );
		}
		$entries = $log->entries();
		$this->assertCount( 50, $entries );
		$this->assertSame( 'failure 120', $entries[0]['message'] );
		$this->assertSame( 'failure 71', $entries[49]['message'] );
		$this->assertSame( 'failure 120', $log->last_error() );
		$this->assertSame( 120, $log->count_24h( 2000 ) );

		$restored = Cohort_Failure_Log::from_array( $log->to_array() );
		$this->assertSame( $entries, $restored->entries() );
		$this->assertSame( 120, $restored->count_24h( 2000 ) );
	}

	public function test_failures_24h_forgets_old_hours(): void {
		$log = new Cohort_Failure_Log();
		$log->record( 0, 'POST /x', 500, 'old', 'retry' );
		$log->record( 3600 * 10, 'POST /x', 500, 'mid', 'retry' );
		$log->record( 3600 * 30, 'POST /x', 500, 'new', 'retry' );
		$this->assertSame( 2, $log->count_24h( 3600 * 30 ) );
		$this->assertSame( 1, $log->count_24h( 3600 * 40 ) );
		$this->assertSame( 0, Cohort_Failure_Log::from_array( 'garbage' )->count_24h( 0 ) );
	}

	public function test_outbox_failures_land_in_the_bounded_log(): void {
		$this->enqueue_events( 60, 100 );
		$this->answers = array_fill( 0, 60, new Cohort_Response( 422 ) );
		$this->outbox->run( $this->transport(), 100, true, 100 );
		$this->assertCount( 50, $this->outbox->log()->entries() );
		$this->assertSame( 60, $this->outbox->log()->count_24h( 100 ) );
	}
}
