<?php
/**
 * Which cart and checkout events a known shopper's cart calls for (connect.md §3).
 * Pure: no WordPress or WooCommerce calls, so PHPUnit checks it in plain PHP.
 *
 * @package CohortConnect
 */

if ( ! defined( 'COHORT_CONNECT_PURE' ) && ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Compares the cart as it is at the end of a request with what was last
 * reported for this session, and says what to send.
 *
 * The state kept in the shopper's WooCommerce session:
 *   cart_id        the id of the cart since it went from empty to non-empty ('' when none);
 *   hash           the cart contents last reported;
 *   checkout_hash  the contents last reported with `Checkout Started`;
 *   ordered        an order was placed from this cart: its emptying is not a `Cart Cleared`.
 */
final class Cohort_Cart_Signals {

	/**
	 * Seconds a `Cart Updated` waits for more changes before it is sent.
	 */
	const UPDATE_DEBOUNCE = 60;

	/**
	 * The empty state of a session that reported nothing yet.
	 *
	 * @return array{cart_id:string,hash:string,checkout_hash:string,ordered:bool}
	 */
	public static function initial_state(): array {
		return array(
			'cart_id'       => '',
			'hash'          => '',
			'checkout_hash' => '',
			'ordered'       => false,
		);
	}

	/**
	 * A stored state, or the initial one when it is missing or malformed.
	 *
	 * @param mixed $stored From the session.
	 * @return array{cart_id:string,hash:string,checkout_hash:string,ordered:bool}
	 */
	public static function state( $stored ): array {
		$state = self::initial_state();
		if ( is_array( $stored ) ) {
			foreach ( array( 'cart_id', 'hash', 'checkout_hash' ) as $key ) {
				if ( isset( $stored[ $key ] ) && is_string( $stored[ $key ] ) ) {
					$state[ $key ] = $stored[ $key ];
				}
			}
			$state['ordered'] = ! empty( $stored['ordered'] );
		}
		return $state;
	}

	/**
	 * What to send for the cart at the end of a request.
	 *
	 * @param array<string,mixed> $state    The session's state (see state()).
	 * @param array<int,array>    $items    The cart's lines (see cart_hash()); empty when the cart is empty.
	 * @param bool                $known    Whether the shopper's email is known (signed in, or captured by checkout).
	 * @param bool                $checkout Whether this request showed the checkout page.
	 * @param bool                $ordered  Whether an order was placed from this cart in this request.
	 * @param string              $new_id   The cart id to use if a new cart starts.
	 * @return array{events:array<int,string>,state:array,cart_id:string} The events in order (`Cart Started`,
	 *         `Cart Updated`, `Cart Cleared`, `Checkout Started`), the new state, and the id of the cart they are about.
	 */
	public static function decide( array $state, array $items, bool $known, bool $checkout, bool $ordered, string $new_id ): array {
		$state  = self::state( $state );
		$events = array();
		if ( $ordered ) {
			// The order's own events (Order Completed) clear the tags on Cohort's side.
			$state['ordered'] = true;
		}
		if ( array() === $items ) {
			if ( '' !== $state['cart_id'] && ! $state['ordered'] && $known ) {
				$events[] = 'Cart Cleared';
			}
			return array(
				'events'  => $events,
				'state'   => self::initial_state(),
				'cart_id' => $state['cart_id'],
			);
		}
		if ( ! $known ) {
			// An anonymous cart cannot be recovered: nothing is sent, and the cart
			// "starts" when the shopper becomes known.
			return array(
				'events'  => array(),
				'state'   => $state,
				'cart_id' => $state['cart_id'],
			);
		}
		$hash = self::cart_hash( $items );
		if ( $state['ordered'] && ( $ordered || $hash === $state['hash'] ) ) {
			// The cart an order was just placed from, not emptied yet: nothing new.
			$state['hash'] = $hash;
			return array(
				'events'  => array(),
				'state'   => $state,
				'cart_id' => $state['cart_id'],
			);
		}
		if ( '' === $state['cart_id'] || $state['ordered'] ) {
			$state = array(
				'cart_id'       => $new_id,
				'hash'          => $hash,
				'checkout_hash' => '',
				'ordered'       => false,
			);
			$events[] = 'Cart Started';
		} elseif ( $hash !== $state['hash'] ) {
			$state['hash'] = $hash;
			$events[]      = 'Cart Updated';
		}
		if ( $checkout && $state['checkout_hash'] !== $hash ) {
			$state['checkout_hash'] = $hash;
			$events[]               = 'Checkout Started';
		}
		return array(
			'events'  => $events,
			'state'   => $state,
			'cart_id' => $state['cart_id'],
		);
	}

	/**
	 * A hash of the cart's contents (products, variations, quantities, prices), independent of line order.
	 *
	 * @param array<int,array<string,mixed>> $items Lines with product_id, variation_id, quantity, price.
	 */
	public static function cart_hash( array $items ): string {
		$parts = array();
		foreach ( $items as $item ) {
			$parts[] = implode(
				':',
				array(
					(string) ( $item['product_id'] ?? '' ),
					(string) ( $item['variation_id'] ?? '0' ),
					(string) ( $item['quantity'] ?? '0' ),
					(string) ( $item['price'] ?? '' ),
				)
			);
		}
		sort( $parts, SORT_STRING );
		return substr( hash( 'sha256', implode( '|', $parts ) ), 0, 16 );
	}

	/**
	 * Segment e-commerce properties of the cart (money as exact decimal strings).
	 *
	 * @param string                         $cart_id     The cart id.
	 * @param array<int,array<string,mixed>> $items       Lines: product_id, variation_id, sku, name, price, quantity, url, image_url.
	 * @param string                         $value       The cart's total, a decimal string.
	 * @param string                         $currency    ISO 4217.
	 * @param string                         $recover_url The link that rebuilds the cart.
	 * @return array<string,mixed>
	 */
	public static function properties( string $cart_id, array $items, string $value, string $currency, string $recover_url ): array {
		$products = array();
		foreach ( $items as $item ) {
			$product = array(
				'product_id' => (string) ( $item['product_id'] ?? '' ),
				'sku'        => (string) ( $item['sku'] ?? '' ),
				'name'       => (string) ( $item['name'] ?? '' ),
				'price'      => (string) ( $item['price'] ?? '0' ),
				'quantity'   => (int) ( $item['quantity'] ?? 0 ),
				'url'        => (string) ( $item['url'] ?? '' ),
				'image_url'  => (string) ( $item['image_url'] ?? '' ),
			);
			if ( ! empty( $item['variation_id'] ) ) {
				$product['variant'] = (string) $item['variation_id'];
			}
			$products[] = array_filter( $product, static fn ( $v ) => '' !== $v );
		}
		return array(
			'cart_id'     => $cart_id,
			'products'    => $products,
			'value'       => $value,
			'currency'    => strtoupper( $currency ),
			'recover_url' => $recover_url,
		);
	}

	/**
	 * The deterministic messageId of an event, so a retried call never double-counts.
	 *
	 * @param string $event   The event name.
	 * @param string $cart_id The cart id.
	 * @param string $hash    The cart contents' hash.
	 */
	public static function message_id( string $event, string $cart_id, string $hash ): string {
		$slug = strtolower( str_replace( ' ', '-', $event ) );
		switch ( $event ) {
			case 'Cart Started':
			case 'Cart Cleared':
				return 'wc-' . $slug . '-' . $cart_id;
			default:
				return 'wc-' . $slug . '-' . $cart_id . '-' . $hash;
		}
	}
}
