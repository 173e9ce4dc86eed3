<?php
/**
 * The store sync's state transitions (pure PHP).
 *
 * @package CohortConnect
 */

use PHPUnit\Framework\TestCase;

final class SyncStateTest extends TestCase {

	public function test_command_kinds_map_to_resources_orders_last(): void {
		$this->assertSame( array( 'products', 'customers', 'orders' ), Cohort_Sync_State::resources_for( 'sync_store' ) );
		$this->assertSame( array( 'orders' ), Cohort_Sync_State::resources_for( 'sync_orders' ) );
		$this->assertNull( Cohort_Sync_State::resources_for( 'reindex_everything' ) );
	}

	public function test_batches_advance_seq_and_cursor_and_count(): void {
		$s = Cohort_Sync_State::start( 'cmd1', 'sync_store', array( 'products', 'orders' ), '2026-11-23T10:00:00Z' );
		$this->assertSame( 'products', Cohort_Sync_State::current( $s ) );
		$s = Cohort_Sync_State::batch_accepted( $s, 140, 100, 0 );
		$s = Cohort_Sync_State::batch_accepted( $s, 230, 37, 2 );
		$this->assertSame( 2, $s['seq'] );
		$this->assertSame( 230, $s['after'] );
		$this->assertSame( 137, $s['counts']['products'] );
		$this->assertSame( 2, $s['rejected'] );
		$s = Cohort_Sync_State::resource_done( $s );
		$this->assertSame( 'orders', Cohort_Sync_State::current( $s ) );
		$this->assertSame( 0, $s['seq'] );
		$this->assertSame( 0, $s['after'] );
		$s = Cohort_Sync_State::resource_done( $s );
		$this->assertNull( Cohort_Sync_State::current( $s ), 'every resource done' );
	}

	public function test_a_saved_state_resumes_where_it_stopped(): void {
		$s = Cohort_Sync_State::start( 'cmd1', 'sync_store', Cohort_Sync_State::ORDER, '2026-11-23T10:00:00Z' );
		$s['run_id'] = 'run_1';
		$s = Cohort_Sync_State::resource_done( $s );
		$s = Cohort_Sync_State::batch_accepted( $s, 500, 100, 0 );
		// What update_option/get_option give back (ints may come back as strings from some caches).
		$stored          = json_decode( json_encode( $s ), true );
		$stored['after'] = '500';
		$loaded          = Cohort_Sync_State::load( $stored );
		$this->assertSame( 'customers', Cohort_Sync_State::current( $loaded ) );
		$this->assertSame( 1, $loaded['seq'] );
		$this->assertSame( 500, $loaded['after'] );
		$this->assertSame( 'run_1', $loaded['run_id'] );
		$this->assertNull( Cohort_Sync_State::load( false ) );
		$this->assertNull( Cohort_Sync_State::load( array( 'command_id' => '' ) ) );
	}

	public function test_a_transient_failure_waits_and_the_next_success_resets_it(): void {
		$s = Cohort_Sync_State::start( 'cmd1', 'sync_orders', array( 'orders' ), '2026-11-23T10:00:00Z' );
		$s = Cohort_Sync_State::failed_for_now( $s, 'network error', 1000 );
		$s = Cohort_Sync_State::failed_for_now( $s, 'HTTP 503', 1060 );
		$this->assertSame( 2, $s['failures'] );
		$this->assertSame( 1060, $s['retry_at'] );
		$s = Cohort_Sync_State::batch_accepted( $s, 10, 10, 0 );
		$this->assertSame( 0, $s['failures'] );
		$this->assertSame( 0, $s['retry_at'] );
	}

	public function test_a_run_cohort_closed_starts_the_command_over(): void {
		$s = Cohort_Sync_State::start( 'cmd1', 'sync_store', Cohort_Sync_State::ORDER, '2026-11-23T10:00:00Z' );
		$s['run_id'] = 'run_1';
		$s = Cohort_Sync_State::batch_accepted( $s, 100, 100, 0 );
		$lost = Cohort_Sync_State::run_lost( $s, '2026-11-23T11:00:00Z' );
		$this->assertSame( '', $lost['run_id'] );
		$this->assertSame( 'cmd1', $lost['command_id'] );
		$this->assertSame( 0, $lost['counts']['products'] );
		$this->assertSame( 'products', Cohort_Sync_State::current( $lost ) );
	}
}
