<?php
/**
 * Signature of Cohort's calls to the store (connect.md §5): the HMAC and
 * canonical-string building against the Segmentflow vectors (their scheme:
 * no nonce, raw body), our own vectors (nonce, hex SHA-256 of the body) and
 * the refusals.
 *
 * @package CohortConnect
 */

use PHPUnit\Framework\TestCase;

require_once dirname( __DIR__ ) . '/includes/class-cohort-signature.php';

final class SignatureTest extends TestCase {

	/**
	 * A nonce store in memory, as the nonce table behaves.
	 *
	 * @var array<string,int>
	 */
	private array $seen = array();

	private function fixture( string $path ): array {
		$text = file_get_contents( $path );
		$this->assertIsString( $text, "missing fixture {$path}" );
		return json_decode( $text, true, 512, JSON_THROW_ON_ERROR );
	}

	private function ours(): array {
		return $this->fixture( dirname( __DIR__, 4 ) . '/tests/fixtures/cohort-discount-signature-vectors.json' );
	}

	private function claim(): callable {
		return function ( string $nonce, int $expires_at ): bool {
			if ( isset( $this->seen[ $nonce ] ) ) {
				return false;
			}
			$this->seen[ $nonce ] = $expires_at;
			return true;
		};
	}

	private function verify( array $v, string $secret, ?string $signature = null, ?int $now = null, ?string $body = null, ?string $nonce = null, ?string $uri = null, ?string $method = null, ?string $timestamp = null ): string {
		return Cohort_Signature::verify(
			$secret,
			$timestamp ?? $v['timestamp'],
			$nonce ?? $v['nonce'],
			$signature ?? $v['signature'],
			$method ?? $v['method'],
			$uri ?? $v['request_uri'],
			$body ?? $v['raw_body'],
			$now ?? (int) $v['timestamp'],
			$this->claim()
		);
	}

	public function test_hmac_and_line_joining_match_the_segmentflow_vectors(): void {
		$f = $this->fixture( dirname( __DIR__, 5 ) . '/shared/fixtures/segmentflow-discount-hmac-vectors.synthesized.json' );
		$this->assertCount( 4, $f['vectors'] );
		foreach ( $f['vectors'] as $v ) {
			$built = Cohort_Signature::join_lines( array( $v['timestamp'], $v['method'], $v['path_with_query'], $v['raw_body'] ) );
			$this->assertSame( $v['signed_string'], $built );
			$this->assertSame( $v['headers']['X-Segmentflow-Signature'], Cohort_Signature::hmac_hex( $f['secret'], $built ) );
		}
	}

	public function test_our_vectors(): void {
		$f = $this->ours();
		$this->assertGreaterThanOrEqual( 7, count( $f['vectors'] ) );
		foreach ( $f['vectors'] as $v ) {
			$this->assertSame( $v['signed_string'], Cohort_Signature::canonical( $v['timestamp'], $v['nonce'], $v['method'], $v['request_uri'], $v['raw_body'] ) );
			$this->assertSame( $v['signature'], Cohort_Signature::header( $f['secret'], $v['timestamp'], $v['nonce'], $v['method'], $v['request_uri'], $v['raw_body'] ) );
			$this->assertSame( Cohort_Signature::OK, $this->verify( $v, $f['secret'] ), $v['request_uri'] );
		}
	}

	public function test_the_method_is_signed_in_upper_case(): void {
		$v = $this->ours()['vectors'][1];
		$this->assertSame( Cohort_Signature::OK, $this->verify( $v, $this->ours()['secret'], null, null, null, null, null, 'get' ) );
	}

	public function test_negatives(): void {
		$f = $this->ours();
		$v = $f['vectors'][0];
		$t = (int) $v['timestamp'];
		$this->assertSame( Cohort_Signature::MISMATCH, $this->verify( $v, 'wrong-secret' ) );
		$this->assertSame( Cohort_Signature::MISMATCH, $this->verify( $v, $f['secret'], null, null, str_replace( '"10"', '"100"', $v['raw_body'] ) ) );
		$this->assertSame( Cohort_Signature::MISMATCH, $this->verify( $v, $f['secret'], null, null, null, null, '/wp-json/cohort/v1/discounts?x=1' ) );
		$this->assertSame( Cohort_Signature::MISMATCH, $this->verify( $v, $f['secret'], null, null, null, null, null, 'PUT' ) );
		$this->assertSame( Cohort_Signature::MISMATCH, $this->verify( $v, $f['secret'], null, null, null, 'n0nce-0123456789abcdeF' ) );
		$this->assertSame( Cohort_Signature::MISMATCH, $this->verify( $v, $f['secret'], null, $t + 1, null, null, null, null, (string) ( $t + 1 ) ) );
		// Stale and future, just outside the window; just inside passes.
		$this->assertSame( Cohort_Signature::STALE, $this->verify( $v, $f['secret'], null, $t + 301 ) );
		$this->assertSame( Cohort_Signature::STALE, $this->verify( $v, $f['secret'], null, $t - 301 ) );
		$this->assertSame( Cohort_Signature::OK, $this->verify( $v, $f['secret'], null, $t + 300 ) );
		// Replay: the same call again within the window.
		$this->assertSame( Cohort_Signature::REPLAY, $this->verify( $v, $f['secret'], null, $t + 10 ) );
		// Nonce shape.
		$short = 'fifteen-chars-x';
		$this->assertSame( 15, strlen( $short ) );
		$sig = Cohort_Signature::header( $f['secret'], $v['timestamp'], $short, 'POST', $v['request_uri'], $v['raw_body'] );
		$this->assertSame( Cohort_Signature::BAD_NONCE, $this->verify( $v, $f['secret'], $sig, null, null, $short ) );
		$this->assertSame( Cohort_Signature::BAD_NONCE, $this->verify( $v, $f['secret'], null, null, null, "n0nce 0123456789abcdef" ) );
		$this->assertSame( Cohort_Signature::BAD_NONCE, $this->verify( $v, $f['secret'], null, null, null, str_repeat( 'a', 129 ) ) );
		// Header formats.
		$hex = substr( $v['signature'], 3 );
		$this->assertSame( Cohort_Signature::BAD_HEADER, $this->verify( $v, $f['secret'], $hex ) );
		$this->assertSame( Cohort_Signature::BAD_HEADER, $this->verify( $v, $f['secret'], 'v2=' . $hex ) );
		$this->assertSame( Cohort_Signature::BAD_HEADER, $this->verify( $v, $f['secret'], 'v1=' . strtoupper( $hex ) ) );
		$this->assertSame( Cohort_Signature::BAD_HEADER, $this->verify( $v, $f['secret'], 'v1=' . substr( $hex, 1 ) ) );
		$this->assertSame( Cohort_Signature::BAD_TIMESTAMP, $this->verify( $v, $f['secret'], null, null, null, null, null, null, '2026-01-01T00:00:00Z' ) );
		$this->assertSame( Cohort_Signature::BAD_TIMESTAMP, $this->verify( $v, $f['secret'], null, null, null, null, null, null, '-1767225600' ) );
		$this->assertSame( Cohort_Signature::MISSING, Cohort_Signature::verify( $f['secret'], null, $v['nonce'], $v['signature'], 'POST', $v['request_uri'], $v['raw_body'], $t, $this->claim() ) );
		$this->assertSame( Cohort_Signature::MISSING, Cohort_Signature::verify( $f['secret'], $v['timestamp'], '', $v['signature'], 'POST', $v['request_uri'], $v['raw_body'], $t, $this->claim() ) );
		$this->assertSame( Cohort_Signature::NO_SECRET, Cohort_Signature::verify( null, $v['timestamp'], $v['nonce'], $v['signature'], 'POST', $v['request_uri'], $v['raw_body'], $t, $this->claim() ) );
		$this->assertSame( Cohort_Signature::NO_SECRET, Cohort_Signature::verify( '', $v['timestamp'], $v['nonce'], $v['signature'], 'POST', $v['request_uri'], $v['raw_body'], $t, $this->claim() ) );
	}

	public function test_a_refused_call_does_not_burn_its_nonce(): void {
		$f = $this->ours();
		$v = $f['vectors'][2];
		$this->assertSame( Cohort_Signature::MISMATCH, $this->verify( $v, 'wrong-secret' ) );
		$this->assertSame( array(), $this->seen );
		$this->assertSame( Cohort_Signature::OK, $this->verify( $v, $f['secret'] ) );
		$this->assertSame( array( $v['nonce'] => (int) $v['timestamp'] + 301 ), $this->seen );
	}
}
