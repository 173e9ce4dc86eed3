<?php
/**
 * Account events only the site sees (connect.md §2, POST /connect/v1/events):
 * a visitor creating an account ("Signed Up", with an identify) and signing
 * in ("Signed In"). They go through the outbox, so a Cohort that is down
 * loses none, and each message's messageId is fixed when it is queued, so a
 * retried call is a duplicate in Cohort, never a second event.
 *
 * The message builders are pure PHP (unit-tested); the hooks need WordPress.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Builds and queues account events.
 */
final class Cohort_Account_Events {

	const LIBRARY = 'cohort-connect';

	/**
	 * The batch for a new account: identify with the account's traits, then "Signed Up".
	 * The messageIds derive from the site and the user id: an account is created once.
	 *
	 * @param array<string,mixed> $user    {id, email, username, first_name, last_name, registered (ISO 8601 UTC)}.
	 * @param string              $site    The site's URL (part of the messageIds).
	 * @param string              $version The plugin version.
	 * @param string              $now     Event time, ISO 8601 UTC.
	 * @return array<string,mixed>
	 */
	public static function signed_up( array $user, string $site, string $version, string $now ): array {
		$user_id = (string) $user['id'];
		$key     = substr( hash( 'sha256', $site . '|' . $user_id ), 0, 24 );
		$traits  = self::traits( $user );
		return self::batch(
			array(
				array(
					'type'      => 'identify',
					'messageId' => 'wp-signup-identify-' . $key,
					'userId'    => $user_id,
					'traits'    => $traits,
					'timestamp' => $now,
				),
				array(
					'type'       => 'track',
					'messageId'  => 'wp-signup-' . $key,
					'userId'     => $user_id,
					'event'      => 'Signed Up',
					'properties' => self::properties( $traits ),
					'timestamp'  => $now,
				),
			),
			$version
		);
	}

	/**
	 * The batch for a sign-in: "Signed In" with the account's email. The
	 * messageId ($event_id) is drawn once when the call is queued.
	 *
	 * @param array<string,mixed> $user     {id, email, username, …}.
	 * @param string              $event_id A unique id for this sign-in.
	 * @param string              $version  The plugin version.
	 * @param string              $now      Event time, ISO 8601 UTC.
	 * @return array<string,mixed>
	 */
	public static function signed_in( array $user, string $event_id, string $version, string $now ): array {
		$traits = self::traits( $user );
		return self::batch(
			array(
				array(
					'type'       => 'track',
					'messageId'  => 'wp-signin-' . $event_id,
					'userId'     => (string) $user['id'],
					'event'      => 'Signed In',
					'properties' => self::properties( $traits ),
					'context'    => array( 'traits' => array_filter( array( 'email' => $traits['email'] ?? null ), static fn ( $v ) => null !== $v ) ),
					'timestamp'  => $now,
				),
			),
			$version
		);
	}

	/**
	 * Segment traits of an account (empty values left out).
	 *
	 * @param array<string,mixed> $user The account.
	 * @return array<string,string>
	 */
	public static function traits( array $user ): array {
		$traits = array(
			'email'     => isset( $user['email'] ) ? strtolower( trim( (string) $user['email'] ) ) : '',
			'username'  => (string) ( $user['username'] ?? '' ),
			'firstName' => (string) ( $user['first_name'] ?? '' ),
			'lastName'  => (string) ( $user['last_name'] ?? '' ),
			'createdAt' => (string) ( $user['registered'] ?? '' ),
		);
		return array_filter( $traits, static fn ( $v ) => '' !== $v );
	}

	/**
	 * The properties of an account event: its email and username, when known.
	 *
	 * @param array<string,string> $traits The account's traits.
	 * @return array<string,string>
	 */
	private static function properties( array $traits ): array {
		return array_intersect_key( $traits, array_flip( array( 'email', 'username' ) ) );
	}

	/**
	 * A Segment batch body with the library in its context.
	 *
	 * @param array<int,array<string,mixed>> $messages Messages.
	 * @param string                         $version  Plugin version.
	 * @return array<string,mixed>
	 */
	private static function batch( array $messages, string $version ): array {
		return array(
			'batch'   => $messages,
			'context' => array(
				'library' => array(
					'name'    => self::LIBRARY,
					'version' => $version,
				),
			),
		);
	}

	/**
	 * Registers the WordPress hooks.
	 */
	public static function boot(): void {
		add_action( 'user_register', array( __CLASS__, 'on_user_register' ), 20, 1 );
		add_action( 'wp_login', array( __CLASS__, 'on_login' ), 20, 2 );
	}

	/**
	 * The account as the builders take it.
	 *
	 * @param WP_User $user The user.
	 * @return array<string,mixed>
	 */
	private static function account( $user ): array {
		$registered = (string) $user->user_registered;
		return array(
			'id'         => (int) $user->ID,
			'email'      => (string) $user->user_email,
			'username'   => (string) $user->user_login,
			'first_name' => (string) get_user_meta( $user->ID, 'first_name', true ),
			'last_name'  => (string) get_user_meta( $user->ID, 'last_name', true ),
			'registered' => '' !== $registered && '0000-00-00 00:00:00' !== $registered ? gmdate( 'Y-m-d\TH:i:s\Z', (int) strtotime( $registered . ' UTC' ) ) : '',
		);
	}

	/**
	 * `user_register`: queues the sign-up (sent after the response).
	 *
	 * @param int $user_id The new user's id.
	 */
	public static function on_user_register( $user_id ): void {
		$user = get_userdata( (int) $user_id );
		if ( ! $user || ! Cohort_Connection::is_connected() ) {
			return;
		}
		Cohort_Api::enqueue( 'POST', '/connect/v1/events', self::signed_up( self::account( $user ), home_url( '/' ), COHORT_CONNECT_VERSION, gmdate( 'Y-m-d\TH:i:s\Z' ) ) );
	}

	/**
	 * `wp_login`: queues the sign-in (sent after the response).
	 *
	 * @param string       $login The login name.
	 * @param WP_User|null $user  The user.
	 */
	public static function on_login( $login, $user = null ): void {
		if ( ! ( $user instanceof WP_User ) || ! Cohort_Connection::is_connected() ) {
			return;
		}
		Cohort_Api::enqueue( 'POST', '/connect/v1/events', self::signed_in( self::account( $user ), wp_generate_uuid4(), COHORT_CONNECT_VERSION, gmdate( 'Y-m-d\TH:i:s\Z' ) ) );
	}
}
