<?php
/**
 * Backoff, jitter, Retry-After and classification.
 *
 * @package CohortConnect
 */

use PHPUnit\Framework\TestCase;

final class RetryPolicyTest extends TestCase {

	private function fixed( float $r ): Cohort_Retry_Policy {
		return new Cohort_Retry_Policy( static fn(): float => $r );
	}

	public function test_nominal_delay_starts_at_30s_and_doubles(): void {
		$p = new Cohort_Retry_Policy();
		$this->assertSame( 30, $p->nominal_delay( 1 ) );
		$this->assertSame( 60, $p->nominal_delay( 2 ) );
		$this->assertSame( 120, $p->nominal_delay( 3 ) );
		$this->assertSame( 240, $p->nominal_delay( 4 ) );
		$this->assertSame( 30 * 2048, $p->nominal_delay( 12 ) );
	}

	public function test_nominal_delay_is_capped_at_24_hours(): void {
		$p = new Cohort_Retry_Policy();
		$this->assertSame( 86400, $p->nominal_delay( 13 ) );
		$this->assertSame( 86400, $p->nominal_delay( 20 ) );
		$this->assertSame( 86400, $p->nominal_delay( 1000 ) );
	}

	public function test_jitter_stays_within_twenty_percent(): void {
		$this->assertSame( 24, $this->fixed( 0.0 )->backoff( 1 ) );
		$this->assertSame( 30, $this->fixed( 0.5 )->backoff( 1 ) );
		$this->assertSame( 36, $this->fixed( 1.0 )->backoff( 1 ) );
		$this->assertSame( 96, $this->fixed( 0.0 )->backoff( 3 ) );
		$this->assertSame( 144, $this->fixed( 1.0 )->backoff( 3 ) );

		$random = new Cohort_Retry_Policy();
		$seen   = array();
		for ( $attempt = 1; $attempt <= 15; $attempt++ ) {
			$nominal = $random->nominal_delay( $attempt );
			for ( $i = 0; $i < 200; $i++ ) {
				$d = $random->backoff( $attempt );
				$this->assertGreaterThanOrEqual( (int) floor( $nominal * 0.8 ), $d );
				$this->assertLessThanOrEqual( min( 86400, (int) ceil( $nominal * 1.2 ) ), $d );
				if ( 1 === $attempt ) {
					$seen[ $d ] = true;
				}
			}
		}
		$this->assertGreaterThan( 5, count( $seen ), 'jitter spreads the delays' );
	}

	public function test_jittered_delay_never_exceeds_the_cap(): void {
		$this->assertSame( 86400, $this->fixed( 1.0 )->backoff( 13 ) );
		$this->assertSame( 86400, $this->fixed( 0.99 )->backoff( 40 ) );
		$this->assertSame( (int) round( 86400 * 0.8 ), $this->fixed( 0.0 )->backoff( 13 ) );
		// Attempt 12 nominal 61440 s; +20 % would be 73728 s, still under the cap.
		$this->assertSame( 73728, $this->fixed( 1.0 )->backoff( 12 ) );
	}

	public function test_retry_after_seconds(): void {
		$p = new Cohort_Retry_Policy();
		$this->assertSame( 120, $p->parse_retry_after( '120', 1000 ) );
		$this->assertSame( 0, $p->parse_retry_after( '0', 1000 ) );
		$this->assertSame( 86400, $p->parse_retry_after( '999999', 1000 ) );
		$this->assertNull( $p->parse_retry_after( null, 1000 ) );
		$this->assertNull( $p->parse_retry_after( '', 1000 ) );
		$this->assertNull( $p->parse_retry_after( 'soon', 1000 ) );
		$this->assertNull( $p->parse_retry_after( '-5', 1000 ) );
	}

	public function test_retry_after_http_date(): void {
		$p   = new Cohort_Retry_Policy();
		$now = gmmktime( 7, 28, 0, 10, 21, 2015 );
		$this->assertSame( 60, $p->parse_retry_after( 'Wed, 21 Oct 2015 07:29:00 GMT', $now ) );
		$this->assertSame( 60, $p->parse_retry_after( 'Wednesday, 21-Oct-15 07:29:00 GMT', $now ) );
		$this->assertSame( 60, $p->parse_retry_after( 'Wed Oct 21 07:29:00 2015', $now ) );
		$this->assertSame( 0, $p->parse_retry_after( 'Wed, 21 Oct 2015 07:00:00 GMT', $now ), 'a past date means now' );
		$this->assertSame( 86400, $p->parse_retry_after( 'Fri, 30 Oct 2015 07:28:00 GMT', $now ), 'capped at 24 h' );
	}

	public function test_429_honours_retry_after_instead_of_backoff(): void {
		$p = $this->fixed( 0.5 );
		$this->assertSame( 90, $p->retry_delay( new Cohort_Response( 429, array( 'Retry-After' => '90' ) ), 1, 0 ) );
		$now = gmmktime( 0, 0, 0, 1, 1, 2030 );
		$this->assertSame( 300, $p->retry_delay( new Cohort_Response( 429, array( 'retry-after' => gmdate( 'D, d M Y H:i:s \G\M\T', $now + 300 ) ) ), 4, $now ) );
		$this->assertSame( 240, $p->retry_delay( new Cohort_Response( 429 ), 4, $now ), 'no header: backoff' );
		$this->assertSame( 240, $p->retry_delay( new Cohort_Response( 500, array( 'Retry-After' => '5' ) ), 4, $now ), 'only 429/503 read it' );
		$this->assertSame( 5, $p->retry_delay( new Cohort_Response( 503, array( 'Retry-After' => '5' ) ), 4, $now ) );
	}

	/**
	 * @dataProvider statuses
	 */
	public function test_classification( int $status, string $expected ): void {
		$p = new Cohort_Retry_Policy();
		$this->assertSame( $expected, $p->classify( new Cohort_Response( $status ) ) );
	}

	public function statuses(): array {
		return array(
			'network error' => array( 0, Cohort_Retry_Policy::RETRY ),
			'200'           => array( 200, Cohort_Retry_Policy::DELIVERED ),
			'201'           => array( 201, Cohort_Retry_Policy::DELIVERED ),
			'204'           => array( 204, Cohort_Retry_Policy::DELIVERED ),
			'301'           => array( 301, Cohort_Retry_Policy::DROP ),
			'400'           => array( 400, Cohort_Retry_Policy::DROP ),
			'401'           => array( 401, Cohort_Retry_Policy::UNAUTHORIZED ),
			'403'           => array( 403, Cohort_Retry_Policy::DROP ),
			'404'           => array( 404, Cohort_Retry_Policy::DROP ),
			'409'           => array( 409, Cohort_Retry_Policy::DROP ),
			'413'           => array( 413, Cohort_Retry_Policy::DROP ),
			'422'           => array( 422, Cohort_Retry_Policy::DROP ),
			'429'           => array( 429, Cohort_Retry_Policy::RETRY ),
			'500'           => array( 500, Cohort_Retry_Policy::RETRY ),
			'502'           => array( 502, Cohort_Retry_Policy::RETRY ),
			'503'           => array( 503, Cohort_Retry_Policy::RETRY ),
			'504'           => array( 504, Cohort_Retry_Policy::RETRY ),
		);
	}
}
