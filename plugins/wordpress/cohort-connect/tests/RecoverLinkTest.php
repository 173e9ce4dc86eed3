<?php
/**
 * The recover_url token (pure PHP).
 *
 * @package CohortConnect
 */

use PHPUnit\Framework\TestCase;

final class RecoverLinkTest extends TestCase {

	private const KEY = 'site-secret';

	private const ITEMS = array(
		array(
			'product_id'   => 10,
			'variation_id' => 0,
			'quantity'     => 2,
			'name'         => 'Mug',
		),
		array(
			'product_id'   => 11,
			'variation_id' => 12,
			'quantity'     => 1,
		),
	);

	public function test_a_token_rebuilds_the_lines(): void {
		$token = Cohort_Recover_Link::encode( self::ITEMS, self::KEY );
		$this->assertMatchesRegularExpression( '/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/', $token, 'URL-safe, no padding' );
		$this->assertStringNotContainsString( 'Mug', base64_decode( strtr( explode( '.', $token )[0], '-_', '+/' ) ), 'only ids and quantities travel' );
		$this->assertSame(
			array(
				array(
					'product_id'   => 10,
					'variation_id' => 0,
					'quantity'     => 2,
				),
				array(
					'product_id'   => 11,
					'variation_id' => 12,
					'quantity'     => 1,
				),
			),
			Cohort_Recover_Link::decode( $token, self::KEY )
		);
	}

	public function test_another_key_or_a_changed_payload_is_refused(): void {
		$token = Cohort_Recover_Link::encode( self::ITEMS, self::KEY );
		$this->assertNull( Cohort_Recover_Link::decode( $token, 'other-secret' ) );
		list( $payload, $mac ) = explode( '.', $token );
		$forged                = rtrim( strtr( base64_encode( '[[10,0,99]]' ), '+/', '-_' ), '=' );
		$this->assertNull( Cohort_Recover_Link::decode( $forged . '.' . $mac, self::KEY ) );
		$this->assertNull( Cohort_Recover_Link::decode( $payload . '.', self::KEY ) );
		$this->assertNull( Cohort_Recover_Link::decode( $payload, self::KEY ) );
		$this->assertNull( Cohort_Recover_Link::decode( '', self::KEY ) );
		$this->assertNull( Cohort_Recover_Link::decode( 'a.b.c', self::KEY ) );
	}

	public function test_signed_but_nonsensical_lines_are_refused(): void {
		foreach ( array( '[]', '[[0,0,1]]', '[[10,0,0]]', '[[10,-1,1]]', '[[10,0]]', '{"a":1}', 'null' ) as $json ) {
			$payload = rtrim( strtr( base64_encode( $json ), '+/', '-_' ), '=' );
			$mac     = rtrim( strtr( base64_encode( hash_hmac( 'sha256', $payload, self::KEY, true ) ), '+/', '-_' ), '=' );
			$this->assertNull( Cohort_Recover_Link::decode( $payload . '.' . $mac, self::KEY ), $json );
		}
	}

	public function test_a_long_cart_is_cut_to_the_maximum(): void {
		$items = array();
		for ( $i = 1; $i <= 80; $i++ ) {
			$items[] = array(
				'product_id' => $i,
				'quantity'   => 1,
			);
		}
		$lines = Cohort_Recover_Link::decode( Cohort_Recover_Link::encode( $items, self::KEY ), self::KEY );
		$this->assertCount( Cohort_Recover_Link::MAX_LINES, $lines );
	}
}
