<?php
/**
 * The account events' messages (pure PHP).
 *
 * @package CohortConnect
 */

use PHPUnit\Framework\TestCase;

final class AccountEventsTest extends TestCase {

	private const USER = array(
		'id'         => 7,
		'email'      => ' Sam@Shop.Test ',
		'username'   => 'sam',
		'first_name' => 'Sam',
		'last_name'  => '',
		'registered' => '2026-11-20T10:00:00Z',
	);

	public function test_sign_up_identifies_then_tracks_with_the_same_user_id(): void {
		$body = Cohort_Account_Events::signed_up( self::USER, 'https://shop.test/', '0.1.0', '2026-11-20T10:00:01Z' );
		$this->assertSame( array( 'identify', 'track' ), array_column( $body['batch'], 'type' ) );
		$this->assertSame( array( '7', '7' ), array_column( $body['batch'], 'userId' ) );
		$this->assertSame( 'Signed Up', $body['batch'][1]['event'] );
		$this->assertSame(
			array(
				'email'     => 'sam@shop.test',
				'username'  => 'sam',
				'firstName' => 'Sam',
				'createdAt' => '2026-11-20T10:00:00Z',
			),
			$body['batch'][0]['traits']
		);
		$this->assertSame( 'cohort-connect', $body['context']['library']['name'] );
	}

	public function test_sign_up_message_ids_are_fixed_per_site_and_user(): void {
		$a = Cohort_Account_Events::signed_up( self::USER, 'https://shop.test/', '0.1.0', '2026-11-20T10:00:01Z' );
		$b = Cohort_Account_Events::signed_up( self::USER, 'https://shop.test/', '0.1.0', '2026-11-21T09:00:00Z' );
		$c = Cohort_Account_Events::signed_up( self::USER, 'https://other.test/', '0.1.0', '2026-11-20T10:00:01Z' );
		$this->assertSame( array_column( $a['batch'], 'messageId' ), array_column( $b['batch'], 'messageId' ) );
		$this->assertNotSame( array_column( $a['batch'], 'messageId' ), array_column( $c['batch'], 'messageId' ) );
		$this->assertNotSame( $a['batch'][0]['messageId'], $a['batch'][1]['messageId'] );
	}

	public function test_sign_in_carries_the_given_event_id_and_email(): void {
		$body    = Cohort_Account_Events::signed_in( self::USER, 'e1d2', '0.1.0', '2026-11-20T10:00:01Z' );
		$message = $body['batch'][0];
		$this->assertSame( 'wp-signin-e1d2', $message['messageId'] );
		$this->assertSame( 'Signed In', $message['event'] );
		$this->assertSame( '7', $message['userId'] );
		$this->assertSame( 'sam@shop.test', $message['context']['traits']['email'] );
	}

	public function test_empty_traits_are_left_out(): void {
		$traits = Cohort_Account_Events::traits( array( 'id' => 1, 'email' => '', 'username' => 'x' ) );
		$this->assertSame( array( 'username' => 'x' ), $traits );
	}
}
