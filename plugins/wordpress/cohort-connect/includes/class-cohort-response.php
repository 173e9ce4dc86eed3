<?php
/**
 * A response from Cohort (or a network error), independent of WordPress.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Immutable value object: status 0 means the request never got an answer.
 */
final class Cohort_Response {

	/**
	 * HTTP status, 0 for a network error.
	 *
	 * @var int
	 */
	public int $status;

	/**
	 * Headers with lower-case names.
	 *
	 * @var array<string,string>
	 */
	public array $headers;

	/**
	 * Raw body.
	 *
	 * @var string
	 */
	public string $body;

	/**
	 * Network error message, '' when an answer arrived.
	 *
	 * @var string
	 */
	public string $error;

	/**
	 * Constructor.
	 *
	 * @param int                  $status  HTTP status (0: network error).
	 * @param array<string,string> $headers Headers.
	 * @param string               $body    Body.
	 * @param string               $error   Network error message.
	 */
	public function __construct( int $status, array $headers = array(), string $body = '', string $error = '' ) {
		$this->status = $status;
		$lower        = array();
		foreach ( $headers as $name => $value ) {
			$lower[ strtolower( (string) $name ) ] = is_array( $value ) ? (string) end( $value ) : (string) $value;
		}
		$this->headers = $lower;
		$this->body    = $body;
		$this->error   = $error;
	}

	/**
	 * A network error (no answer).
	 *
	 * @param string $message What went wrong.
	 */
	public static function network_error( string $message ): self {
		return new self( 0, array(), '', '' === $message ? 'network error' : $message );
	}

	/**
	 * Whether the status is 2xx.
	 */
	public function ok(): bool {
		return $this->status >= 200 && $this->status < 300;
	}

	/**
	 * A header value or null.
	 *
	 * @param string $name Header name (any case).
	 */
	public function header( string $name ): ?string {
		$name = strtolower( $name );
		return $this->headers[ $name ] ?? null;
	}

	/**
	 * The body decoded as a JSON object, or an empty array.
	 *
	 * @return array<string,mixed>
	 */
	public function json(): array {
		if ( '' === $this->body ) {
			return array();
		}
		$data = json_decode( $this->body, true );
		return is_array( $data ) ? $data : array();
	}

	/**
	 * A short human description of a failed call: the network error, Cohort's
	 * error message when it sent one, or the status.
	 */
	public function describe(): string {
		if ( 0 === $this->status ) {
			return $this->error;
		}
		$data = $this->json();
		if ( isset( $data['error']['message'] ) && is_string( $data['error']['message'] ) ) {
			return 'HTTP ' . $this->status . ': ' . $data['error']['message'];
		}
		if ( isset( $data['status'] ) && is_string( $data['status'] ) ) {
			return 'HTTP ' . $this->status . ': ' . $data['status'];
		}
		return 'HTTP ' . $this->status;
	}
}
