<?php
/**
 * PHPUnit bootstrap: loads only the plugin's pure classes; WordPress is not needed.
 *
 * @package CohortConnect
 */

define( 'COHORT_CONNECT_PURE', true );

$cohort_includes = dirname( __DIR__ ) . '/includes/';
require_once $cohort_includes . 'class-cohort-response.php';
require_once $cohort_includes . 'class-cohort-retry-policy.php';
require_once $cohort_includes . 'interface-cohort-outbox-storage.php';
require_once $cohort_includes . 'class-cohort-failure-log.php';
require_once $cohort_includes . 'class-cohort-outbox-report.php';
require_once $cohort_includes . 'class-cohort-outbox.php';
require_once $cohort_includes . 'class-cohort-pairing-protocol.php';
require_once $cohort_includes . 'class-cohort-account-events.php';
require_once $cohort_includes . 'class-cohort-cart-signals.php';
require_once $cohort_includes . 'class-cohort-recover-link.php';
require_once $cohort_includes . 'class-cohort-sync-state.php';
require_once __DIR__ . '/class-memory-storage.php';
