<?php
/**
 * Renders a WordPress site's home page in one PHP CLI process, as an
 * anonymous GET / would, for tests/wordpress/bench-page-time.sh to count the
 * instructions of one page render under valgrind. Run from the site's
 * directory: php render-home.php HOST:PORT. Prints the page's size and
 * whether it carries the Cohort SDK tag to stderr.
 *
 * @package CohortConnectTests
 */

$_SERVER['HTTP_HOST']      = $argv[1];
$_SERVER['REQUEST_URI']    = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_NAME']    = '127.0.0.1';
$_SERVER['SERVER_PORT']    = '80';
$_SERVER['SCRIPT_NAME']    = '/index.php';
$_SERVER['PHP_SELF']       = '/index.php';
ob_start();
require getcwd() . '/index.php';
$cohort_html = ob_get_clean();
fwrite( STDERR, strlen( $cohort_html ) . ' bytes, sdk tag: ' . ( str_contains( $cohort_html, '/sdk/v1/cohort.js' ) ? 'yes' : 'no' ) . "\n" );
