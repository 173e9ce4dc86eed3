<?php
/**
 * Discount endpoints Cohort calls (connect.md §5), signed with the
 * installation's signing secret: WooCommerce coupons created, read and
 * deleted through WooCommerce's own PHP API, and the orders that used them.
 *
 *   POST   /wp-json/cohort/v1/discounts
 *   GET    /wp-json/cohort/v1/discounts/by-code/{code}
 *   GET    /wp-json/cohort/v1/discounts/{providerId}
 *   DELETE /wp-json/cohort/v1/discounts/{providerId}
 *   GET    /wp-json/cohort/v1/discounts/redemptions?since=&cursor=
 *
 * Seen nonces live in a table of their own (a unique key: of two parallel
 * replays, one INSERT wins); it is created here, versioned by its own option,
 * and dropped on uninstall.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

require_once __DIR__ . '/class-cohort-signature.php';
require_once __DIR__ . '/class-cohort-discounts-protocol.php';

/**
 * Routes, signature check and the WooCommerce calls.
 */
final class Cohort_Discounts {

	const REST_NAMESPACE    = 'cohort/v1';
	const DB_VERSION        = '1';
	const DB_VERSION_OPTION = 'cohort_connect_discounts_db_version';

	/**
	 * Registers the hooks (one line in Cohort_Plugin::boot).
	 */
	public static function boot(): void {
		add_action( 'init', array( __CLASS__, 'maybe_install' ) );
		add_action( 'rest_api_init', array( __CLASS__, 'routes' ) );
	}

	/**
	 * The nonce table's name.
	 */
	public static function nonce_table(): string {
		global $wpdb;
		return $wpdb->prefix . 'cohort_connect_nonces';
	}

	/**
	 * Creates the nonce table when missing or older.
	 */
	public static function maybe_install(): void {
		if ( get_option( self::DB_VERSION_OPTION ) === self::DB_VERSION ) {
			return;
		}
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$table   = self::nonce_table();
		$charset = $wpdb->get_charset_collate();
		dbDelta(
			"CREATE TABLE {$table} (
  nonce_hash char(64) NOT NULL,
  expires_at bigint(20) unsigned NOT NULL,
  PRIMARY KEY  (nonce_hash),
  KEY expires_at (expires_at)
) {$charset};"
		);
		update_option( self::DB_VERSION_OPTION, self::DB_VERSION, false );
	}

	/**
	 * Drops the nonce table and its option (uninstall.php).
	 */
	public static function uninstall(): void {
		global $wpdb;
		$table = self::nonce_table();
		$wpdb->query( "DROP TABLE IF EXISTS {$table}" ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared,WordPress.DB.DirectDatabaseQuery
		delete_option( self::DB_VERSION_OPTION );
	}

	/**
	 * Registers the REST routes.
	 */
	public static function routes(): void {
		$auth = array( __CLASS__, 'authorize' );
		register_rest_route(
			self::REST_NAMESPACE,
			'/discounts',
			array(
				'methods'             => 'POST',
				'callback'            => array( __CLASS__, 'create' ),
				'permission_callback' => $auth,
			)
		);
		register_rest_route(
			self::REST_NAMESPACE,
			'/discounts/redemptions',
			array(
				'methods'             => 'GET',
				'callback'            => array( __CLASS__, 'redemptions' ),
				'permission_callback' => $auth,
			)
		);
		register_rest_route(
			self::REST_NAMESPACE,
			'/discounts/by-code/(?P<code>[^/]+)',
			array(
				'methods'             => 'GET',
				'callback'            => array( __CLASS__, 'get_by_code' ),
				'permission_callback' => $auth,
			)
		);
		register_rest_route(
			self::REST_NAMESPACE,
			'/discounts/(?P<id>[0-9]+)',
			array(
				array(
					'methods'             => 'GET',
					'callback'            => array( __CLASS__, 'get_by_id' ),
					'permission_callback' => $auth,
				),
				array(
					'methods'             => 'DELETE',
					'callback'            => array( __CLASS__, 'delete' ),
					'permission_callback' => $auth,
				),
			)
		);
	}

	/**
	 * Checks the signature of Cohort's call (permission callback).
	 *
	 * @param WP_REST_Request $request The request.
	 * @return true|WP_Error
	 */
	public static function authorize( WP_REST_Request $request ) {
		$conn        = Cohort_Connection::get();
		$secret      = is_array( $conn ) && isset( $conn['signing_secret'] ) ? (string) $conn['signing_secret'] : null;
		$request_uri = isset( $_SERVER['REQUEST_URI'] ) ? wp_unslash( $_SERVER['REQUEST_URI'] ) : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- signed byte for byte, never output.
		$store_error = false;
		$reason      = Cohort_Signature::verify(
			$secret,
			self::header( $request, 'x_cohort_timestamp' ),
			self::header( $request, 'x_cohort_nonce' ),
			self::header( $request, 'x_cohort_signature' ),
			$request->get_method(),
			(string) $request_uri,
			(string) $request->get_body(),
			time(),
			static function ( string $nonce, int $expires_at ) use ( &$store_error ): bool {
				$claimed = self::claim_nonce( $nonce, $expires_at );
				if ( null === $claimed ) {
					$store_error = true;
					return false;
				}
				return $claimed;
			}
		);
		if ( Cohort_Signature::OK === $reason ) {
			return true;
		}
		if ( $store_error ) {
			return new WP_Error( 'cohort_unavailable', __( 'The site could not record the request nonce; retry shortly.', 'cohort-connect' ), array( 'status' => 503 ) );
		}
		return new WP_Error(
			'cohort_bad_signature',
			self::refusal_message( $reason ),
			array(
				'status' => 401,
				'reason' => $reason,
			)
		);
	}

	/**
	 * POST /discounts.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return WP_REST_Response|WP_Error
	 */
	public static function create( WP_REST_Request $request ) {
		$inactive = self::woocommerce_missing();
		if ( null !== $inactive ) {
			return $inactive;
		}
		$input = json_decode( (string) $request->get_body(), true );
		$valid = Cohort_Discounts_Protocol::validate_new( $input, time() );
		if ( ! $valid['ok'] ) {
			return self::invalid( $valid['field'], $valid['message'] );
		}
		$d    = $valid['discount'];
		$code = wc_format_coupon_code( $d['code'] );
		if ( '' === $code ) {
			return self::invalid( 'code', __( 'code is empty once formatted as a coupon code.', 'cohort-connect' ) );
		}
		if ( wc_get_coupon_id_by_code( $code ) > 0 ) {
			return new WP_Error(
				'cohort_discount_exists',
				/* translators: %s: coupon code */
				sprintf( __( 'A coupon with the code %s already exists.', 'cohort-connect' ), $code ),
				array(
					'status' => 409,
					'field'  => 'code',
				)
			);
		}
		try {
			$coupon = new WC_Coupon();
			$coupon->set_code( $code );
			$coupon->set_discount_type( 'percent' );
			$coupon->set_amount( $d['amount'] );
			if ( null !== $d['min_purchase_amount'] ) {
				$coupon->set_minimum_amount( $d['min_purchase_amount'] );
			}
			if ( null !== $d['expires_at'] ) {
				$coupon->set_date_expires( $d['expires_at'] );
			}
			if ( null !== $d['usage_limit'] ) {
				$coupon->set_usage_limit( $d['usage_limit'] );
			}
			if ( array() !== $d['email_restrictions'] ) {
				$coupon->set_email_restrictions( $d['email_restrictions'] );
			}
			$coupon->set_description( __( 'Created by Cohort.', 'cohort-connect' ) );
			$coupon->update_meta_data( '_cohort_created', '1' );
			$id = $coupon->save();
		} catch ( Exception $e ) {
			return new WP_Error( 'cohort_discount_failed', $e->getMessage(), array( 'status' => 400 ) );
		}
		if ( $id <= 0 ) {
			return new WP_Error( 'cohort_discount_failed', __( 'WooCommerce did not save the coupon.', 'cohort-connect' ), array( 'status' => 500 ) );
		}
		return new WP_REST_Response(
			array(
				'providerId' => $id,
				'code'       => $coupon->get_code(),
			),
			201
		);
	}

	/**
	 * GET /discounts/by-code/{code}.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return WP_REST_Response|WP_Error
	 */
	public static function get_by_code( WP_REST_Request $request ) {
		$inactive = self::woocommerce_missing();
		if ( null !== $inactive ) {
			return $inactive;
		}
		$code = wc_format_coupon_code( (string) $request['code'] );
		$id   = '' === $code ? 0 : (int) wc_get_coupon_id_by_code( $code );
		$view = $id > 0 ? self::load( $id ) : null;
		return null === $view ? self::not_found() : new WP_REST_Response( $view, 200 );
	}

	/**
	 * GET /discounts/{providerId}.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return WP_REST_Response|WP_Error
	 */
	public static function get_by_id( WP_REST_Request $request ) {
		$inactive = self::woocommerce_missing();
		if ( null !== $inactive ) {
			return $inactive;
		}
		$id   = Cohort_Discounts_Protocol::provider_id( $request['id'] );
		$view = null === $id ? null : self::load( $id );
		return null === $view ? self::not_found() : new WP_REST_Response( $view, 200 );
	}

	/**
	 * DELETE /discounts/{providerId}: deletes the coupon for good.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return WP_REST_Response|WP_Error
	 */
	public static function delete( WP_REST_Request $request ) {
		$inactive = self::woocommerce_missing();
		if ( null !== $inactive ) {
			return $inactive;
		}
		$id = Cohort_Discounts_Protocol::provider_id( $request['id'] );
		if ( null === $id || null === self::load( $id ) ) {
			return self::not_found();
		}
		$coupon = new WC_Coupon( $id );
		$coupon->delete( true );
		return new WP_REST_Response(
			array(
				'providerId' => $id,
				'deleted'    => true,
			),
			200
		);
	}

	/**
	 * GET /discounts/redemptions?since=&cursor=&limit=: paid orders that used a
	 * coupon, created at or after `since`, in (created time, order id, coupon
	 * line id) order; the cursor is the last row's key, so rows sharing a
	 * timestamp are neither lost nor repeated across pages.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return WP_REST_Response|WP_Error
	 */
	public static function redemptions( WP_REST_Request $request ) {
		$inactive = self::woocommerce_missing();
		if ( null !== $inactive ) {
			return $inactive;
		}
		$query = Cohort_Discounts_Protocol::read_redemptions_query( (array) $request->get_query_params() );
		if ( ! $query['ok'] ) {
			return self::invalid( $query['field'], $query['message'] );
		}
		$rows = array();
		foreach ( self::redemption_keys( $query['since'], $query['after'], $query['limit'] + 1 ) as $key ) {
			$order = wc_get_order( (int) $key['order_id'] );
			if ( ! $order instanceof WC_Order ) {
				continue;
			}
			$item     = $order->get_item( (int) $key['item_id'] );
			$discount = $item instanceof WC_Order_Item_Coupon ? $item->get_discount() : 0;
			$customer = (int) $order->get_customer_id();
			$rows[]   = array(
				'created_gmt' => (string) $key['created_gmt'],
				'order_id'    => (int) $key['order_id'],
				'item_id'     => (int) $key['item_id'],
				'redemption'  => array(
					'providerOrderId' => (string) $order->get_id(),
					'code'            => (string) $key['code'],
					'customerId'      => $customer > 0 ? (string) $customer : null,
					'email'           => (string) $order->get_billing_email(),
					'amount'          => wc_format_decimal( $discount, wc_get_price_decimals() ),
					'currency'        => (string) $order->get_currency(),
					'createdAt'       => Cohort_Discounts_Protocol::format_time( (int) strtotime( $key['created_gmt'] . ' UTC' ) ),
				),
			);
		}
		return new WP_REST_Response( Cohort_Discounts_Protocol::page( $rows, $query['limit'] ), 200 );
	}

	/**
	 * The keys of coupon lines of paid orders, after a cursor, in key order.
	 *
	 * @param string                             $since Created at or after (`Y-m-d H:i:s` UTC).
	 * @param array{0:string,1:int,2:int}|null $after The cursor's key.
	 * @param int                                $limit Rows.
	 * @return array<int,array{order_id:string, item_id:string, code:string, created_gmt:string}>
	 */
	private static function redemption_keys( string $since, ?array $after, int $limit ): array {
		global $wpdb;
		$statuses = array_map(
			static function ( $status ) {
				return 'wc-' . $status;
			},
			wc_get_is_paid_statuses()
		);
		$hpos     = class_exists( '\Automattic\WooCommerce\Utilities\OrderUtil' )
			&& \Automattic\WooCommerce\Utilities\OrderUtil::custom_orders_table_usage_is_enabled();
		if ( $hpos ) {
			$orders = $wpdb->prefix . 'wc_orders';
			$id     = 'o.id';
			$date   = 'o.date_created_gmt';
			$filter = "o.type = 'shop_order' AND o.status";
		} else {
			$orders = $wpdb->posts;
			$id     = 'o.ID';
			$date   = 'o.post_date_gmt';
			$filter = "o.post_type = 'shop_order' AND o.post_status";
		}
		$items  = $wpdb->prefix . 'woocommerce_order_items';
		$in     = implode( ', ', array_fill( 0, count( $statuses ), '%s' ) );
		$args   = array_merge( $statuses, array( $since ) );
		$keyset = '';
		if ( null !== $after ) {
			$keyset = " AND ({$date} > %s OR ({$date} = %s AND ({$id} > %d OR ({$id} = %d AND oi.order_item_id > %d))))";
			$args   = array_merge( $args, array( $after[0], $after[0], $after[1], $after[1], $after[2] ) );
		}
		$args[] = $limit;
		$sql    = "SELECT oi.order_item_id AS item_id, oi.order_item_name AS code, {$id} AS order_id, {$date} AS created_gmt
			FROM {$items} oi INNER JOIN {$orders} o ON {$id} = oi.order_id
			WHERE oi.order_item_type = 'coupon' AND {$filter} IN ({$in}) AND {$date} >= %s{$keyset}
			ORDER BY {$date} ASC, {$id} ASC, oi.order_item_id ASC LIMIT %d";
		$rows   = $wpdb->get_results( $wpdb->prepare( $sql, $args ), ARRAY_A ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared,WordPress.DB.DirectDatabaseQuery
		return is_array( $rows ) ? $rows : array();
	}

	/**
	 * A coupon's view, or null when there is no such coupon.
	 *
	 * @param int $id Post id.
	 * @return array<string,mixed>|null
	 */
	private static function load( int $id ): ?array {
		$post = get_post( $id );
		if ( ! $post instanceof WP_Post || 'shop_coupon' !== $post->post_type || 'trash' === $post->post_status ) {
			return null;
		}
		$coupon  = new WC_Coupon( $id );
		$expires = $coupon->get_date_expires();
		$minimum = (string) $coupon->get_minimum_amount();
		$limit   = (int) $coupon->get_usage_limit();
		return array(
			'providerId'        => $coupon->get_id(),
			'code'              => $coupon->get_code(),
			'kind'              => 'percent' === $coupon->get_discount_type() ? Cohort_Discounts_Protocol::KIND_PERCENT : $coupon->get_discount_type(),
			'amount'            => wc_format_decimal( $coupon->get_amount() ),
			'minPurchaseAmount' => '' === $minimum ? null : wc_format_decimal( $minimum ),
			'expiresAt'         => $expires ? Cohort_Discounts_Protocol::format_time( $expires->getTimestamp() ) : null,
			'usageLimit'        => $limit > 0 ? $limit : null,
			'usageCount'        => (int) $coupon->get_usage_count(),
			'emailRestrictions' => array_values( (array) $coupon->get_email_restrictions() ),
			'currency'          => get_woocommerce_currency(),
		);
	}

	/**
	 * Remembers a nonce until it expires; true when it was new, false when seen,
	 * null when the table could not be written.
	 *
	 * @param string $nonce      The nonce.
	 * @param int    $expires_at Unix time.
	 */
	private static function claim_nonce( string $nonce, int $expires_at ): ?bool {
		global $wpdb;
		$table = self::nonce_table();
		$wpdb->query( $wpdb->prepare( "DELETE FROM {$table} WHERE expires_at < %d", time() ) ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared,WordPress.DB.DirectDatabaseQuery
		$done = $wpdb->query( $wpdb->prepare( "INSERT IGNORE INTO {$table} (nonce_hash, expires_at) VALUES (%s, %d)", hash( 'sha256', $nonce ), $expires_at ) ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared,WordPress.DB.DirectDatabaseQuery
		if ( false === $done ) {
			return null;
		}
		return 1 === (int) $done;
	}

	/**
	 * A request header, or null.
	 *
	 * @param WP_REST_Request $request The request.
	 * @param string          $name    Header name (lowercase, underscores).
	 */
	private static function header( WP_REST_Request $request, string $name ): ?string {
		$value = $request->get_header( $name );
		return null === $value ? null : trim( (string) $value );
	}

	/**
	 * The refusal's message.
	 *
	 * @param string $reason A Cohort_Signature constant.
	 */
	private static function refusal_message( string $reason ): string {
		switch ( $reason ) {
			case Cohort_Signature::NO_SECRET:
				return __( 'This site is not connected to Cohort.', 'cohort-connect' );
			case Cohort_Signature::MISSING:
				return __( 'X-Cohort-Timestamp, X-Cohort-Nonce and X-Cohort-Signature are required.', 'cohort-connect' );
			case Cohort_Signature::BAD_TIMESTAMP:
				return __( 'X-Cohort-Timestamp must be Unix seconds.', 'cohort-connect' );
			case Cohort_Signature::STALE:
				return __( 'X-Cohort-Timestamp is more than 300 seconds away from the site clock.', 'cohort-connect' );
			case Cohort_Signature::BAD_NONCE:
				return __( 'X-Cohort-Nonce must be 16 to 128 letters, digits or _ . ~ - characters.', 'cohort-connect' );
			case Cohort_Signature::BAD_HEADER:
				return __( 'X-Cohort-Signature must be v1= followed by 64 lowercase hex characters.', 'cohort-connect' );
			case Cohort_Signature::REPLAY:
				return __( 'This nonce was already used.', 'cohort-connect' );
			default:
				return __( 'Cohort signature mismatch.', 'cohort-connect' );
		}
	}

	/**
	 * The answer when WooCommerce is not active, or null when it is.
	 */
	private static function woocommerce_missing(): ?WP_Error {
		if ( class_exists( 'WC_Coupon' ) && function_exists( 'wc_get_coupon_id_by_code' ) && function_exists( 'wc_get_order' ) ) {
			return null;
		}
		return new WP_Error( 'cohort_woocommerce_inactive', __( 'WooCommerce is not active on this site: discounts need WooCommerce.', 'cohort-connect' ), array( 'status' => 503 ) );
	}

	/**
	 * 404 for a coupon that does not exist (distinct from WordPress's rest_no_route).
	 */
	private static function not_found(): WP_Error {
		return new WP_Error( 'cohort_discount_not_found', __( 'No such coupon.', 'cohort-connect' ), array( 'status' => 404 ) );
	}

	/**
	 * 400 naming the field.
	 *
	 * @param string $field   The field.
	 * @param string $message The message.
	 */
	private static function invalid( string $field, string $message ): WP_Error {
		return new WP_Error(
			'cohort_invalid_discount',
			$message,
			array(
				'status' => 400,
				'field'  => $field,
			)
		);
	}
}
