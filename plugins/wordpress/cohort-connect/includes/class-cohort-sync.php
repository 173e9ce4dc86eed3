<?php
/**
 * The store sync (connect.md §2): Cohort's `sync_*` commands carried out as
 * sync runs of batches of WooCommerce REST v3 objects, a slice at a time
 * from WP-Cron, so neither side meets a timeout or holds a whole store in
 * memory.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Polls commands and runs syncs.
 */
final class Cohort_Sync {

	const STATE_OPTION = 'cohort_connect_sync';
	const LOCK_OPTION  = 'cohort_connect_sync_lock';
	const PEAK_OPTION  = 'cohort_connect_sync_peak_memory';
	const CRON_HOOK    = 'cohort_connect_sync';
	const LOCK_TTL     = 120;
	const BATCH_SIZE   = 100;

	/**
	 * Registers the cron hook.
	 */
	public static function boot(): void {
		add_action( self::CRON_HOOK, array( __CLASS__, 'tick' ) );
	}

	/**
	 * Asks WP-Cron to run a slice soon (once).
	 *
	 * @param int $at Unix time.
	 */
	public static function schedule( int $at = 0 ): void {
		$at   = max( $at, time() );
		$next = wp_next_scheduled( self::CRON_HOOK );
		if ( false !== $next && $next <= $at ) {
			return;
		}
		if ( false !== $next ) {
			wp_clear_scheduled_hook( self::CRON_HOOK );
		}
		wp_schedule_single_event( $at, self::CRON_HOOK );
	}

	/**
	 * The sync in progress, or null.
	 *
	 * @return array<string,mixed>|null
	 */
	public static function state(): ?array {
		return Cohort_Sync_State::load( get_option( self::STATE_OPTION ) );
	}

	/**
	 * Seconds one slice may spend before it hands over to the next cron run.
	 */
	private static function budget(): int {
		return (int) apply_filters( 'cohort_connect_sync_slice_seconds', 20 );
	}

	/**
	 * One slice: picks up a command when idle, then sends batches until the
	 * budget is spent, the sync is done, or Cohort cannot take more now.
	 */
	public static function tick(): void {
		if ( ! Cohort_Connection::is_connected() || ! self::lock() ) {
			return;
		}
		try {
			$state = self::state();
			if ( null === $state ) {
				$state = self::next_command();
				if ( null === $state ) {
					return;
				}
			}
			if ( $state['retry_at'] > time() ) {
				self::schedule( (int) $state['retry_at'] );
				return;
			}
			$deadline = microtime( true ) + self::budget();
			$more     = self::advance( $state, $deadline );
			if ( $more ) {
				self::schedule( time() );
			}
		} finally {
			// The largest memory a slice needed, shown with the last sync (a store's size must not show here).
			$peak = (int) get_option( self::PEAK_OPTION, 0 );
			if ( memory_get_peak_usage( true ) > $peak && null !== self::state() ) {
				update_option( self::PEAK_OPTION, memory_get_peak_usage( true ), false );
			}
			delete_option( self::LOCK_OPTION );
		}
	}

	/**
	 * Reads the pending commands and starts the first sync one; acknowledges
	 * the ones this plugin cannot carry out.
	 *
	 * @return array<string,mixed>|null
	 */
	private static function next_command(): ?array {
		$response = self::call( 'GET', '/connect/v1/commands', null );
		if ( ! $response->ok() ) {
			return null;
		}
		$body = $response->json();
		foreach ( (array) ( $body['commands'] ?? array() ) as $command ) {
			$id        = (string) ( $command['id'] ?? '' );
			$kind      = (string) ( $command['kind'] ?? '' );
			$resources = Cohort_Sync_State::resources_for( $kind );
			if ( '' === $id ) {
				continue;
			}
			$now = gmdate( 'Y-m-d\TH:i:s\Z' );
			if ( null === $resources ) {
				/* translators: %s: a command kind */
				self::ack( $id, 'failed', $now, Cohort_Sync_State::start( $id, $kind, array(), $now )['counts'], sprintf( __( 'This plugin version does not know the command %s.', 'cohort-connect' ), $kind ) );
				continue;
			}
			if ( ! Cohort_Connection::commerce() ) {
				self::ack( $id, 'failed', $now, Cohort_Sync_State::start( $id, $kind, array(), $now )['counts'], __( 'WooCommerce is not active on this site, or its features are off in the Cohort settings.', 'cohort-connect' ) );
				continue;
			}
			$state = Cohort_Sync_State::start( $id, $kind, $resources, $now );
			self::save( $state );
			return $state;
		}
		return null;
	}

	/**
	 * Sends batches until the deadline; true when more remains to do in another slice.
	 *
	 * @param array<string,mixed> $state    The state.
	 * @param float               $deadline microtime(true) to stop at.
	 */
	private static function advance( array $state, float $deadline ): bool {
		if ( '' === $state['run_id'] ) {
			$started = self::call(
				'POST',
				'/connect/v1/sync/runs',
				array(
					'command_id' => $state['command_id'],
					'resources'  => $state['resources'],
				)
			);
			if ( ! $started->ok() ) {
				return self::failure( $state, $started );
			}
			$state['run_id'] = (string) ( $started->json()['run_id'] ?? '' );
			self::save( $state );
		}
		while ( microtime( true ) < $deadline && ! self::memory_tight() ) {
			$resource = Cohort_Sync_State::current( $state );
			if ( null === $resource ) {
				return self::finish( $state );
			}
			$ids = self::next_ids( $resource, (int) $state['after'] );
			if ( array() === $ids ) {
				$state = Cohort_Sync_State::resource_done( $state );
				self::save( $state );
				continue;
			}
			$items  = self::serialize( $resource, $ids );
			$answer = self::call(
				'POST',
				'/connect/v1/sync/runs/' . rawurlencode( $state['run_id'] ) . '/batches',
				array(
					'resource' => $resource,
					'seq'      => (int) $state['seq'],
					'items'    => $items,
				)
			);
			if ( 409 === $answer->status ) {
				self::save( Cohort_Sync_State::run_lost( $state, gmdate( 'Y-m-d\TH:i:s\Z' ) ) );
				return true;
			}
			if ( ! $answer->ok() ) {
				return self::failure( $state, $answer );
			}
			$body  = $answer->json();
			$state = Cohort_Sync_State::batch_accepted( $state, max( $ids ), (int) ( $body['accepted'] ?? 0 ), count( (array) ( $body['rejected'] ?? array() ) ) );
			if ( ! empty( $body['rejected'] ) ) {
				$first               = $body['rejected'][0];
				$state['last_error'] = sprintf( '%s: %s', (string) ( $first['error']['field'] ?? '' ), (string) ( $first['error']['message'] ?? '' ) );
			}
			self::save( $state );
			// Objects loaded for this batch are not needed again.
			if ( function_exists( 'wp_cache_flush_runtime' ) ) {
				wp_cache_flush_runtime();
			}
		}
		return true;
	}

	/**
	 * Every resource sent: completes the run and acknowledges the command.
	 *
	 * @param array<string,mixed> $state The state.
	 */
	private static function finish( array $state ): bool {
		$state['counts']['guests'] = self::guest_count();
		$done                      = self::call( 'POST', '/connect/v1/sync/runs/' . rawurlencode( $state['run_id'] ) . '/complete', array( 'counts' => $state['counts'] ) );
		if ( ! $done->ok() && 409 !== $done->status ) {
			return self::failure( $state, $done );
		}
		$error = $state['rejected'] > 0
			/* translators: 1: number of items, 2: the first error */
			? sprintf( __( '%1$d items were refused by Cohort; the first: %2$s', 'cohort-connect' ), $state['rejected'], $state['last_error'] )
			: null;
		$acked = self::ack( (string) $state['command_id'], 'done', (string) $state['started_at'], $state['counts'], $error );
		if ( ! $acked && ! in_array( self::$last_status, array( 400, 404, 409 ), true ) ) {
			return self::failure( $state, new Cohort_Response( self::$last_status, array(), '' ) );
		}
		delete_option( self::STATE_OPTION );
		$peak = max( (int) get_option( self::PEAK_OPTION, 0 ), memory_get_peak_usage( true ) );
		delete_option( self::PEAK_OPTION );
		update_option(
			'cohort_connect_last_sync',
			array(
				'started_at'  => (string) $state['started_at'],
				'finished_at' => time(),
				'counts'      => $state['counts'],
				'rejected'    => $state['rejected'],
				'peak_memory' => $peak,
			),
			false
		);
		// Another command may be waiting.
		return true;
	}

	/**
	 * The status of the last call made by ack().
	 *
	 * @var int
	 */
	private static int $last_status = 0;

	/**
	 * Acknowledges a command.
	 *
	 * @param string             $id         The command.
	 * @param string             $status     done or failed.
	 * @param string             $started_at ISO 8601 UTC.
	 * @param array<string,int>  $counts     Items sent per resource.
	 * @param string|null        $error      What went wrong.
	 */
	private static function ack( string $id, string $status, string $started_at, array $counts, ?string $error ): bool {
		$response          = self::call(
			'POST',
			'/connect/v1/commands/' . rawurlencode( $id ) . '/ack',
			array(
				'status'      => $status,
				'started_at'  => $started_at,
				'finished_at' => gmdate( 'Y-m-d\TH:i:s\Z' ),
				'counts'      => $counts,
				'error'       => $error,
			)
		);
		self::$last_status = $response->status;
		return $response->ok();
	}

	/**
	 * A failed call: 401 disconnects; a transient failure is retried later;
	 * any other refusal fails the command.
	 *
	 * @param array<string,mixed> $state    The state.
	 * @param Cohort_Response     $response The answer.
	 */
	private static function failure( array $state, Cohort_Response $response ): bool {
		if ( 401 === $response->status ) {
			delete_option( self::STATE_OPTION );
			Cohort_Connection::clear( 'revoked', __( 'Cohort rejected this site\'s installation token (401): the connection was revoked or replaced. Nothing is sent until you reconnect.', 'cohort-connect' ) );
			return false;
		}
		$policy = new Cohort_Retry_Policy();
		if ( Cohort_Retry_Policy::RETRY === $policy->classify( $response ) ) {
			$now   = time();
			$retry = $now + $policy->retry_delay( $response, (int) $state['failures'] + 1, $now );
			self::save( Cohort_Sync_State::failed_for_now( $state, $response->describe(), $retry ) );
			self::schedule( $retry );
			return false;
		}
		self::ack( (string) $state['command_id'], 'failed', (string) $state['started_at'], $state['counts'], $response->describe() );
		delete_option( self::STATE_OPTION );
		return false;
	}

	/**
	 * One call to Cohort with the installation's token (not through the outbox: the sync state is its own queue).
	 *
	 * @param string                   $method Method.
	 * @param string                   $path   Path.
	 * @param array<string,mixed>|null $body   Body.
	 */
	private static function call( string $method, string $path, ?array $body ): Cohort_Response {
		$conn = Cohort_Connection::get();
		if ( null === $conn ) {
			return Cohort_Response::network_error( 'not connected' );
		}
		$json = null === $body ? '' : (string) wp_json_encode( $body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE );
		return Cohort_Api::request( rtrim( (string) $conn['cohort_url'], '/' ) . $path, $method, (string) $conn['installation_token'], $json, 30 );
	}

	/**
	 * Saves the state (not autoloaded: only the sync reads it).
	 *
	 * @param array<string,mixed> $state The state.
	 */
	private static function save( array $state ): void {
		update_option( self::STATE_OPTION, $state, false );
	}

	/**
	 * Whether memory use is close to PHP's limit: the slice ends and the next one starts fresh.
	 */
	private static function memory_tight(): bool {
		$limit = wp_convert_hr_to_bytes( (string) ini_get( 'memory_limit' ) );
		return $limit > 0 && memory_get_usage() > 0.7 * $limit;
	}

	/**
	 * The next store ids of a resource after `$after`, in id order.
	 *
	 * @param string $resource products, customers or orders.
	 * @param int    $after    The last id sent.
	 * @return array<int,int>
	 */
	public static function next_ids( string $resource, int $after ): array {
		global $wpdb;
		$limit = self::BATCH_SIZE;
		switch ( $resource ) {
			case 'products':
				$sql = $wpdb->prepare( "SELECT ID FROM {$wpdb->posts} WHERE post_type = 'product' AND post_status NOT IN ('trash', 'auto-draft') AND ID > %d ORDER BY ID LIMIT %d", $after, $limit );
				break;
			case 'customers':
				$key = $wpdb->get_blog_prefix() . 'capabilities';
				$sql = $wpdb->prepare( "SELECT u.ID FROM {$wpdb->users} u JOIN {$wpdb->usermeta} m ON m.user_id = u.ID AND m.meta_key = %s WHERE u.ID > %d AND (m.meta_value LIKE %s OR m.meta_value LIKE %s) ORDER BY u.ID LIMIT %d", $key, $after, '%"customer"%', '%"subscriber"%', $limit );
				break;
			case 'orders':
				if ( self::orders_in_own_tables() ) {
					$table = $wpdb->prefix . 'wc_orders';
					$sql   = $wpdb->prepare( "SELECT id FROM {$table} WHERE type = 'shop_order' AND status NOT IN ('trash', 'auto-draft', 'wc-checkout-draft') AND id > %d ORDER BY id LIMIT %d", $after, $limit ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
				} else {
					$sql = $wpdb->prepare( "SELECT ID FROM {$wpdb->posts} WHERE post_type = 'shop_order' AND post_status NOT IN ('trash', 'auto-draft', 'wc-checkout-draft') AND ID > %d ORDER BY ID LIMIT %d", $after, $limit );
				}
				break;
			default:
				return array();
		}
		return array_map( 'intval', (array) $wpdb->get_col( $sql ) ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- prepared above.
	}

	/**
	 * Whether orders live in WooCommerce's own tables (HPOS) rather than posts.
	 */
	private static function orders_in_own_tables(): bool {
		return class_exists( '\Automattic\WooCommerce\Utilities\OrderUtil' )
			&& \Automattic\WooCommerce\Utilities\OrderUtil::custom_orders_table_usage_is_enabled();
	}

	/**
	 * How many distinct guest buyers (orders without an account) the store has.
	 */
	private static function guest_count(): int {
		global $wpdb;
		if ( self::orders_in_own_tables() ) {
			$table = $wpdb->prefix . 'wc_orders';
			return (int) $wpdb->get_var( "SELECT COUNT(DISTINCT LOWER(billing_email)) FROM {$table} WHERE type = 'shop_order' AND customer_id = 0 AND billing_email <> '' AND status NOT IN ('trash', 'auto-draft', 'wc-checkout-draft')" ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		}
		return (int) $wpdb->get_var(
			"SELECT COUNT(DISTINCT LOWER(e.meta_value)) FROM {$wpdb->posts} p
			 JOIN {$wpdb->postmeta} c ON c.post_id = p.ID AND c.meta_key = '_customer_user'
			 JOIN {$wpdb->postmeta} e ON e.post_id = p.ID AND e.meta_key = '_billing_email'
			 WHERE p.post_type = 'shop_order' AND p.post_status NOT IN ('trash', 'auto-draft', 'wc-checkout-draft') AND c.meta_value = '0' AND e.meta_value <> ''"
		);
	}

	/**
	 * The objects of these ids in WooCommerce REST v3 shape, built by
	 * WooCommerce's own REST controllers as its webhooks build theirs.
	 *
	 * @param string         $resource products, customers or orders.
	 * @param array<int,int> $ids      Store ids.
	 * @return array<int,array<string,mixed>>
	 */
	public static function serialize( string $resource, array $ids ): array {
		$params = array(
			'include'  => $ids,
			'per_page' => self::BATCH_SIZE,
		);
		if ( 'orders' === $resource ) {
			$params['status'] = 'any';
		}
		if ( 'customers' === $resource ) {
			$params['role'] = 'all';
		}
		$data = self::as_store_manager( static fn () => WC()->api->get_endpoint_data( '/wc/v3/' . $resource, $params ) );
		if ( ! is_array( $data ) ) {
			return array();
		}
		return array_values( array_filter( $data, 'is_array' ) );
	}

	/**
	 * One object in REST v3 shape (for live changes), or null when it is gone.
	 *
	 * @param string $resource product, customer or order.
	 * @param int    $id       Store id.
	 * @return array<string,mixed>|null
	 */
	public static function one( string $resource, int $id ): ?array {
		$data = self::as_store_manager( static fn () => WC()->api->get_endpoint_data( '/wc/v3/' . $resource . 's/' . $id ) );
		return is_array( $data ) && isset( $data['id'] ) ? $data : null;
	}

	/**
	 * Runs `$build` as a user who may read the store (REST permission checks),
	 * then restores the current user, as WooCommerce's webhooks do.
	 *
	 * @param callable $build What to run.
	 * @return mixed
	 */
	private static function as_store_manager( callable $build ) {
		$current = get_current_user_id();
		$manager = get_users(
			array(
				'capability' => 'manage_woocommerce',
				'number'     => 1,
				'orderby'    => 'ID',
				'fields'     => 'ID',
			)
		);
		if ( array() === $manager ) {
			return null;
		}
		wp_set_current_user( (int) $manager[0] );
		try {
			return $build();
		} finally {
			wp_set_current_user( $current );
		}
	}

	/**
	 * Takes the sync lock (add_option is atomic on the unique option name).
	 */
	private static function lock(): bool {
		if ( add_option( self::LOCK_OPTION, time(), '', false ) ) {
			return true;
		}
		$held_since = (int) get_option( self::LOCK_OPTION, 0 );
		if ( $held_since > 0 && time() - $held_since < self::LOCK_TTL ) {
			return false;
		}
		delete_option( self::LOCK_OPTION );
		return add_option( self::LOCK_OPTION, time(), '', false );
	}
}
