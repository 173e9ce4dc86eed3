<?php
/**
 * Reading Cohort's answers to the pairing calls (connect.md §1). Pure PHP.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Turns answers into plain arrays the plugin stores and shows.
 */
final class Cohort_Pairing_Protocol {

	const PENDING  = 'pending';
	const APPROVED = 'approved';
	const DENIED   = 'denied';
	const EXPIRED  = 'expired';
	const CLAIMED  = 'claimed';
	const ERROR    = 'error';

	/**
	 * The answer to POST /connect/v1/pairings.
	 *
	 * @param Cohort_Response $response The answer.
	 * @param int             $now      Unix time.
	 * @return array{ok:bool, pairing?:array<string,mixed>, message?:string}
	 */
	public static function read_created( Cohort_Response $response, int $now ): array {
		if ( 201 !== $response->status && 200 !== $response->status ) {
			return array(
				'ok'      => false,
				'message' => $response->describe(),
			);
		}
		$data = $response->json();
		foreach ( array( 'pairing_id', 'poll_secret', 'user_code', 'authorize_url' ) as $field ) {
			if ( ! isset( $data[ $field ] ) || ! is_string( $data[ $field ] ) || '' === $data[ $field ] ) {
				return array(
					'ok'      => false,
					'message' => 'Cohort answered without ' . $field,
				);
			}
		}
		$expires = $now + 900;
		if ( isset( $data['expires_at'] ) && is_string( $data['expires_at'] ) ) {
			$parsed = strtotime( $data['expires_at'] );
			if ( false !== $parsed ) {
				$expires = $parsed;
			}
		}
		$interval = isset( $data['poll_interval_s'] ) ? (int) $data['poll_interval_s'] : 5;
		return array(
			'ok'      => true,
			'pairing' => array(
				'pairing_id'      => $data['pairing_id'],
				'poll_secret'     => $data['poll_secret'],
				'user_code'       => $data['user_code'],
				'authorize_url'   => $data['authorize_url'],
				'expires_at'      => $expires,
				'poll_interval_s' => max( 2, min( 60, $interval ) ),
				'started_at'      => $now,
			),
		);
	}

	/**
	 * The answer to POST /connect/v1/pairings/{id}/poll.
	 *
	 * @param Cohort_Response $response The answer.
	 * @return array{state:string, connection?:array<string,mixed>, message?:string}
	 */
	public static function read_poll( Cohort_Response $response ): array {
		$data   = $response->json();
		$status = isset( $data['status'] ) && is_string( $data['status'] ) ? $data['status'] : '';
		if ( 200 === $response->status && self::PENDING === $status ) {
			return array( 'state' => self::PENDING );
		}
		if ( 200 === $response->status && self::APPROVED === $status ) {
			foreach ( array( 'installation_id', 'installation_token', 'write_key' ) as $field ) {
				if ( ! isset( $data[ $field ] ) || ! is_string( $data[ $field ] ) || '' === $data[ $field ] ) {
					return array(
						'state'   => self::ERROR,
						'message' => 'Cohort approved without ' . $field,
					);
				}
			}
			$org = isset( $data['organization'] ) && is_array( $data['organization'] ) ? $data['organization'] : array();
			return array(
				'state'      => self::APPROVED,
				'connection' => array(
					'installation_id'    => $data['installation_id'],
					'installation_token' => $data['installation_token'],
					'signing_secret'     => isset( $data['signing_secret'] ) && is_string( $data['signing_secret'] ) ? $data['signing_secret'] : '',
					'write_key'          => $data['write_key'],
					'organization'       => array(
						'id'   => isset( $org['id'] ) ? (string) $org['id'] : '',
						'name' => isset( $org['name'] ) ? (string) $org['name'] : '',
					),
				),
			);
		}
		if ( 410 === $response->status && in_array( $status, array( self::CLAIMED, self::EXPIRED, self::DENIED ), true ) ) {
			return array( 'state' => $status );
		}
		if ( 404 === $response->status || 401 === $response->status ) {
			// Unknown pairing or wrong poll secret: this pairing cannot complete.
			return array(
				'state'   => self::EXPIRED,
				'message' => $response->describe(),
			);
		}
		return array(
			'state'   => self::ERROR,
			'message' => $response->describe(),
		);
	}
}
