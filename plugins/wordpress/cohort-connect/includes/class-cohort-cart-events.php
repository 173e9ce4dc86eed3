<?php
/**
 * Cart and checkout events of known shoppers (connect.md §3), and the
 * `recover_url` that rebuilds a cart.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Watches the WooCommerce cart during a request, and at its end sends what
 * Cohort_Cart_Signals decides, through the outbox (`POST /connect/v1/events`).
 */
final class Cohort_Cart_Events {

	const SESSION_KEY   = 'cohort_connect_cart';
	const RECOVER_PARAM = 'cohort_cart';

	/**
	 * Whether the cart may have changed in this request.
	 *
	 * @var bool
	 */
	private static bool $dirty = false;

	/**
	 * Whether this request showed the checkout page.
	 *
	 * @var bool
	 */
	private static bool $checkout = false;

	/**
	 * Whether an order was placed from the cart in this request.
	 *
	 * @var bool
	 */
	private static bool $ordered = false;

	/**
	 * Registers the hooks (they only fire where WooCommerce runs).
	 */
	public static function boot(): void {
		foreach ( array(
			'woocommerce_add_to_cart',
			'woocommerce_cart_item_removed',
			'woocommerce_after_cart_item_quantity_update',
			'woocommerce_cart_item_restored',
			'woocommerce_cart_emptied',
			'woocommerce_checkout_update_order_review',
			'woocommerce_store_api_cart_update_customer_from_request',
			'woocommerce_cart_loaded_from_session',
		) as $hook ) {
			add_action( $hook, array( __CLASS__, 'mark_dirty' ), 99, 0 );
		}
		add_action( 'woocommerce_checkout_order_processed', array( __CLASS__, 'mark_ordered' ), 99, 0 );
		add_action( 'woocommerce_store_api_checkout_order_processed', array( __CLASS__, 'mark_ordered' ), 99, 0 );
		add_action( 'template_redirect', array( __CLASS__, 'on_page' ), 20 );
		add_action( 'wp_loaded', array( __CLASS__, 'recover' ), 30 );
		// Before WooCommerce saves its session (shutdown, priority 20).
		add_action( 'shutdown', array( __CLASS__, 'report' ), 5 );
	}

	/**
	 * A cart hook fired.
	 */
	public static function mark_dirty(): void {
		self::$dirty = true;
	}

	/**
	 * An order was placed from the cart.
	 */
	public static function mark_ordered(): void {
		self::$ordered = true;
		self::$dirty   = true;
	}

	/**
	 * A storefront page: notes the checkout page (not the order-received one).
	 */
	public static function on_page(): void {
		if ( function_exists( 'is_checkout' ) && is_checkout() && ! ( function_exists( 'is_order_received_page' ) && is_order_received_page() ) ) {
			self::$checkout = true;
			self::$dirty    = true;
		}
	}

	/**
	 * Whether cart events can be sent: connected, WooCommerce features on, a cart and a session.
	 */
	private static function ready(): bool {
		return Cohort_Connection::commerce() && function_exists( 'WC' )
			&& isset( WC()->cart, WC()->session ) && is_object( WC()->cart ) && is_object( WC()->session );
	}

	/**
	 * End of the request: decides and queues the events, remembers the state in the session.
	 */
	public static function report(): void {
		if ( ! self::$dirty || ! self::ready() ) {
			return;
		}
		self::$dirty = false;
		$shopper     = self::shopper();
		$items       = self::items();
		$decision    = Cohort_Cart_Signals::decide(
			Cohort_Cart_Signals::state( WC()->session->get( self::SESSION_KEY ) ),
			$items,
			null !== $shopper,
			self::$checkout,
			self::$ordered,
			wp_generate_uuid4()
		);
		WC()->session->set( self::SESSION_KEY, $decision['state'] );
		if ( array() === $decision['events'] || null === $shopper ) {
			return;
		}
		$cart_id = $decision['cart_id'];
		$now     = gmdate( 'Y-m-d\TH:i:s\Z' );
		foreach ( $decision['events'] as $event ) {
			if ( 'Cart Cleared' === $event ) {
				$props = array( 'cart_id' => $cart_id );
				$hash  = '';
			} else {
				$hash  = Cohort_Cart_Signals::cart_hash( $items );
				$props = Cohort_Cart_Signals::properties( $cart_id, $items, self::cart_value(), get_woocommerce_currency(), self::recover_url( $items ) );
			}
			$message = array(
				'type'       => 'track',
				'messageId'  => Cohort_Cart_Signals::message_id( $event, $cart_id, $hash ),
				'event'      => $event,
				'properties' => $props,
				'context'    => array( 'traits' => array( 'email' => $shopper['email'] ) ),
				'timestamp'  => $now,
			);
			$message = array_merge( $message, $shopper['ids'] );
			$body    = array(
				'batch'   => array( $message ),
				'context' => array(
					'library' => array(
						'name'    => 'cohort-connect',
						'version' => COHORT_CONNECT_VERSION,
					),
				),
			);
			// A cart's updates wait for a pause, and its clearing replaces an update still waiting.
			$debounced = 'Cart Updated' === $event || 'Cart Cleared' === $event;
			Cohort_Api::enqueue(
				'POST',
				'/connect/v1/events',
				$body,
				$debounced ? 'cart-updated:' . $cart_id : null,
				'Cart Updated' === $event ? Cohort_Cart_Signals::UPDATE_DEBOUNCE : 0
			);
		}
	}

	/**
	 * The shopper, when their email is known: signed in, or captured by checkout.
	 *
	 * @return array{email:string,ids:array<string,string>}|null
	 */
	private static function shopper(): ?array {
		if ( is_user_logged_in() ) {
			$user = wp_get_current_user();
			if ( $user->exists() && is_email( $user->user_email ) ) {
				return array(
					'email' => strtolower( (string) $user->user_email ),
					'ids'   => array( 'userId' => (string) $user->ID ),
				);
			}
		}
		$email = isset( WC()->customer ) && is_object( WC()->customer ) ? (string) WC()->customer->get_billing_email() : '';
		if ( '' === $email || ! is_email( $email ) ) {
			return null;
		}
		// The browser SDK's anonymous id when the shopper has one, so the cart joins their visit.
		$anonymous = isset( $_COOKIE['cohort_aid'] ) ? sanitize_text_field( wp_unslash( $_COOKIE['cohort_aid'] ) ) : '';
		if ( ! preg_match( '/^[A-Za-z0-9-]{8,64}$/', $anonymous ) ) {
			$anonymous = 'wc-session-' . (string) WC()->session->get_customer_id();
		}
		return array(
			'email' => strtolower( $email ),
			'ids'   => array( 'anonymousId' => $anonymous ),
		);
	}

	/**
	 * The cart's lines as Cohort_Cart_Signals takes them.
	 *
	 * @return array<int,array<string,mixed>>
	 */
	private static function items(): array {
		$items = array();
		foreach ( WC()->cart->get_cart() as $line ) {
			$product = $line['data'] ?? null;
			if ( ! $product instanceof WC_Product ) {
				continue;
			}
			$image   = $product->get_image_id() ? wp_get_attachment_image_url( (int) $product->get_image_id(), 'woocommerce_thumbnail' ) : '';
			$items[] = array(
				'product_id'   => (int) ( $line['product_id'] ?? $product->get_id() ),
				'variation_id' => (int) ( $line['variation_id'] ?? 0 ),
				'sku'          => (string) $product->get_sku(),
				'name'         => (string) $product->get_name(),
				'price'        => wc_format_decimal( (string) $product->get_price( 'edit' ), wc_get_price_decimals() ),
				'quantity'     => (int) ( $line['quantity'] ?? 1 ),
				'url'          => (string) $product->get_permalink(),
				'image_url'    => is_string( $image ) ? $image : '',
			);
		}
		return $items;
	}

	/**
	 * The cart's total as the shopper would pay it now, a decimal string.
	 */
	private static function cart_value(): string {
		$cart = WC()->cart;
		$cart->calculate_totals();
		return wc_format_decimal( (string) $cart->get_total( 'edit' ), wc_get_price_decimals() );
	}

	/**
	 * The site's key for recover links (derived from its salts, never stored).
	 */
	private static function key(): string {
		return hash_hmac( 'sha256', 'cohort-connect-recover-cart', wp_salt( 'auth' ) );
	}

	/**
	 * The link that rebuilds this cart.
	 *
	 * @param array<int,array<string,mixed>> $items The cart's lines.
	 */
	public static function recover_url( array $items ): string {
		return add_query_arg( self::RECOVER_PARAM, Cohort_Recover_Link::encode( $items, self::key() ), wc_get_cart_url() );
	}

	/**
	 * Following a recover link: the cart becomes the link's lines, then the cart page without the token.
	 */
	public static function recover(): void {
		if ( ! isset( $_GET[ self::RECOVER_PARAM ] ) || ! function_exists( 'WC' ) || ! isset( WC()->cart ) || ! is_object( WC()->cart ) ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- a signed link from an email, not a form.
			return;
		}
		$token = sanitize_text_field( wp_unslash( $_GET[ self::RECOVER_PARAM ] ) ); // phpcs:ignore WordPress.Security.NonceVerification.Recommended
		$lines = Cohort_Recover_Link::decode( $token, self::key() );
		if ( null === $lines ) {
			if ( function_exists( 'wc_add_notice' ) ) {
				wc_add_notice( __( 'This cart link is not valid any more.', 'cohort-connect' ), 'error' );
			}
		} else {
			WC()->cart->empty_cart();
			foreach ( $lines as $line ) {
				WC()->cart->add_to_cart( $line['product_id'], $line['quantity'], $line['variation_id'] );
			}
		}
		wp_safe_redirect( remove_query_arg( self::RECOVER_PARAM, wc_get_cart_url() ) );
		exit;
	}
}
