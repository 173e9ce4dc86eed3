<?php
/**
 * Discounts contract (connect.md §5): input validation naming the field, the
 * redemptions query and the keyset cursor.
 *
 * @package CohortConnect
 */

use PHPUnit\Framework\TestCase;

require_once dirname( __DIR__ ) . '/includes/class-cohort-discounts-protocol.php';

final class DiscountsProtocolTest extends TestCase {

	const NOW = 1767225600; // 2026-01-01T00:00:00Z

	public function test_a_full_discount(): void {
		$r = Cohort_Discounts_Protocol::validate_new(
			array(
				'code'              => ' SUMMER20 ',
				'kind'              => 'percentage',
				'amount'            => 20,
				'minPurchaseAmount' => '50.00',
				'expiresAt'         => '2099-12-31T00:00:00+02:00',
				'usageLimit'        => 5,
				'emailRestrictions' => array( 'Ada@Example.com' ),
			),
			self::NOW
		);
		$this->assertTrue( $r['ok'] );
		$this->assertSame( 'SUMMER20', $r['discount']['code'] );
		$this->assertSame( '20', $r['discount']['amount'] );
		$this->assertSame( '50.00', $r['discount']['min_purchase_amount'] );
		$this->assertSame( gmmktime( 22, 0, 0, 12, 30, 2099 ), $r['discount']['expires_at'] );
		$this->assertSame( 5, $r['discount']['usage_limit'] );
		$this->assertSame( array( 'ada@example.com' ), $r['discount']['email_restrictions'] );
		$minimal = Cohort_Discounts_Protocol::validate_new( array( 'code' => 'X', 'kind' => 'percentage', 'amount' => 12.5 ), self::NOW );
		$this->assertTrue( $minimal['ok'] );
		$this->assertSame( '12.5', $minimal['discount']['amount'] );
		$this->assertNull( $minimal['discount']['expires_at'] );
	}

	/**
	 * @return array<string,array{0:mixed,1:string}>
	 */
	public function invalid_inputs(): array {
		$ok = array( 'code' => 'A', 'kind' => 'percentage', 'amount' => 10 );
		return array(
			'not an object'      => array( array( 1, 2 ), 'body' ),
			'null body'          => array( null, 'body' ),
			'no code'            => array( array_diff_key( $ok, array( 'code' => 1 ) ), 'code' ),
			'blank code'         => array( array_merge( $ok, array( 'code' => '  ' ) ), 'code' ),
			'numeric code'       => array( array_merge( $ok, array( 'code' => 12 ) ), 'code' ),
			'long code'          => array( array_merge( $ok, array( 'code' => str_repeat( 'a', 51 ) ) ), 'code' ),
			'code with quote'    => array( array_merge( $ok, array( 'code' => 'a"b' ) ), 'code' ),
			'fixed kind'         => array( array_merge( $ok, array( 'kind' => 'fixed_cart' ) ), 'kind' ),
			'no amount'          => array( array_diff_key( $ok, array( 'amount' => 1 ) ), 'amount' ),
			'zero amount'        => array( array_merge( $ok, array( 'amount' => 0 ) ), 'amount' ),
			'over 100'           => array( array_merge( $ok, array( 'amount' => '100.01' ) ), 'amount' ),
			'amount text'        => array( array_merge( $ok, array( 'amount' => 'ten' ) ), 'amount' ),
			'negative minimum'   => array( array_merge( $ok, array( 'minPurchaseAmount' => -1 ) ), 'minPurchaseAmount' ),
			'bad expiry'         => array( array_merge( $ok, array( 'expiresAt' => '2099-02-30T00:00:00Z' ) ), 'expiresAt' ),
			'date-only expiry'   => array( array_merge( $ok, array( 'expiresAt' => '2099-01-01' ) ), 'expiresAt' ),
			'past expiry'        => array( array_merge( $ok, array( 'expiresAt' => '2025-12-31T23:59:59Z' ) ), 'expiresAt' ),
			'zero usage limit'   => array( array_merge( $ok, array( 'usageLimit' => 0 ) ), 'usageLimit' ),
			'string usage limit' => array( array_merge( $ok, array( 'usageLimit' => '3' ) ), 'usageLimit' ),
			'emails not a list'  => array( array_merge( $ok, array( 'emailRestrictions' => 'a@b.co' ) ), 'emailRestrictions' ),
			'bad email'          => array( array_merge( $ok, array( 'emailRestrictions' => array( 'a@b.co', 'nope' ) ) ), 'emailRestrictions[1]' ),
		);
	}

	/**
	 * @dataProvider invalid_inputs
	 * @param mixed  $input Input.
	 * @param string $field The field named.
	 */
	public function test_invalid_inputs_name_the_field( $input, string $field ): void {
		$r = Cohort_Discounts_Protocol::validate_new( $input, self::NOW );
		$this->assertFalse( $r['ok'] );
		$this->assertSame( $field, $r['field'] );
		$this->assertNotSame( '', $r['message'] );
	}

	public function test_provider_ids(): void {
		$this->assertSame( 42, Cohort_Discounts_Protocol::provider_id( '42' ) );
		$this->assertSame( 7, Cohort_Discounts_Protocol::provider_id( 7 ) );
		foreach ( array( '0', '-1', '042', 'abc', '', '1e3', null, 0 ) as $bad ) {
			$this->assertNull( Cohort_Discounts_Protocol::provider_id( $bad ) );
		}
	}

	public function test_cursor_round_trip_and_tampering(): void {
		$c = Cohort_Discounts_Protocol::encode_cursor( '2026-01-02 10:00:00', 727, 12 );
		$this->assertMatchesRegularExpression( '/^c1\.[A-Za-z0-9_-]+$/', $c );
		$this->assertSame( array( '2026-01-02 10:00:00', 727, 12 ), Cohort_Discounts_Protocol::decode_cursor( $c ) );
		$bad = array(
			'',
			'garbage',
			'c1.',
			'c1.!!!',
			'c2.' . substr( $c, 3 ),
			'c1.' . rtrim( strtr( base64_encode( '["2026-01-02 10:00:00",727]' ), '+/', '-_' ), '=' ),
			'c1.' . rtrim( strtr( base64_encode( '["2026-01-02",727,12]' ), '+/', '-_' ), '=' ),
			'c1.' . rtrim( strtr( base64_encode( '["2026-01-02 10:00:00","727",12]' ), '+/', '-_' ), '=' ),
			'c1.' . rtrim( strtr( base64_encode( '["2026-01-02 10:00:00",-1,12]' ), '+/', '-_' ), '=' ),
		);
		foreach ( $bad as $cursor ) {
			$this->assertNull( Cohort_Discounts_Protocol::decode_cursor( $cursor ), $cursor );
		}
	}

	public function test_redemptions_query(): void {
		$q = Cohort_Discounts_Protocol::read_redemptions_query( array( 'since' => '2026-01-01T01:00:00+01:00' ) );
		$this->assertTrue( $q['ok'] );
		$this->assertSame( '2026-01-01 00:00:00', $q['since'] );
		$this->assertNull( $q['after'] );
		$this->assertSame( 100, $q['limit'] );
		$c = Cohort_Discounts_Protocol::encode_cursor( '2026-01-02 10:00:00', 1, 2 );
		$q = Cohort_Discounts_Protocol::read_redemptions_query( array( 'since' => '2026-01-01T00:00:00Z', 'cursor' => $c, 'limit' => '2' ) );
		$this->assertSame( array( '2026-01-02 10:00:00', 1, 2 ), $q['after'] );
		$this->assertSame( 2, $q['limit'] );
		$this->assertSame( 'since', Cohort_Discounts_Protocol::read_redemptions_query( array() )['field'] );
		$this->assertSame( 'since', Cohort_Discounts_Protocol::read_redemptions_query( array( 'since' => 'yesterday' ) )['field'] );
		$this->assertSame( 'cursor', Cohort_Discounts_Protocol::read_redemptions_query( array( 'since' => '2026-01-01T00:00:00Z', 'cursor' => 'x' ) )['field'] );
		$this->assertSame( 'limit', Cohort_Discounts_Protocol::read_redemptions_query( array( 'since' => '2026-01-01T00:00:00Z', 'limit' => '501' ) )['field'] );
		$this->assertSame( 'limit', Cohort_Discounts_Protocol::read_redemptions_query( array( 'since' => '2026-01-01T00:00:00Z', 'limit' => '0' ) )['field'] );
	}

	/**
	 * Rows with equal timestamps split across pages: each row once, none lost.
	 */
	public function test_paging_at_equal_timestamps(): void {
		$all = array();
		foreach ( array( array( 5, 1 ), array( 5, 2 ), array( 6, 3 ), array( 6, 4 ), array( 7, 5 ) ) as $k ) {
			$all[] = array(
				'created_gmt' => '2026-01-02 10:00:00',
				'order_id'    => $k[0],
				'item_id'     => $k[1],
				'redemption'  => array( 'providerOrderId' => (string) $k[0], 'item' => $k[1] ),
			);
		}
		// What the SQL does: key order, after the cursor, limit + 1.
		$fetch = static function ( ?array $after, int $n ) use ( $all ): array {
			$rows = array_values(
				array_filter(
					$all,
					static function ( $r ) use ( $after ) {
						return null === $after || array( $r['created_gmt'], $r['order_id'], $r['item_id'] ) > $after;
					}
				)
			);
			return array_slice( $rows, 0, $n );
		};
		$seen   = array();
		$cursor = null;
		$pages  = 0;
		do {
			$after  = null === $cursor ? null : Cohort_Discounts_Protocol::decode_cursor( $cursor );
			$page   = Cohort_Discounts_Protocol::page( $fetch( $after, 3 ), 2 );
			$seen   = array_merge( $seen, array_column( $page['redemptions'], 'item' ) );
			$cursor = $page['nextCursor'];
			++$pages;
		} while ( null !== $cursor && $pages < 10 );
		$this->assertSame( array( 1, 2, 3, 4, 5 ), $seen );
		$this->assertSame( 3, $pages );
	}

	public function test_decimals_and_times(): void {
		$this->assertSame( '0.1', Cohort_Discounts_Protocol::decimal( 0.1 ) );
		$this->assertSame( '19.99', Cohort_Discounts_Protocol::decimal( '19.99' ) );
		$this->assertNull( Cohort_Discounts_Protocol::decimal( '1e3' ) );
		$this->assertNull( Cohort_Discounts_Protocol::decimal( true ) );
		$this->assertSame( '2026-01-02T10:00:00Z', Cohort_Discounts_Protocol::format_time( gmmktime( 10, 0, 0, 1, 2, 2026 ) ) );
		$this->assertSame( gmmktime( 10, 0, 0, 1, 2, 2026 ), Cohort_Discounts_Protocol::parse_time( '2026-01-02T10:00:00.123Z' ) );
	}
}
