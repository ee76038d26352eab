#!/usr/bin/env bash
# Rebuild geomap/static/vendor/ from the npm registry, with pinned versions.
#
# Folium and branca load Leaflet, jQuery, Bootstrap, Font Awesome and plugins from CDNs; a
# command post has no network, so the map pages use these local copies instead (see
# geomap/maps/assets.py, which maps every CDN URL to a file written here).
#
# Only the files a page needs are kept: dist JS/CSS, the images and fonts their CSS
# references, and each package's licence. Changes made to the upstream files (all listed in
# the generated VERSIONS.md):
#   * source-map comments are removed (the .map files are not shipped; a dangling reference
#     makes browser dev tools request a missing file);
#   * Font Awesome's @font-face rules keep only the woff2 source (every browser that runs
#     Bootstrap 5 reads woff2; the .ttf fallbacks would add ~650 KB, and in the self-contained
#     `--out battle.html` page every referenced font is embedded);
#   * glyphicons.css is cut out of Bootstrap 3.4.1's bootstrap.css (folium's default Icon
#     prefix is "glyphicon"; folium links Bootstrap 3.0's bootstrap-glyphicons.css, which no
#     npm package ships), with a woff2-only @font-face;
#   * folium/leaflet.awesome.rotate.css is written here: folium links it from its GitHub
#     repository (no package ships it); it is one `transform: rotate()` rule per degree.
#
# Usage: tools/vendor_assets.sh [DEST]   (DEST defaults to geomap/static/vendor)
# Needs: npm (registry access), tar, sed, awk. To update a library: change its version
# below, run the script, check `git diff --stat geomap/static/vendor`, run the browser tests
# (tests/test_maps_offline.py) and update the mapping in geomap/maps/assets.py if a file
# name changed.
set -euo pipefail

# package@version pinned; the versions folium 0.20 links where it matters (Bootstrap 5.2.2,
# jQuery 3.x, Font Awesome 6.2.0, leaflet.fullscreen 3.0.0, leaflet-search 2.9.7).
LEAFLET=leaflet@1.9.4
MARKERCLUSTER=leaflet.markercluster@1.5.3
AWESOME_MARKERS=leaflet.awesome-markers@2.0.5
JQUERY=jquery@3.7.1
BOOTSTRAP=bootstrap@5.2.2
BOOTSTRAP3=bootstrap@3.4.1
FONTAWESOME=@fortawesome/fontawesome-free@6.2.0
FULLSCREEN=leaflet.fullscreen@3.0.0
SEARCH=leaflet-search@2.9.7
SWAGGER=swagger-ui-dist@5.35.0  # /docs renders /openapi.json with it
# Vector tiles (the maps' layers above GEOMAP_MAP_TILES_ABOVE): the bundled build carries
# pbf and vector-tile, so it is one file.
VECTORGRID=leaflet.vectorgrid@1.3.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/geomap/static/vendor}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# fetch SPEC DIR: npm pack SPEC (integrity-checked by npm) and unpack it into $WORK/DIR.
declare -A INTEGRITY
fetch() {
    local spec="$1" dir="$2" json tarball
    json="$(cd "$WORK" && npm pack "$spec" --json --silent 2>/dev/null)"
    tarball="$(printf '%s' "$json" | sed -n 's/.*"filename": *"\([^"]*\)".*/\1/p' | head -n1)"
    INTEGRITY[$spec]="$(printf '%s' "$json" | sed -n 's/.*"integrity": *"\([^"]*\)".*/\1/p' \
        | head -n1)"
    mkdir -p "$WORK/$dir"
    tar -xzf "$WORK/$tarball" -C "$WORK/$dir" --strip-components=1
}

# put SRC DEST-RELATIVE: copy one file into the vendor folder.
put() {
    mkdir -p "$(dirname "$STAGE/$2")"
    cp "$WORK/$1" "$STAGE/$2"
}

strip_source_maps() {
    sed -i -E '/^[/][/*]# sourceMappingURL=/d' "$@"
}

fetch "$LEAFLET" leaflet
fetch "$MARKERCLUSTER" markercluster
fetch "$AWESOME_MARKERS" awesome
fetch "$JQUERY" jquery
fetch "$BOOTSTRAP" bootstrap
fetch "$BOOTSTRAP3" bootstrap3
fetch "$FONTAWESOME" fontawesome
fetch "$FULLSCREEN" fullscreen
fetch "$SEARCH" search
fetch "$SWAGGER" swagger
fetch "$VECTORGRID" vectorgrid

# Build in a staging folder, then swap: a failed run leaves the committed folder untouched.
STAGE="$WORK/stage"
mkdir -p "$STAGE"

put leaflet/dist/leaflet.js leaflet/leaflet.js
put leaflet/dist/leaflet.css leaflet/leaflet.css
for img in layers.png layers-2x.png marker-icon.png marker-icon-2x.png marker-shadow.png; do
    put "leaflet/dist/images/$img" "leaflet/images/$img"
done
put leaflet/LICENSE leaflet/LICENSE

put markercluster/dist/leaflet.markercluster.js leaflet.markercluster/leaflet.markercluster.js
put markercluster/dist/MarkerCluster.css leaflet.markercluster/MarkerCluster.css
put markercluster/dist/MarkerCluster.Default.css leaflet.markercluster/MarkerCluster.Default.css
put markercluster/MIT-LICENCE.txt leaflet.markercluster/LICENSE

# The unminified file, as folium links: the package's .min.js is an older build that
# ignores the extraClasses option (folium's Icon(angle=...) needs it).
put awesome/dist/leaflet.awesome-markers.js leaflet.awesome-markers/leaflet.awesome-markers.js
put awesome/dist/leaflet.awesome-markers.css leaflet.awesome-markers/leaflet.awesome-markers.css
for img in markers-soft.png markers-soft@2x.png markers-shadow.png markers-shadow@2x.png; do
    put "awesome/dist/images/$img" "leaflet.awesome-markers/images/$img"
done
put awesome/LICENSE leaflet.awesome-markers/LICENSE

put jquery/dist/jquery.min.js jquery/jquery.min.js
put jquery/LICENSE.txt jquery/LICENSE.txt

put bootstrap/dist/js/bootstrap.bundle.min.js bootstrap/bootstrap.bundle.min.js
put bootstrap/dist/css/bootstrap.min.css bootstrap/bootstrap.min.css
put bootstrap/LICENSE bootstrap/LICENSE

put fontawesome/css/all.min.css fontawesome/css/all.min.css
for font in fa-brands-400 fa-regular-400 fa-solid-900 fa-v4compatibility; do
    put "fontawesome/webfonts/$font.woff2" "fontawesome/webfonts/$font.woff2"
done
put fontawesome/LICENSE.txt fontawesome/LICENSE.txt
# Keep only the woff2 source of each @font-face (the .ttf files are not shipped).
sed -i -E 's/,url\([^)]*\.ttf\) format\("truetype"\)//g' "$STAGE/fontawesome/css/all.min.css"

# Glyphicons: the .glyphicon rules of Bootstrap 3.4.1, with a woff2-only @font-face.
put bootstrap3/fonts/glyphicons-halflings-regular.woff2 \
    glyphicons/fonts/glyphicons-halflings-regular.woff2
put bootstrap3/LICENSE glyphicons/LICENSE
{
    printf '/* Glyphicons Halflings from Bootstrap 3.4.1 (MIT), cut out of bootstrap.css by\n'
    printf '   tools/vendor_assets.sh: folium'"'"'s default awesome-marker icons use them. */\n'
    printf '@font-face {\n  font-family: "Glyphicons Halflings";\n'
    printf '  src: url("fonts/glyphicons-halflings-regular.woff2") format("woff2");\n}\n'
    # From the `.glyphicon {` rule through the rule of the last glyph (menu-up).
    awk '/^\.glyphicon \{/ {on = 1}
         on {print}
         on && /^\.glyphicon-menu-up:before/ {last = 1}
         last && /^\}/ {exit}' "$WORK/bootstrap3/dist/css/bootstrap.css"
} >"$STAGE/glyphicons/glyphicons.css"

put fullscreen/Control.FullScreen.js leaflet.fullscreen/Control.FullScreen.js
put fullscreen/Control.FullScreen.css leaflet.fullscreen/Control.FullScreen.css
put fullscreen/icon-fullscreen.svg leaflet.fullscreen/icon-fullscreen.svg
put fullscreen/LICENSE leaflet.fullscreen/LICENSE

# leaflet-search's CSS points at ../images/: keep its dist/ + images/ layout.
put search/dist/leaflet-search.min.js leaflet-search/dist/leaflet-search.min.js
put search/dist/leaflet-search.min.css leaflet-search/dist/leaflet-search.min.css
put search/images/loader.gif leaflet-search/images/loader.gif
put search/images/search-icon.png leaflet-search/images/search-icon.png
put search/license.txt leaflet-search/LICENSE
# The package ships no licence file: its README's "Legalese" section is the licence.
put vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js \
    leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js
{
    awk '/^## Legalese/ {on = 1; next} on {print}' "$WORK/vectorgrid/README.md"
    printf '\nThe bundled build also contains pbf and vector-tile (BSD-3-Clause, Mapbox),\n'
    printf '@mapbox/point-geometry, topojson-client and geojson-vt (ISC) and whatwg-fetch (MIT).\n'
} >"$STAGE/leaflet.vectorgrid/LICENSE"
put swagger/swagger-ui-bundle.js swagger-ui/swagger-ui-bundle.js
put swagger/swagger-ui.css swagger-ui/swagger-ui.css
put swagger/LICENSE swagger-ui/LICENSE

# folium's leaflet.awesome.rotate.css (Icon(angle=N) adds the class fa-rotate-N).
mkdir -p "$STAGE/folium"
{
    printf '/* Equivalent of folium'"'"'s templates/leaflet.awesome.rotate.css, written by\n'
    printf '   tools/vendor_assets.sh: Icon(angle=N) gives the icon the class fa-rotate-N. */\n'
    for deg in $(seq 1 359); do
        printf '.fa-rotate-%d{transform:rotate(%ddeg)}\n' "$deg" "$deg"
    done
} >"$STAGE/folium/leaflet.awesome.rotate.css"

strip_source_maps "$STAGE"/leaflet/leaflet.js \
    "$STAGE"/leaflet.markercluster/leaflet.markercluster.js \
    "$STAGE"/bootstrap/bootstrap.bundle.min.js "$STAGE"/bootstrap/bootstrap.min.css \
    "$STAGE"/swagger-ui/swagger-ui-bundle.js "$STAGE"/swagger-ui/swagger-ui.css

# Fail now rather than in a browser: no CDN reference may be left in a shipped stylesheet.
if grep -rnoE 'url\((["'"'"']?)https?:' "$STAGE" --include='*.css'; then
    echo "vendor_assets.sh: a stylesheet still references the network (above)" >&2
    exit 1
fi

total_bytes="$(find "$STAGE" -type f -printf '%s\n' | awk '{s += $1} END {print s}')"
cat >"$STAGE/VERSIONS.md" <<EOF
# Vendored browser assets

Written by \`tools/vendor_assets.sh\` (do not edit by hand: change the pinned versions there
and run it again). Mapped from the CDN URLs folium/branca use in \`geomap/maps/assets.py\`.
Total: ${total_bytes} bytes.

| folder | npm package | version | licence | npm integrity |
| --- | --- | --- | --- | --- |
| leaflet/ | leaflet | ${LEAFLET##*@} | BSD-2-Clause | ${INTEGRITY[$LEAFLET]} |
| leaflet.markercluster/ | leaflet.markercluster | ${MARKERCLUSTER##*@} | MIT | ${INTEGRITY[$MARKERCLUSTER]} |
| leaflet.awesome-markers/ | leaflet.awesome-markers | ${AWESOME_MARKERS##*@} | MIT (LICENSE file; package.json says ISC) | ${INTEGRITY[$AWESOME_MARKERS]} |
| jquery/ | jquery | ${JQUERY##*@} | MIT | ${INTEGRITY[$JQUERY]} |
| bootstrap/ | bootstrap | ${BOOTSTRAP##*@} | MIT | ${INTEGRITY[$BOOTSTRAP]} |
| glyphicons/ | bootstrap | ${BOOTSTRAP3##*@} | MIT (Glyphicons Halflings, licensed to Bootstrap) | ${INTEGRITY[$BOOTSTRAP3]} |
| fontawesome/ | @fortawesome/fontawesome-free | ${FONTAWESOME##*@} | icons CC-BY-4.0, fonts OFL-1.1, code MIT | ${INTEGRITY[$FONTAWESOME]} |
| leaflet.fullscreen/ | leaflet.fullscreen | ${FULLSCREEN##*@} | MIT | ${INTEGRITY[$FULLSCREEN]} |
| leaflet-search/ | leaflet-search | ${SEARCH##*@} | MIT | ${INTEGRITY[$SEARCH]} |
| swagger-ui/ | swagger-ui-dist | ${SWAGGER##*@} | Apache-2.0 | ${INTEGRITY[$SWAGGER]} |
| leaflet.vectorgrid/ | leaflet.vectorgrid | ${VECTORGRID##*@} | Beerware (bundles BSD-3-Clause, ISC and MIT code: see its LICENSE) | ${INTEGRITY[$VECTORGRID]} |
| folium/ | (written by the script) | - | MIT, as folium | - |

## Changes made to upstream files
- Source-map comments removed from leaflet.js, leaflet.markercluster.js,
  bootstrap.bundle.min.js, bootstrap.min.css, swagger-ui-bundle.js and swagger-ui.css
  (the .map files are not shipped).
- fontawesome/css/all.min.css: the \`.ttf\` fallback of each @font-face removed (only the woff2
  fonts are shipped).
- glyphicons/glyphicons.css: the \`.glyphicon\` rules of Bootstrap 3.4.1's bootstrap.css with a
  woff2-only @font-face (folium links Bootstrap 3.0's bootstrap-glyphicons.css from a CDN).
- folium/leaflet.awesome.rotate.css: written by the script, one rotate rule per degree, the
  equivalent of folium's own file (which no package ships).
- leaflet.fullscreen/Control.FullScreen.js is the unminified file (folium links the CDN's
  auto-minified \`.min.js\`, which the npm package does not contain).
- leaflet.awesome-markers/leaflet.awesome-markers.js is the unminified file: the package's
  \`.min.js\` is an older build without the \`extraClasses\` option that folium's
  \`Icon(angle=...)\` uses.
- leaflet.vectorgrid/LICENSE is written from the package's README (it ships none). The
  script itself is unchanged: its click handler calls \`L.DomEvent.fakeStop\`, gone from
  Leaflet 1.9, and \`geomap/static/geomap/vectortiles.js\` replaces that handler.
EOF

rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
cp -r "$STAGE" "$DEST"
echo "vendor_assets.sh: wrote $DEST ($total_bytes bytes, $(find "$DEST" -type f | wc -l) files)"
