<?php
/**
 * Which cart and checkout events a known shopper's cart calls for (pure PHP).
 *
 * @package CohortConnect
 */

use PHPUnit\Framework\TestCase;

final class CartSignalsTest extends TestCase {

	private const MUG = array(
		'product_id'   => 10,
		'variation_id' => 0,
		'sku'          => 'MUG-1',
		'name'         => 'Mug',
		'price'        => '12.50',
		'quantity'     => 1,
		'url'          => 'https://shop.test/?product=mug',
		'image_url'    => '',
	);

	private const CAP = array(
		'product_id'   => 11,
		'variation_id' => 12,
		'sku'          => 'CAP-RED',
		'name'         => 'Cap - Red',
		'price'        => '19.99',
		'quantity'     => 2,
		'url'          => 'https://shop.test/?product=cap',
		'image_url'    => 'https://shop.test/cap.jpg',
	);

	private static function step( array $state, array $items, bool $known = true, bool $checkout = false, bool $ordered = false ): array {
		return Cohort_Cart_Signals::decide( $state, $items, $known, $checkout, $ordered, 'cart-' . count( $items ) );
	}

	public function test_a_cart_that_goes_from_empty_to_non_empty_starts(): void {
		$d = self::step( Cohort_Cart_Signals::initial_state(), array( self::MUG ) );
		$this->assertSame( array( 'Cart Started' ), $d['events'] );
		$this->assertSame( 'cart-1', $d['state']['cart_id'] );
		$this->assertSame( 'cart-1', $d['cart_id'] );
	}

	public function test_changes_update_and_the_same_contents_send_nothing(): void {
		$started = self::step( Cohort_Cart_Signals::initial_state(), array( self::MUG ) )['state'];
		$same    = self::step( $started, array( self::MUG ) );
		$this->assertSame( array(), $same['events'] );
		$more = self::step( $started, array( self::MUG, self::CAP ) );
		$this->assertSame( array( 'Cart Updated' ), $more['events'] );
		$this->assertSame( 'cart-1', $more['state']['cart_id'], 'the cart keeps its id while it is not empty' );
		$qty             = self::MUG;
		$qty['quantity'] = 3;
		$this->assertSame( array( 'Cart Updated' ), self::step( $more['state'], array( $qty, self::CAP ) )['events'] );
	}

	public function test_line_order_does_not_make_an_update(): void {
		$this->assertSame( Cohort_Cart_Signals::cart_hash( array( self::MUG, self::CAP ) ), Cohort_Cart_Signals::cart_hash( array( self::CAP, self::MUG ) ) );
		$this->assertNotSame( Cohort_Cart_Signals::cart_hash( array( self::MUG ) ), Cohort_Cart_Signals::cart_hash( array( self::CAP ) ) );
	}

	public function test_emptying_without_an_order_clears_and_names_the_cart(): void {
		$started = self::step( Cohort_Cart_Signals::initial_state(), array( self::MUG ) )['state'];
		$cleared = self::step( $started, array() );
		$this->assertSame( array( 'Cart Cleared' ), $cleared['events'] );
		$this->assertSame( 'cart-1', $cleared['cart_id'] );
		$this->assertSame( Cohort_Cart_Signals::initial_state(), $cleared['state'] );
		$this->assertSame( array(), self::step( $cleared['state'], array() )['events'], 'an empty cart clears once' );
	}

	public function test_an_order_empties_the_cart_without_a_clear(): void {
		$started = self::step( Cohort_Cart_Signals::initial_state(), array( self::MUG ) )['state'];
		$ordered = self::step( $started, array( self::MUG ), true, false, true );
		$this->assertSame( array(), $ordered['events'], 'the order request, before the cart empties' );
		$this->assertSame( array(), self::step( $ordered['state'], array( self::MUG ) )['events'], 'a page before the cart empties' );
		$emptied = self::step( $ordered['state'], array() );
		$this->assertSame( array(), $emptied['events'], 'no Cart Cleared for an ordered cart' );
		$this->assertSame( Cohort_Cart_Signals::initial_state(), $emptied['state'] );
		$this->assertSame( array(), self::step( $started, array(), true, false, true )['events'], 'ordered and emptied in one request' );
		$next = self::step( $ordered['state'], array( self::CAP ) );
		$this->assertSame( array( 'Cart Started' ), $next['events'], 'new contents after an order are a new cart' );
	}

	public function test_an_order_then_emptying_in_a_later_request_is_not_a_clear(): void {
		$started = self::step( Cohort_Cart_Signals::initial_state(), array( self::MUG ) )['state'];
		$ordered = $started;
		$ordered['ordered'] = true;
		$this->assertSame( array(), self::step( $ordered, array() )['events'] );
	}

	public function test_anonymous_carts_send_nothing_and_start_when_the_shopper_becomes_known(): void {
		$anonymous = self::step( Cohort_Cart_Signals::initial_state(), array( self::MUG ), false );
		$this->assertSame( array(), $anonymous['events'] );
		$this->assertSame( '', $anonymous['state']['cart_id'] );
		$this->assertSame( array(), self::step( $anonymous['state'], array(), false )['events'] );
		$known = self::step( $anonymous['state'], array( self::MUG ), true, true );
		$this->assertSame( array( 'Cart Started', 'Checkout Started' ), $known['events'], 'an email captured at checkout starts the cart and the checkout' );
	}

	public function test_checkout_starts_once_per_cart_contents(): void {
		$started  = self::step( Cohort_Cart_Signals::initial_state(), array( self::MUG ) )['state'];
		$checkout = self::step( $started, array( self::MUG ), true, true );
		$this->assertSame( array( 'Checkout Started' ), $checkout['events'] );
		$this->assertSame( array(), self::step( $checkout['state'], array( self::MUG ), true, true )['events'], 'a reload of the checkout page' );
		$changed = self::step( $checkout['state'], array( self::MUG, self::CAP ), true, true );
		$this->assertSame( array( 'Cart Updated', 'Checkout Started' ), $changed['events'] );
	}

	public function test_properties_follow_the_segment_ecommerce_spec_with_exact_money(): void {
		$props = Cohort_Cart_Signals::properties( 'c1', array( self::MUG, self::CAP ), '52.48', 'usd', 'https://shop.test/?page_id=6&cohort_cart=x' );
		$this->assertSame( 'c1', $props['cart_id'] );
		$this->assertSame( '52.48', $props['value'] );
		$this->assertSame( 'USD', $props['currency'] );
		$this->assertSame( 'https://shop.test/?page_id=6&cohort_cart=x', $props['recover_url'] );
		$this->assertSame(
			array(
				'product_id' => '11',
				'sku'        => 'CAP-RED',
				'name'       => 'Cap - Red',
				'price'      => '19.99',
				'quantity'   => 2,
				'url'        => 'https://shop.test/?product=cap',
				'image_url'  => 'https://shop.test/cap.jpg',
				'variant'    => '12',
			),
			$props['products'][1]
		);
		$this->assertArrayNotHasKey( 'image_url', $props['products'][0], 'empty values are left out' );
	}

	public function test_message_ids_are_deterministic_per_cart_and_contents(): void {
		$this->assertSame( 'wc-cart-started-c1', Cohort_Cart_Signals::message_id( 'Cart Started', 'c1', 'h1' ) );
		$this->assertSame( 'wc-cart-updated-c1-h1', Cohort_Cart_Signals::message_id( 'Cart Updated', 'c1', 'h1' ) );
		$this->assertNotSame( Cohort_Cart_Signals::message_id( 'Cart Updated', 'c1', 'h1' ), Cohort_Cart_Signals::message_id( 'Cart Updated', 'c1', 'h2' ) );
		$this->assertSame( 'wc-checkout-started-c1-h1', Cohort_Cart_Signals::message_id( 'Checkout Started', 'c1', 'h1' ) );
	}

	public function test_a_malformed_stored_state_is_the_initial_one(): void {
		$this->assertSame( Cohort_Cart_Signals::initial_state(), Cohort_Cart_Signals::state( 'garbage' ) );
		$this->assertSame( Cohort_Cart_Signals::initial_state(), Cohort_Cart_Signals::state( array( 'cart_id' => 5 ) ) );
	}
}
