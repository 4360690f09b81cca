#!/usr/bin/env bash
# Rebuild sptx_pipeline/web/igv.min.js.gz (the igv.js that `sptx browse` serves) from the npm
# registry: `npm pack` of the pinned version, its tarball checked against the SHA-256 below,
# then dist/igv.min.js gzipped deterministically (mtime 0) and igv.js's MIT licence copied.
# Run from anywhere; needs npm, python3 and network access to the registry. To move to
# another igv.js version, change VERSION and TARBALL_SHA256 together (and IGV_VERSION in
# sptx_pipeline/browse.py; tests/test_browse.py checks they agree).
set -euo pipefail
VERSION=3.8.10
TARBALL_SHA256=8db17d607a7ac355a73ebdd6beb9e0203c1e260b03b47fca81c267e46afa79aa
cd "$(dirname "$0")/.."
out=sptx_pipeline/web
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "igv@$VERSION" >/dev/null)
echo "$TARBALL_SHA256  $tmp/igv-$VERSION.tgz" | sha256sum --check --quiet -
tar -xzf "$tmp/igv-$VERSION.tgz" -C "$tmp" package/dist/igv.min.js package/LICENSE
python3 - "$tmp/package/dist/igv.min.js" "$out/igv.min.js.gz" <<'PY'
import gzip, sys
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as gz:
    gz.write(data)
PY
cp "$tmp/package/LICENSE" "$out/igv.LICENSE"
echo "igv.js $VERSION -> $out/igv.min.js.gz ($(stat -c %s "$out/igv.min.js.gz") bytes)"
