<?php
/**
 * Wiring: hooks, cron schedules, activation and deactivation.
 *
 * @package CohortConnect
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Entry point.
 */
final class Cohort_Plugin {

	const SLUG           = 'cohort-connect';
	const CRON_OUTBOX    = 'cohort_connect_outbox';
	const CRON_HEARTBEAT = 'cohort_connect_heartbeat';
	const CRON_POLL      = 'cohort_connect_poll_pairing';
	const SCHEDULE_1MIN  = 'cohort_connect_every_minute';
	const SCHEDULE_5MIN  = 'cohort_connect_every_5_minutes';

	/**
	 * Registers every hook.
	 */
	public static function boot(): void {
		add_filter( 'cron_schedules', array( __CLASS__, 'cron_schedules' ) );
		add_action( 'init', array( __CLASS__, 'init' ) );
		add_action( self::CRON_OUTBOX, array( 'Cohort_Api', 'cron_flush' ) );
		add_action( self::CRON_HEARTBEAT, array( 'Cohort_Heartbeat', 'run' ) );
		add_action( self::CRON_POLL, array( 'Cohort_Pairing', 'cron_poll' ) );
		add_action( 'wp_enqueue_scripts', array( 'Cohort_Tracking', 'enqueue' ) );
		add_filter( 'script_loader_tag', array( 'Cohort_Tracking', 'async_tag' ), 10, 2 );
		Cohort_Account_Events::boot();
		Cohort_Sync::boot();
		Cohort_Store_Changes::boot();
		Cohort_Cart_Events::boot();
		Cohort_Upgrade::boot();
		Cohort_Discounts::boot();
		if ( is_admin() ) {
			Cohort_Admin::boot();
		}
	}

	/**
	 * Translations, table upgrades and self-healing cron events.
	 */
	public static function init(): void {
		load_plugin_textdomain( 'cohort-connect', false, dirname( plugin_basename( COHORT_CONNECT_FILE ) ) . '/languages' );
		if ( get_option( Cohort_Installer::DB_VERSION_OPTION ) !== Cohort_Installer::DB_VERSION ) {
			Cohort_Installer::install();
		}
		self::schedule();
	}

	/**
	 * Whether WooCommerce is active.
	 */
	public static function woocommerce_active(): bool {
		return class_exists( 'WooCommerce' );
	}

	/**
	 * Whether WooCommerce features are active (WooCommerce present and the setting on).
	 */
	public static function woocommerce_enabled(): bool {
		return self::woocommerce_active() && Cohort_Settings::get()['woocommerce'];
	}

	/**
	 * The capability needed to manage the plugin.
	 */
	public static function capability(): string {
		return self::woocommerce_active() ? 'manage_woocommerce' : 'manage_options';
	}

	/**
	 * The admin page's URL.
	 *
	 * @param array<string,string> $args Query arguments to add.
	 */
	public static function admin_url( array $args = array() ): string {
		$base = self::woocommerce_active() ? 'admin.php?page=' . self::SLUG : 'options-general.php?page=' . self::SLUG;
		return add_query_arg( $args, admin_url( $base ) );
	}

	/**
	 * Adds the plugin's cron schedules.
	 *
	 * @param array<string,array<string,mixed>> $schedules Schedules.
	 * @return array<string,array<string,mixed>>
	 */
	public static function cron_schedules( $schedules ) {
		$schedules[ self::SCHEDULE_1MIN ] = array(
			'interval' => MINUTE_IN_SECONDS,
			'display'  => __( 'Every minute (Cohort outbox)', 'cohort-connect' ),
		);
		$schedules[ self::SCHEDULE_5MIN ] = array(
			'interval' => 5 * MINUTE_IN_SECONDS,
			'display'  => __( 'Every 5 minutes (Cohort heartbeat)', 'cohort-connect' ),
		);
		return $schedules;
	}

	/**
	 * Schedules the recurring events when missing.
	 */
	public static function schedule(): void {
		if ( ! wp_next_scheduled( self::CRON_OUTBOX ) ) {
			wp_schedule_event( time() + MINUTE_IN_SECONDS, self::SCHEDULE_1MIN, self::CRON_OUTBOX );
		}
		if ( ! wp_next_scheduled( self::CRON_HEARTBEAT ) ) {
			wp_schedule_event( time() + 5 * MINUTE_IN_SECONDS, self::SCHEDULE_5MIN, self::CRON_HEARTBEAT );
		}
	}

	/**
	 * Activation: creates the table and schedules the events.
	 */
	public static function activate(): void {
		Cohort_Installer::install();
		add_filter( 'cron_schedules', array( __CLASS__, 'cron_schedules' ) );
		self::schedule();
	}

	/**
	 * Deactivation: stops sending (no cron), keeps the connection and the queue.
	 */
	public static function deactivate(): void {
		wp_clear_scheduled_hook( self::CRON_OUTBOX );
		wp_clear_scheduled_hook( self::CRON_HEARTBEAT );
		wp_clear_scheduled_hook( self::CRON_POLL );
		wp_clear_scheduled_hook( Cohort_Sync::CRON_HOOK );
	}
}
