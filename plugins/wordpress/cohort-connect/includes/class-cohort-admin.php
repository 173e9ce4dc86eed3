<?php
/**
 * The admin page: settings, connection, diagnostics (Settings → Cohort, or
 * WooCommerce → Cohort when WooCommerce is active).
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Every action is a POST to admin-post.php with a nonce and a capability check.
 */
final class Cohort_Admin {

	const ACTIONS = array( 'start', 'check', 'cancel', 'disconnect', 'retry' );

	/**
	 * Registers the admin hooks.
	 */
	public static function boot(): void {
		add_action( 'admin_menu', array( __CLASS__, 'menu' ), 60 );
		add_action( 'admin_init', array( 'Cohort_Settings', 'register' ) );
		add_filter( 'option_page_capability_' . Cohort_Settings::GROUP, array( 'Cohort_Plugin', 'capability' ) );
		add_action( 'admin_notices', array( __CLASS__, 'revoked_notice' ) );
		add_filter( 'plugin_action_links_' . plugin_basename( COHORT_CONNECT_FILE ), array( __CLASS__, 'action_links' ) );
		foreach ( self::ACTIONS as $action ) {
			add_action( 'admin_post_cohort_connect_' . $action, array( __CLASS__, 'handle_' . $action ) );
		}
	}

	/**
	 * Adds the page.
	 */
	public static function menu(): void {
		$title = __( 'Cohort', 'cohort-connect' );
		if ( Cohort_Plugin::woocommerce_active() ) {
			$hook = add_submenu_page( 'woocommerce', $title, $title, 'manage_woocommerce', Cohort_Plugin::SLUG, array( __CLASS__, 'render' ) );
		} else {
			$hook = add_options_page( $title, $title, 'manage_options', Cohort_Plugin::SLUG, array( __CLASS__, 'render' ) );
		}
		if ( $hook ) {
			add_action( 'load-' . $hook, array( __CLASS__, 'on_load' ) );
		}
	}

	/**
	 * On every visit while a pairing is pending (notably the return from Cohort's
	 * authorize page), poll it once, server to server.
	 */
	public static function on_load(): void {
		if ( null !== Cohort_Pairing::pending() && current_user_can( Cohort_Plugin::capability() ) ) {
			Cohort_Pairing::poll();
		}
	}

	/**
	 * A Settings link on the Plugins screen.
	 *
	 * @param array<int|string,string> $links Links.
	 * @return array<int|string,string>
	 */
	public static function action_links( $links ) {
		array_unshift( $links, '<a href="' . esc_url( Cohort_Plugin::admin_url() ) . '">' . esc_html__( 'Settings', 'cohort-connect' ) . '</a>' );
		return $links;
	}

	/**
	 * A notice on every admin screen when Cohort revoked the installation.
	 */
	public static function revoked_notice(): void {
		if ( ! current_user_can( Cohort_Plugin::capability() ) ) {
			return;
		}
		$screen = function_exists( 'get_current_screen' ) ? get_current_screen() : null;
		if ( $screen && str_contains( (string) $screen->id, Cohort_Plugin::SLUG ) ) {
			return;
		}
		if ( 'revoked' === Cohort_Connection::status()['state'] ) {
			printf(
				'<div class="notice notice-error"><p>%1$s <a href="%2$s">%3$s</a></p></div>',
				esc_html__( 'Cohort Connect is disconnected: Cohort no longer accepts this site\'s token, and nothing is being sent.', 'cohort-connect' ),
				esc_url( Cohort_Plugin::admin_url() ),
				esc_html__( 'Reconnect', 'cohort-connect' )
			);
		}
	}

	/**
	 * Dies unless the user may act and the nonce is right.
	 *
	 * @param string $action Action name.
	 */
	private static function guard( string $action ): void {
		if ( ! current_user_can( Cohort_Plugin::capability() ) ) {
			wp_die( esc_html__( 'You are not allowed to manage the Cohort connection.', 'cohort-connect' ), '', array( 'response' => 403 ) );
		}
		check_admin_referer( 'cohort_connect_' . $action );
	}

	/**
	 * Back to the page with a message code.
	 *
	 * @param string $message Message code.
	 */
	private static function back( string $message = '' ): void {
		wp_safe_redirect( Cohort_Plugin::admin_url( '' === $message ? array() : array( 'cohort_msg' => $message ) ) );
		exit;
	}

	/**
	 * Connect / Reconnect: starts a pairing and sends the browser to Cohort.
	 */
	public static function handle_start(): void {
		self::guard( 'start' );
		$started = Cohort_Pairing::start();
		if ( ! $started['ok'] ) {
			update_option(
				Cohort_Pairing::NOTICE_OPTION,
				array(
					'state'   => 'error',
					'message' => (string) ( $started['message'] ?? '' ),
					'at'      => time(),
				),
				false
			);
			self::back();
		}
		// An external redirect to the configured Cohort host (checked in start()).
		wp_redirect( $started['authorize_url'] ); // phpcs:ignore WordPress.Security.SafeRedirect.wp_redirect_wp_redirect
		exit;
	}

	/**
	 * Check status: polls now.
	 */
	public static function handle_check(): void {
		self::guard( 'check' );
		Cohort_Pairing::poll();
		self::back();
	}

	/**
	 * Cancels a pending pairing.
	 */
	public static function handle_cancel(): void {
		self::guard( 'cancel' );
		Cohort_Pairing::cancel();
		self::back();
	}

	/**
	 * Disconnect: revokes the installation on Cohort and forgets it here.
	 * The revocation goes through the outbox with its own token, so it is retried
	 * if Cohort cannot be reached now.
	 */
	public static function handle_disconnect(): void {
		self::guard( 'disconnect' );
		$conn = Cohort_Connection::get();
		if ( null === $conn ) {
			self::back();
		}
		$storage = Cohort_Api::storage();
		$storage->purge_current();
		Cohort_Api::outbox()->enqueue( 'DELETE', $conn['cohort_url'] . '/connect/v1/installation', null, time(), null, (string) $conn['installation_token'] );
		Cohort_Connection::clear( 'disconnected', '' );
		$storage->set_paused_until( 0 );
		Cohort_Api::flush();
		self::back( $storage->depth() > 0 ? 'revoke_queued' : 'disconnected' );
	}

	/**
	 * Retry now: every queued call becomes due and is sent now.
	 */
	public static function handle_retry(): void {
		self::guard( 'retry' );
		Cohort_Api::outbox()->retry_now( time() );
		Cohort_Api::flush();
		self::back( 'retried' );
	}

	/**
	 * A button in its own form.
	 *
	 * @param string $action Action name.
	 * @param string $label  Button text.
	 * @param string $class  Button classes.
	 */
	private static function button( string $action, string $label, string $class = 'button' ): void {
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="display:inline-block;margin-right:8px">';
		echo '<input type="hidden" name="action" value="' . esc_attr( 'cohort_connect_' . $action ) . '" />';
		wp_nonce_field( 'cohort_connect_' . $action );
		echo '<button type="submit" class="' . esc_attr( $class ) . '" id="' . esc_attr( 'cohort-connect-' . $action ) . '">' . esc_html( $label ) . '</button>';
		echo '</form>';
	}

	/**
	 * A date in the site's format.
	 *
	 * @param int $time Unix time.
	 */
	private static function when( int $time ): string {
		if ( $time <= 0 ) {
			return '—';
		}
		return wp_date( get_option( 'date_format' ) . ' ' . get_option( 'time_format' ), $time );
	}

	/**
	 * The page.
	 */
	public static function render(): void {
		if ( ! current_user_can( Cohort_Plugin::capability() ) ) {
			return;
		}
		echo '<div class="wrap" id="cohort-connect">';
		echo '<h1>' . esc_html__( 'Cohort', 'cohort-connect' ) . '</h1>';
		if ( Cohort_Plugin::woocommerce_active() ) {
			settings_errors();
		}
		self::render_message();
		self::render_connection();
		echo '<form method="post" action="' . esc_url( admin_url( 'options.php' ) ) . '">';
		settings_fields( Cohort_Settings::GROUP );
		do_settings_sections( Cohort_Plugin::SLUG );
		submit_button( __( 'Save settings', 'cohort-connect' ) );
		echo '</form>';
		self::render_diagnostics();
		echo '</div>';
	}

	/**
	 * The message after an action (codes only: no text is taken from the URL).
	 */
	private static function render_message(): void {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- display only.
		$code     = isset( $_GET['cohort_msg'] ) ? sanitize_key( wp_unslash( $_GET['cohort_msg'] ) ) : '';
		$messages = array(
			'disconnected'   => array( 'success', __( 'Disconnected. Cohort revoked this site\'s installation and nothing more is sent.', 'cohort-connect' ) ),
			'revoke_queued'  => array( 'warning', __( 'Disconnected here. Cohort could not be reached to revoke the installation; the revocation is queued and will be retried.', 'cohort-connect' ) ),
			'retried'        => array( 'info', __( 'Queued calls were retried.', 'cohort-connect' ) ),
			'upgraded'       => array( 'success', __( 'Store features are on in Cohort. The first sync of products, customers and orders has started.', 'cohort-connect' ) ),
			/* translators: %s: the error. */
			'upgrade_failed' => array( 'error', sprintf( __( 'Cohort could not enable the store features: %s', 'cohort-connect' ), (string) get_option( 'cohort_connect_upgrade_error', __( 'not connected', 'cohort-connect' ) ) ) ),
		);
		if ( isset( $messages[ $code ] ) ) {
			printf( '<div class="notice notice-%1$s is-dismissible"><p>%2$s</p></div>', esc_attr( $messages[ $code ][0] ), esc_html( $messages[ $code ][1] ) );
		}
	}

	/**
	 * The connection box.
	 */
	private static function render_connection(): void {
		$settings = Cohort_Settings::get();
		$conn     = Cohort_Connection::get();
		$status   = Cohort_Connection::status();
		$pending  = Cohort_Pairing::pending();
		$notice   = Cohort_Pairing::notice();

		echo '<h2>' . esc_html__( 'Connection', 'cohort-connect' ) . '</h2>';
		echo '<div class="card" id="cohort-connect-status" style="max-width:720px">';

		if ( null !== $notice ) {
			$texts = array(
				'approved' => array( 'success', __( 'The connection was approved in Cohort.', 'cohort-connect' ) ),
				'denied'   => array( 'error', __( 'The connection was denied in Cohort. Nothing is sent. You can start again.', 'cohort-connect' ) ),
				'expired'  => array( 'error', __( 'The connection request expired before it was approved (requests are valid for 15 minutes). Start again.', 'cohort-connect' ) ),
				'claimed'  => array( 'error', __( 'This connection request was already used. Start again.', 'cohort-connect' ) ),
				'error'    => array( 'error', __( 'The connection could not be started.', 'cohort-connect' ) ),
			);
			$state = (string) $notice['state'];
			if ( isset( $texts[ $state ] ) && ! ( 'approved' === $state && null === $conn ) ) {
				printf(
					'<div class="notice notice-%1$s inline" id="cohort-connect-pairing-%2$s"><p>%3$s%4$s</p></div>',
					esc_attr( $texts[ $state ][0] ),
					esc_attr( $state ),
					esc_html( $texts[ $state ][1] ),
					'' !== (string) $notice['message'] ? ' ' . esc_html( (string) $notice['message'] ) : ''
				);
			}
			// Success is said once; a denial or an expiry stays until the next attempt.
			if ( 'approved' === $state ) {
				delete_option( Cohort_Pairing::NOTICE_OPTION );
			}
		}

		if ( null !== $pending ) {
			echo '<p><strong>' . esc_html__( 'Waiting for approval in Cohort.', 'cohort-connect' ) . '</strong></p>';
			printf(
				'<p>%1$s <code id="cohort-connect-user-code" style="font-size:1.4em">%2$s</code></p>',
				esc_html__( 'Check that Cohort shows this code:', 'cohort-connect' ),
				esc_html( (string) $pending['user_code'] )
			);
			/* translators: %s: date and time. */
			echo '<p>' . esc_html( sprintf( __( 'The request expires at %s.', 'cohort-connect' ), self::when( (int) $pending['expires_at'] ) ) ) . '</p>';
			if ( ! empty( $pending['last_error'] ) ) {
				/* translators: %s: error message. */
				echo '<p class="description">' . esc_html( sprintf( __( 'Last check failed: %s (retrying).', 'cohort-connect' ), (string) $pending['last_error'] ) ) . '</p>';
			}
			echo '<p><a class="button button-primary" id="cohort-connect-authorize" href="' . esc_url( (string) $pending['authorize_url'] ) . '">' . esc_html__( 'Open Cohort to approve', 'cohort-connect' ) . '</a></p>';
			self::button( 'check', __( 'Check status', 'cohort-connect' ) );
			self::button( 'cancel', __( 'Cancel', 'cohort-connect' ) );
		} elseif ( null !== $conn ) {
			printf(
				'<p id="cohort-connect-connected" style="font-size:1.2em">&#10003; %s</p>',
				/* translators: %s: organisation name in Cohort. */
				esc_html( sprintf( __( 'Connected to %s', 'cohort-connect' ), (string) ( $conn['organization']['name'] ?? '' ) ) )
			);
			echo '<table class="widefat striped" style="margin-bottom:12px"><tbody>';
			$rows = array(
				__( 'Cohort', 'cohort-connect' )       => (string) $conn['cohort_url'],
				__( 'Installation', 'cohort-connect' ) => (string) $conn['installation_id'],
				__( 'Since', 'cohort-connect' )        => self::when( (int) ( $conn['connected_at'] ?? 0 ) ),
			);
			foreach ( $rows as $label => $value ) {
				echo '<tr><th>' . esc_html( $label ) . '</th><td><code>' . esc_html( $value ) . '</code></td></tr>';
			}
			echo '</tbody></table>';
			if ( '' !== $settings['cohort_url'] && $settings['cohort_url'] !== $conn['cohort_url'] ) {
				echo '<p class="notice notice-warning inline">' . esc_html__( 'The Cohort URL in the settings differs from the connected one. Reconnect to use the new address.', 'cohort-connect' ) . '</p>';
			}
			self::button( 'start', __( 'Reconnect', 'cohort-connect' ) );
			self::button( 'disconnect', __( 'Disconnect', 'cohort-connect' ), 'button button-link-delete' );
		} else {
			if ( 'revoked' === $status['state'] ) {
				echo '<div class="notice notice-error inline" id="cohort-connect-revoked"><p><strong>' . esc_html__( 'Disconnected.', 'cohort-connect' ) . '</strong> ' . esc_html( $status['message'] ) . '</p></div>';
			} elseif ( 'disconnected' === $status['state'] ) {
				echo '<p id="cohort-connect-disconnected">' . esc_html__( 'Disconnected. Nothing is tracked or sent.', 'cohort-connect' ) . '</p>';
			} else {
				echo '<p>' . esc_html__( 'Not connected. Nothing is tracked or sent until you connect.', 'cohort-connect' ) . '</p>';
			}
			if ( '' === $settings['cohort_url'] ) {
				echo '<p class="description">' . esc_html__( 'Enter your Cohort URL below and save, then connect.', 'cohort-connect' ) . '</p>';
			} else {
				self::button( 'start', __( 'Connect to Cohort', 'cohort-connect' ), 'button button-primary' );
			}
		}
		echo '</div>';
	}

	/**
	 * Diagnostics: outbox depth, heartbeat, last 50 failures, Retry now.
	 */
	private static function render_diagnostics(): void {
		$storage   = Cohort_Api::storage();
		$log       = Cohort_Api::failure_log();
		$heartbeat = Cohort_Api::heartbeat_state();
		$paused    = $storage->paused_until();
		$depth     = $storage->depth();

		echo '<h2>' . esc_html__( 'Diagnostics', 'cohort-connect' ) . '</h2>';
		echo '<table class="widefat striped" style="max-width:720px;margin-bottom:12px"><tbody>';
		printf( '<tr><th>%1$s</th><td id="cohort-connect-outbox-depth">%2$s</td></tr>', esc_html__( 'Calls waiting in the outbox', 'cohort-connect' ), esc_html( number_format_i18n( $depth ) ) );
		if ( $paused > time() ) {
			printf( '<tr><th>%1$s</th><td>%2$s</td></tr>', esc_html__( 'Sending paused until', 'cohort-connect' ), esc_html( self::when( $paused ) ) );
		}
		printf( '<tr><th>%1$s</th><td>%2$s</td></tr>', esc_html__( 'Failures in the last 24 hours', 'cohort-connect' ), esc_html( number_format_i18n( $log->count_24h( time() ) ) ) );
		printf( '<tr><th>%1$s</th><td id="cohort-connect-last-heartbeat">%2$s</td></tr>', esc_html__( 'Last heartbeat delivered', 'cohort-connect' ), esc_html( self::when( (int) ( $heartbeat['last_delivered_at'] ?? 0 ) ) ) );
		$sync = Cohort_Sync::state();
		if ( null !== $sync ) {
			$resource = Cohort_Sync_State::current( $sync );
			printf(
				'<tr><th>%1$s</th><td id="cohort-connect-sync">%2$s</td></tr>',
				esc_html__( 'Store sync', 'cohort-connect' ),
				esc_html(
					sprintf(
						/* translators: 1: products sent, 2: customers sent, 3: orders sent, 4: resource being sent. */
						__( 'running: %1$d products, %2$d customers, %3$d orders sent so far (now: %4$s)', 'cohort-connect' ),
						(int) $sync['counts']['products'],
						(int) $sync['counts']['customers'],
						(int) $sync['counts']['orders'],
						null === $resource ? __( 'finishing', 'cohort-connect' ) : $resource
					) . ( '' !== (string) $sync['last_error'] ? ' — ' . (string) $sync['last_error'] : '' )
				)
			);
		} else {
			$last = get_option( 'cohort_connect_last_sync' );
			if ( is_array( $last ) ) {
				printf(
					'<tr><th>%1$s</th><td id="cohort-connect-sync">%2$s</td></tr>',
					esc_html__( 'Last store sync', 'cohort-connect' ),
					esc_html(
						sprintf(
							/* translators: 1: date, 2: products, 3: customers, 4: guest buyers, 5: orders. */
							__( '%1$s: %2$d products, %3$d customers, %4$d guest buyers, %5$d orders', 'cohort-connect' ),
							self::when( (int) $last['finished_at'] ),
							(int) ( $last['counts']['products'] ?? 0 ),
							(int) ( $last['counts']['customers'] ?? 0 ),
							(int) ( $last['counts']['guests'] ?? 0 ),
							(int) ( $last['counts']['orders'] ?? 0 )
						)
					)
				);
			}
		}
		if ( ! empty( $heartbeat['commands_pending'] ) ) {
			printf( '<tr><th>%1$s</th><td>%2$s</td></tr>', esc_html__( 'Commands waiting in Cohort', 'cohort-connect' ), esc_html( number_format_i18n( (int) $heartbeat['commands_pending'] ) ) );
		}
		echo '</tbody></table>';
		self::button( 'retry', __( 'Retry now', 'cohort-connect' ) );

		echo '<h3>' . esc_html__( 'Recent failures', 'cohort-connect' ) . '</h3>';
		$entries = $log->entries();
		if ( array() === $entries ) {
			echo '<p id="cohort-connect-no-failures">' . esc_html__( 'No failures recorded.', 'cohort-connect' ) . '</p>';
			return;
		}
		echo '<table class="widefat striped" id="cohort-connect-failures"><thead><tr>';
		foreach ( array( __( 'Time', 'cohort-connect' ), __( 'Call', 'cohort-connect' ), __( 'Status', 'cohort-connect' ), __( 'Message', 'cohort-connect' ), __( 'Outcome', 'cohort-connect' ) ) as $heading ) {
			echo '<th>' . esc_html( $heading ) . '</th>';
		}
		echo '</tr></thead><tbody>';
		$outcomes = array(
			'retry'        => __( 'will retry', 'cohort-connect' ),
			'drop'         => __( 'dropped', 'cohort-connect' ),
			'unauthorized' => __( 'disconnected', 'cohort-connect' ),
		);
		foreach ( $entries as $entry ) {
			$status = (int) $entry['status'];
			printf(
				'<tr><td>%1$s</td><td><code>%2$s</code></td><td>%3$s</td><td>%4$s</td><td>%5$s</td></tr>',
				esc_html( self::when( (int) $entry['time'] ) ),
				esc_html( (string) $entry['call'] ),
				esc_html( 0 === $status ? __( 'network', 'cohort-connect' ) : (string) $status ),
				esc_html( (string) $entry['message'] ),
				esc_html( $outcomes[ (string) $entry['outcome'] ] ?? (string) $entry['outcome'] )
			);
		}
		echo '</tbody></table>';
	}
}
