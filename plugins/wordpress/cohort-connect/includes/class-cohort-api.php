<?php
/**
 * HTTP calls to Cohort and the outbox runner (WordPress side).
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Builds the outbox over the table, sends its calls with the WordPress HTTP API
 * after the response (shutdown) or from WP-Cron, and applies what came back.
 */
final class Cohort_Api {

	const FAILURES_OPTION  = 'cohort_connect_failures';
	const HEARTBEAT_OPTION = 'cohort_connect_heartbeat';
	const LOCK_OPTION      = 'cohort_connect_outbox_lock';
	const LOCK_TTL         = 300;

	/**
	 * Whether a flush is already registered for the end of this request.
	 *
	 * @var bool
	 */
	private static bool $flush_on_shutdown = false;

	/**
	 * One HTTP call.
	 *
	 * @param string      $url     Absolute URL.
	 * @param string      $method  Method.
	 * @param string|null $token   Bearer token.
	 * @param string      $body    JSON body or ''.
	 * @param int         $timeout Seconds.
	 */
	public static function request( string $url, string $method, ?string $token, string $body = '', int $timeout = 10 ): Cohort_Response {
		$headers = array(
			'Accept'     => 'application/json',
			'User-Agent' => 'CohortConnect/' . COHORT_CONNECT_VERSION . '; WordPress/' . get_bloginfo( 'version' ) . '; ' . home_url( '/' ),
		);
		if ( null !== $token && '' !== $token ) {
			$headers['Authorization'] = 'Bearer ' . $token;
		}
		$args = array(
			'method'      => strtoupper( $method ),
			'timeout'     => $timeout,
			'redirection' => 0,
			'headers'     => $headers,
		);
		if ( '' !== $body ) {
			$args['headers']['Content-Type'] = 'application/json';
			$args['body']                    = $body;
		}
		$result = wp_remote_request( $url, $args );
		if ( is_wp_error( $result ) ) {
			return Cohort_Response::network_error( $result->get_error_message() );
		}
		$headers = wp_remote_retrieve_headers( $result );
		$flat    = array();
		if ( is_object( $headers ) && method_exists( $headers, 'getAll' ) ) {
			$headers = $headers->getAll();
		}
		foreach ( (array) $headers as $name => $value ) {
			$flat[ (string) $name ] = is_array( $value ) ? implode( ', ', $value ) : (string) $value;
		}
		return new Cohort_Response( (int) wp_remote_retrieve_response_code( $result ), $flat, (string) wp_remote_retrieve_body( $result ) );
	}

	/**
	 * The table-backed storage.
	 */
	public static function storage(): Cohort_Db_Storage {
		return new Cohort_Db_Storage();
	}

	/**
	 * The outbox with the saved failure log.
	 */
	public static function outbox(): Cohort_Outbox {
		return new Cohort_Outbox( self::storage(), new Cohort_Retry_Policy(), Cohort_Failure_Log::from_array( get_option( self::FAILURES_OPTION ) ) );
	}

	/**
	 * The saved failure log.
	 */
	public static function failure_log(): Cohort_Failure_Log {
		return Cohort_Failure_Log::from_array( get_option( self::FAILURES_OPTION ) );
	}

	/**
	 * Queues a call for the current installation and sends it after the response.
	 *
	 * @param string                   $method     Method.
	 * @param string                   $path       Path, e.g. /connect/v1/heartbeat.
	 * @param array<string,mixed>|null $body       Body.
	 * @param string|null              $dedupe_key Replace a queued call with this key.
	 * @param int                      $delay      Seconds to wait before sending (a debounce with a dedupe key).
	 */
	public static function enqueue( string $method, string $path, ?array $body, ?string $dedupe_key = null, int $delay = 0 ): void {
		if ( ! Cohort_Connection::is_connected() ) {
			return;
		}
		$now = time();
		self::outbox()->enqueue( $method, $path, $body, $now, $dedupe_key, null, $delay > 0 ? $now + $delay : null );
		if ( 0 === $delay ) {
			self::flush_after_response();
		}
	}

	/**
	 * Registers a flush at shutdown, once per request.
	 */
	public static function flush_after_response(): void {
		if ( self::$flush_on_shutdown ) {
			return;
		}
		self::$flush_on_shutdown = true;
		add_action( 'shutdown', array( __CLASS__, 'shutdown_flush' ), PHP_INT_MAX );
	}

	/**
	 * Ends the response to the browser first where the server allows it, then flushes.
	 */
	public static function shutdown_flush(): void {
		if ( function_exists( 'fastcgi_finish_request' ) ) {
			fastcgi_finish_request();
		} elseif ( function_exists( 'litespeed_finish_request' ) ) {
			litespeed_finish_request();
		}
		self::flush();
	}

	/**
	 * The WP-Cron event: flushes when anything is queued.
	 */
	public static function cron_flush(): void {
		if ( self::storage()->depth() > 0 ) {
			self::flush();
		}
	}

	/**
	 * Sends due calls (one runner at a time) and applies the results.
	 *
	 * @return Cohort_Outbox_Report|null Null when another runner holds the lock.
	 */
	public static function flush(): ?Cohort_Outbox_Report {
		if ( ! self::lock() ) {
			return null;
		}
		try {
			$outbox = self::outbox();
			$conn   = Cohort_Connection::get();
			$report = $outbox->run(
				static function ( array $row ) use ( $conn ): Cohort_Response {
					$own   = ! empty( $row['token'] );
					$path  = (string) $row['path'];
					$url   = preg_match( '#^https?://#i', $path ) ? $path : ( ( $conn['cohort_url'] ?? '' ) . $path );
					$token = $own ? (string) $row['token'] : (string) ( $conn['installation_token'] ?? '' );
					return self::request( $url, (string) $row['method'], $token, (string) $row['body'] );
				},
				time(),
				null !== $conn
			);
			update_option( self::FAILURES_OPTION, $outbox->log()->to_array(), false );
			foreach ( $report->delivered as $delivered ) {
				if ( '/connect/v1/heartbeat' === $delivered[0]['path'] ) {
					$answer = $delivered[1]->json();
					update_option(
						self::HEARTBEAT_OPTION,
						array(
							'last_delivered_at' => time(),
							'server_time'       => isset( $answer['server_time'] ) ? (string) $answer['server_time'] : '',
							'commands_pending'  => isset( $answer['commands_pending'] ) ? (int) $answer['commands_pending'] : 0,
						),
						false
					);
					if ( ! empty( $answer['commands_pending'] ) ) {
						// Cohort has work for the plugin (a sync): pick it up from WP-Cron.
						Cohort_Sync::schedule();
					}
				}
			}
			if ( $report->unauthorized && null !== $conn ) {
				Cohort_Connection::clear( 'revoked', __( 'Cohort rejected this site\'s installation token (401): the connection was revoked or replaced. Nothing is sent until you reconnect.', 'cohort-connect' ) );
			}
			if ( Cohort_Settings::get()['debug'] && ( $report->retried || $report->dropped ) && defined( 'WP_DEBUG_LOG' ) && WP_DEBUG_LOG ) {
				error_log( sprintf( 'Cohort Connect: outbox run: %d delivered, %d to retry, %d dropped; last error: %s', count( $report->delivered ), $report->retried, $report->dropped, (string) $outbox->log()->last_error() ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
			}
			return $report;
		} finally {
			self::unlock();
		}
	}

	/**
	 * Takes the runner lock (add_option is atomic on the unique option name).
	 */
	private static function lock(): bool {
		if ( add_option( self::LOCK_OPTION, time(), '', false ) ) {
			return true;
		}
		$held_since = (int) get_option( self::LOCK_OPTION, 0 );
		if ( $held_since > 0 && time() - $held_since < self::LOCK_TTL ) {
			return false;
		}
		// A stale lock from a runner that died: take it over.
		delete_option( self::LOCK_OPTION );
		return add_option( self::LOCK_OPTION, time(), '', false );
	}

	/**
	 * Releases the runner lock.
	 */
	private static function unlock(): void {
		delete_option( self::LOCK_OPTION );
	}

	/**
	 * The last heartbeat answer.
	 *
	 * @return array<string,mixed>
	 */
	public static function heartbeat_state(): array {
		$state = get_option( self::HEARTBEAT_OPTION );
		return is_array( $state ) ? $state : array();
	}
}
