#!/usr/bin/env bash
# Builds the installable plugin zip: dist/cohort-connect-<version>.zip (at the
# repository root), from the files in plugins/wordpress/cohort-connect, without
# the tests. Checks every PHP file with `php -l` first when php is installed.
#
# Usage: bash plugins/wordpress/build-zip.sh [output-dir]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SRC="$HERE/cohort-connect"
OUT="${1:-$ROOT/dist}"

VERSION="$(sed -n 's/^ \* Version: *\([0-9A-Za-z.+-]*\).*/\1/p' "$SRC/cohort-connect.php" | head -n 1)"
[[ -n "$VERSION" ]] || { echo "build-zip: no Version in cohort-connect.php" >&2; exit 1; }
STABLE="$(sed -n 's/^Stable tag: *//p' "$SRC/readme.txt" | tr -d '\r')"
[[ "$STABLE" == "$VERSION" ]] || { echo "build-zip: readme.txt Stable tag ($STABLE) != plugin Version ($VERSION)" >&2; exit 1; }
grep -q "define( 'COHORT_CONNECT_VERSION', '$VERSION' )" "$SRC/cohort-connect.php" ||
  { echo "build-zip: COHORT_CONNECT_VERSION differs from the header Version ($VERSION)" >&2; exit 1; }

if command -v php >/dev/null 2>&1; then
  while IFS= read -r -d '' f; do
    php -l "$f" >/dev/null || { echo "build-zip: php -l failed: $f" >&2; exit 1; }
  done < <(find "$SRC" -name '*.php' -print0)
fi

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/cohort-connect"
# Everything but the tests and editor/OS leftovers.
(cd "$SRC" && find . -type f ! -path './tests/*' ! -name '.*' ! -name '*~' -print0) |
  while IFS= read -r -d '' f; do
    mkdir -p "$STAGE/cohort-connect/$(dirname "$f")"
    cp "$SRC/$f" "$STAGE/cohort-connect/$f"
  done

mkdir -p "$OUT"
ZIP="$OUT/cohort-connect-$VERSION.zip"
rm -f "$ZIP"
if command -v zip >/dev/null 2>&1; then
  (cd "$STAGE" && zip -q -r -X "$ZIP" cohort-connect)
else
  python3 - "$STAGE" "$ZIP" <<'PY'
import os, sys, zipfile
stage, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for base, dirs, files in os.walk(os.path.join(stage, "cohort-connect")):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(base, name)
            z.write(full, os.path.relpath(full, stage))
PY
fi
echo "$ZIP"
