/*
 * battlemap.js: the start-up of the geomap map pages (battle map, circles, coverage,
 * plan, embeds): GeomapMap.start(map, config), and the page's API for tests and host
 * pages (window.geomap).
 *
 * Folium builds the page shell (the Leaflet map, scale bar, fullscreen button, basemap
 * tiles, asset links); the page class draws the data. Each layer's features are loaded
 * ONCE, from the service (/map/data/<layer>, the compact form of geomap/maps/compact.py)
 * or from JSON inlined in a standalone file, and drawn with the styles of the layer
 * catalog (layers/*.toml): polygons on canvas, points as Font Awesome markers, clustered
 * where the catalog says so. A layer is drawn only from its catalog min_zoom on.
 *
 * The page is split by job into classic scripts under map/ (core, pathset, page, layers,
 * planners, panels, legend, nearest, live, cases), each adding to window.GeomapMap or
 * including methods into its page class; this file comes last. geomap/maps/page.py lists
 * them once, in order: linked one by one on served pages, inlined into one script in a
 * standalone file. No build step: plain ES2017 over Leaflet 1.9, Leaflet.markercluster
 * and leaflet-search. The configuration is documented in geomap/maps/page.py.
 */
(function () {
  'use strict';
  const G = window.GeomapMap;
  const GeomapPage = G.Page;
  const wgs84ToGcj02 = G.gcj02.fromWgs84;
  const gcj02ToWgs84 = G.gcj02.toWgs84;

  G.Page.include({
    api() {
      const page = this;
      return {
        map: this.map,
        config: this.config,
        get ready() { return page.ready; },
        stats: () => page.stats(),
        nearest: (lon, lat) => page.nearest(lon, lat),
        colourGrids: (mode) => page.colourGrids(mode),
        search: (text) => {
          const index = page.index();
          return Object.keys(index).filter((k) => index[k].haystack.indexOf(String(text).toLowerCase()) >= 0);
        },
        layer: (id) => (page.states[id] ? page.states[id].main : null),
        // The live screen, for tests and host pages.
        live: () => Object.assign({}, page.liveState || {}),
        session: () => page.session || null,
        cases: () => (page.cases ? page.queue().map((c) => ({ id: c.id, status: c.status, level: c.level,
          overdue: c.overdue, severity: c.severity, onMap: !!(page.caseMarkers[c.id] && page.map.hasLayer(page.caseMarkers[c.id])) })) : []),
        selectCase: (id) => page.selectCase(id),
        openTeam: (id) => new Promise((resolve) => {
          const state = page.states.teams;
          const marker = state && state.markerById && state.markerById[id];
          if (!marker) { resolve(false); return; }
          marker.once('popupopen', () => resolve(true));
          if (state.group.zoomToShowLayer && state.group.hasLayer(marker)) {
            state.group.zoomToShowLayer(marker, () => page.openMarkerPopup(marker));
          } else {
            page.openMarkerPopup(marker);
          }
        }),
        team: (id) => {
          const state = page.states.teams;
          const m = state && state.markerById && state.markerById[id];
          if (!m) return null;
          const ll = m.getLatLng();
          const el = m.options.icon && m.options.icon.options.html;
          return { status: m.feature.properties.status, stale: page.isStale(state.spec, m.feature.properties),
            lat: ll.lat, lng: ll.lng, inGroup: state.group.hasLayer(m), icon: el };
        },
        gcj02: { fromWgs84: wgs84ToGcj02, toWgs84: gcj02ToWgs84 },
      };
    },
  });

  function start(map, config) {
    // Cluster icons are markers: hundreds of tab stops before the panels. The map is
    // reached by keyboard as a whole (arrows, +/-), the panels by the skip links.
    if (L.MarkerCluster && !L.MarkerCluster.__geomapKeyboard) {
      L.MarkerCluster.mergeOptions({ keyboard: false });
      L.MarkerCluster.__geomapKeyboard = true;
    }
    const page = new GeomapPage(map, config);
    window.geomap = page.api();
    page.run();
    return page;
  }

  G.start = start;
})();
