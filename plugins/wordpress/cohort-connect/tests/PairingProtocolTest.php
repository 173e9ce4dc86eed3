<?php
/**
 * Reading the pairing answers.
 *
 * @package CohortConnect
 */

use PHPUnit\Framework\TestCase;

final class PairingProtocolTest extends TestCase {

	public function test_created(): void {
		$r = Cohort_Pairing_Protocol::read_created(
			new Cohort_Response( 201, array(), '{"pairing_id":"pair_1","poll_secret":"ps_x","user_code":"WDJB-MJHT","authorize_url":"http://c:8080/setup/woocommerce?pairing=pair_1","expires_at":"2030-01-01T00:15:00Z","poll_interval_s":3}' ),
			1000
		);
		$this->assertTrue( $r['ok'] );
		$this->assertSame( 'WDJB-MJHT', $r['pairing']['user_code'] );
		$this->assertSame( gmmktime( 0, 15, 0, 1, 1, 2030 ), $r['pairing']['expires_at'] );
		$this->assertSame( 3, $r['pairing']['poll_interval_s'] );
	}

	public function test_created_errors(): void {
		$this->assertFalse( Cohort_Pairing_Protocol::read_created( new Cohort_Response( 400, array(), '{"error":{"code":"bad","message":"store_url is required","field":"store_url"}}' ), 0 )['ok'] );
		$this->assertSame( 'Cohort answered without user_code', Cohort_Pairing_Protocol::read_created( new Cohort_Response( 201, array(), '{"pairing_id":"p","poll_secret":"s","authorize_url":"u"}' ), 0 )['message'] );
	}

	public function test_poll_states(): void {
		$this->assertSame( 'pending', Cohort_Pairing_Protocol::read_poll( new Cohort_Response( 200, array(), '{"status":"pending"}' ) )['state'] );
		foreach ( array( 'claimed', 'expired', 'denied' ) as $state ) {
			$this->assertSame( $state, Cohort_Pairing_Protocol::read_poll( new Cohort_Response( 410, array(), '{"status":"' . $state . '"}' ) )['state'] );
		}
		$this->assertSame( 'error', Cohort_Pairing_Protocol::read_poll( Cohort_Response::network_error( 'down' ) )['state'] );
		$this->assertSame( 'error', Cohort_Pairing_Protocol::read_poll( new Cohort_Response( 500 ) )['state'] );
	}

	public function test_poll_approved(): void {
		$r = Cohort_Pairing_Protocol::read_poll(
			new Cohort_Response( 200, array(), '{"status":"approved","installation_id":"ins_1","installation_token":"cit_x","signing_secret":"sig","write_key":"wk","organization":{"id":"org_1","name":"Acme"}}' )
		);
		$this->assertSame( 'approved', $r['state'] );
		$this->assertSame( 'cit_x', $r['connection']['installation_token'] );
		$this->assertSame( 'Acme', $r['connection']['organization']['name'] );
	}
}
