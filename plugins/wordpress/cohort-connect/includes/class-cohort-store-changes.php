<?php
/**
 * Live store changes (connect.md §2 `POST /connect/v1/resources`): products,
 * customers and orders created, changed or deleted reach Cohort within
 * seconds, through the outbox, in the same topics and WooCommerce REST v3
 * shapes as WooCommerce's own webhooks.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Notes what changed during a request and queues each object once, in its
 * final state, at the end of it.
 */
final class Cohort_Store_Changes {

	/**
	 * What changed: "kind:id" => action (created, updated, deleted, restored).
	 *
	 * @var array<string,string>
	 */
	private static array $changed = array();

	/**
	 * Registers the hooks (they only fire where WooCommerce runs).
	 */
	public static function boot(): void {
		add_action( 'woocommerce_new_product', static fn ( $id ) => self::note( 'product', $id, 'created' ), 20, 1 );
		add_action( 'woocommerce_update_product', static fn ( $id ) => self::note( 'product', $id, 'updated' ), 20, 1 );
		add_action( 'woocommerce_created_customer', static fn ( $id ) => self::note( 'customer', $id, 'created' ), 20, 1 );
		add_action( 'woocommerce_update_customer', static fn ( $id ) => self::note( 'customer', $id, 'updated' ), 20, 1 );
		add_action( 'profile_update', array( __CLASS__, 'on_profile_update' ), 20, 1 );
		add_action( 'woocommerce_new_order', static fn ( $id ) => self::note( 'order', $id, 'created' ), 20, 1 );
		add_action( 'woocommerce_update_order', static fn ( $id ) => self::note( 'order', $id, 'updated' ), 20, 1 );
		add_action( 'woocommerce_order_status_changed', array( __CLASS__, 'on_status_changed' ), 20, 3 );
		add_action( 'woocommerce_order_refunded', static fn ( $id ) => self::note( 'order', $id, 'updated' ), 20, 1 );
		add_action( 'woocommerce_delete_order', static fn ( $id ) => self::note( 'order', $id, 'deleted' ), 20, 1 );
		add_action( 'woocommerce_trash_order', static fn ( $id ) => self::note( 'order', $id, 'deleted' ), 20, 1 );
		add_action( 'woocommerce_untrash_order', static fn ( $id ) => self::note( 'order', $id, 'restored' ), 20, 1 );
		add_action( 'wp_trash_post', array( __CLASS__, 'on_post_gone' ), 20, 1 );
		add_action( 'before_delete_post', array( __CLASS__, 'on_post_gone' ), 20, 1 );
		add_action( 'untrashed_post', array( __CLASS__, 'on_post_back' ), 20, 1 );
	}

	/**
	 * An order reached a status: its state now is queued at once, under a key
	 * of its own, so a later change in the same request (a refund right after
	 * completing) cannot hide this status from Cohort, which derives an event
	 * from each status reached (connect.md §3).
	 *
	 * @param int    $id   The order.
	 * @param string $from The previous status.
	 * @param string $to   The new status.
	 */
	public static function on_status_changed( $id, $from, $to ): void {
		self::note( 'order', $id, 'updated' );
		if ( ! Cohort_Connection::commerce() || in_array( (string) $to, array( 'checkout-draft', 'auto-draft' ), true ) ) {
			return;
		}
		$resource = Cohort_Sync::one( 'order', (int) $id );
		if ( null !== $resource ) {
			Cohort_Api::enqueue(
				'POST',
				'/connect/v1/resources',
				array(
					'topic'    => 'order.updated',
					'resource' => $resource,
				),
				'resource:order:' . (int) $id . ':' . sanitize_key( (string) $to )
			);
		}
	}

	/**
	 * A user changed: a customer update when the user is a shopper.
	 *
	 * @param int $user_id The user.
	 */
	public static function on_profile_update( $user_id ): void {
		$user = get_userdata( (int) $user_id );
		if ( $user && array_intersect( (array) $user->roles, array( 'customer', 'subscriber' ) ) ) {
			self::note( 'customer', $user_id, 'updated' );
		}
	}

	/**
	 * A post trashed or deleted: a product or (posts storage) an order gone.
	 *
	 * @param int $post_id The post.
	 */
	public static function on_post_gone( $post_id ): void {
		$kind = self::kind_of_post( (int) $post_id );
		if ( null !== $kind ) {
			self::note( $kind, $post_id, 'deleted' );
		}
	}

	/**
	 * A post restored from the trash.
	 *
	 * @param int $post_id The post.
	 */
	public static function on_post_back( $post_id ): void {
		$kind = self::kind_of_post( (int) $post_id );
		if ( null !== $kind ) {
			self::note( $kind, $post_id, 'product' === $kind ? 'updated' : 'restored' );
		}
	}

	/**
	 * `product` or `order` for a post of those types, else null.
	 *
	 * @param int $post_id The post.
	 */
	private static function kind_of_post( int $post_id ): ?string {
		$type = get_post_type( $post_id );
		if ( 'product' === $type ) {
			return 'product';
		}
		return 'shop_order' === $type ? 'order' : null;
	}

	/**
	 * Notes a change. Within a request the strongest action wins: deleted over
	 * created over restored over updated, so one call says what happened.
	 *
	 * @param string $kind   product, customer or order.
	 * @param mixed  $id     The store id.
	 * @param string $action created, updated, deleted or restored.
	 */
	public static function note( string $kind, $id, string $action ): void {
		$id = is_object( $id ) && method_exists( $id, 'get_id' ) ? (int) $id->get_id() : (int) $id;
		if ( $id <= 0 || ! Cohort_Connection::commerce() ) {
			return;
		}
		$key  = $kind . ':' . $id;
		$rank = array(
			'updated'  => 0,
			'restored' => 1,
			'created'  => 2,
			'deleted'  => 3,
		);
		if ( isset( self::$changed[ $key ] ) && $rank[ self::$changed[ $key ] ] >= $rank[ $action ] ) {
			return;
		}
		if ( array() === self::$changed ) {
			// Before the cart events (5) and the outbox's own flush (last).
			add_action( 'shutdown', array( __CLASS__, 'queue' ), 1 );
		}
		self::$changed[ $key ] = $action;
	}

	/**
	 * End of the request: queues one call per changed object with its state now.
	 */
	public static function queue(): void {
		$changed       = self::$changed;
		self::$changed = array();
		foreach ( $changed as $key => $action ) {
			list( $kind, $id ) = explode( ':', $key );
			$id                = (int) $id;
			if ( 'deleted' === $action ) {
				$resource = array( 'id' => $id );
			} else {
				$resource = Cohort_Sync::one( $kind, $id );
				if ( null === $resource ) {
					continue;
				}
				$status = (string) ( $resource['status'] ?? '' );
				// Drafts are not part of the store yet: the block checkout's draft order, an unsaved product.
				if ( in_array( $status, array( 'checkout-draft', 'auto-draft' ), true ) ) {
					continue;
				}
			}
			// A change still waiting in the outbox is replaced by this later state of the same object.
			Cohort_Api::enqueue(
				'POST',
				'/connect/v1/resources',
				array(
					'topic'    => $kind . '.' . $action,
					'resource' => $resource,
				),
				'resource:' . $key
			);
		}
	}
}
