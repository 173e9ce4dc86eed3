<?php
/**
 * Writes cohort-connect/languages/cohort-connect.pot from the plugin's sources
 * (a small stand-in for `wp i18n make-pot`, which needs WP-CLI).
 *
 * Usage: php plugins/wordpress/make-pot.php
 *
 * @package CohortConnect
 */

$root    = __DIR__ . '/cohort-connect';
$strings = array();
$files   = new RecursiveIteratorIterator( new RecursiveDirectoryIterator( $root, FilesystemIterator::SKIP_DOTS ) );
foreach ( $files as $file ) {
	$path = $file->getPathname();
	if ( ! str_ends_with( $path, '.php' ) || str_contains( $path, '/tests/' ) ) {
		continue;
	}
	$relative = substr( $path, strlen( $root ) + 1 );
	$source   = file_get_contents( $path );
	$lines    = explode( "\n", $source );
	foreach ( $lines as $number => $line ) {
		if ( preg_match_all( "/\\b(?:__|esc_html__|esc_attr__|esc_html_e|esc_attr_e|_e)\\(\\s*'((?:[^'\\\\]|\\\\.)*)'\\s*,\\s*'cohort-connect'/", $line, $matches ) ) {
			foreach ( $matches[1] as $raw ) {
				$text                 = str_replace( array( "\\'", '\\\\' ), array( "'", '\\' ), $raw );
				$strings[ $text ][]   = $relative . ':' . ( $number + 1 );
			}
		}
	}
}
ksort( $strings );
$escape = static fn( string $s ): string => '"' . addcslashes( $s, "\"\\\n" ) . '"';
$out    = "# Copyright (C) Cohort\n# This file is distributed under the GPL-2.0-or-later.\nmsgid \"\"\nmsgstr \"\"\n"
	. "\"Project-Id-Version: Cohort Connect\\n\"\n\"MIME-Version: 1.0\\n\"\n\"Content-Type: text/plain; charset=UTF-8\\n\"\n\"Content-Transfer-Encoding: 8bit\\n\"\n\"X-Domain: cohort-connect\\n\"\n";
foreach ( $strings as $text => $refs ) {
	$out .= "\n#: " . implode( ' ', array_unique( $refs ) ) . "\n";
	if ( str_contains( $text, '%' ) ) {
		$out .= "#, php-format\n";
	}
	$out .= 'msgid ' . $escape( $text ) . "\nmsgstr \"\"\n";
}
file_put_contents( $root . '/languages/cohort-connect.pot', $out );
printf( "%d strings\n", count( $strings ) );
