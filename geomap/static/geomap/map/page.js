/*
 * map/page.js: the page class (GeomapMap.Page): its state, coordinates, start-up, the
 * loading of each layer's data (served, preloaded or inlined) and the stats tests read.
 *
 * The other files add their methods with GeomapMap.Page.include({...}), as Leaflet's
 * L.Class.include does: one class, its methods by job. Also GeomapMap.drawing, the panes
 * and colours the parts share.
 */
(function () {
  'use strict';
  const G = window.GeomapMap;
  const { esc, fmt, sleep, withQuery, mark } = G.util;
  const wgs84ToGcj02 = G.gcj02.fromWgs84;
  const gcj02ToWgs84 = G.gcj02.toWgs84;
  const { decodeCompact, ZoomGate, PathSet } = G;

  // Panes, bottom to top: filled areas, circles, outlines, routes, labels; markers above.
  // Points drawn from vector tiles (vectortiles.js) sit just below the markers.
  const PANES = { areas: 350, circles: 370, outlines: 390, routes: 420, labels: 450, points: 590 };
  const AREA_LAYERS = { grids: 'areas', communities: 'areas', coverage: 'areas', circles: 'circles' };
  const ROUTE_COLORS = ['#dc2626', '#ea580c', '#ca8a04', '#16a34a', '#2563eb', '#7c3aed'];
  const COVERED_COLORS = ['#bbf7d0', '#4ade80', '#15803d'];
  const UNCOVERED_COLOR = '#dc2626';

  class GeomapPage {
    constructor(map, config) {
      this.map = map;
      this.config = config;
      this.s = config.strings;
      this.t = config.strings.ui;
      this.gcj = config.basemap && config.basemap.crs === 'gcj02';
      this.states = {};
      this.order = [];
      this.iconCache = {};
      this.searchIndex = {};
      this.gridColouring = 'population';
      this.gridValues = {};
      this.teamCounts = null;
      this.coverageShares = null;
      this.nearestOnClick = !!(config.nearest && config.nearest.onClick);
      this.messages = {};
      this.renderers = {};
      this.ready = null;
    }

    // -- coordinates between the data (WGS84) and the screen (GCJ-02 on Amap)
    latLng(lon, lat) {
      if (this.gcj) {
        const p = wgs84ToGcj02(lon, lat);
        return L.latLng(p[1], p[0]);
      }
      return L.latLng(lat, lon);
    }

    toWgs84(latlng) {
      if (this.gcj) return gcj02ToWgs84(latlng.lng, latlng.lat);
      return [latlng.lng, latlng.lat];
    }

    geoJsonOptions(extra) {
      const page = this;
      return Object.assign({
        coordsToLatLng: (c) => page.latLng(c[0], c[1]),
      }, extra);
    }

    /** A PathSet of `features` drawn in the basemap's coordinates, as geoJsonOptions does for L.geoJSON. */
    pathSet(features, options) {
      return new PathSet(features, Object.assign({ toLngLat: this.gcj ? wgs84ToGcj02 : null }, options));
    }

    url(path, params) {
      const all = Object.assign({}, params || {});
      if (this.config.token) all.token = this.config.token;
      return withQuery((this.config.service || '') + path, all);
    }

    // -- start-up
    run() {
      this.setView();
      Object.keys(PANES).forEach((name) => {
        const pane = this.map.createPane('gm-' + name);
        pane.style.zIndex = PANES[name];
        // Each canvas pane covers the whole map and would swallow the pointer events of
        // the panes below it: only panes of clickable features may receive them.
        if (!this.paneInteractive(name)) pane.style.pointerEvents = 'none';
      });
      const chrome = !this.config.embed;
      this.statusBox = this.addStatusBox();
      if (this.config.basemap && this.config.basemap.notice) {
        this.say('basemap', this.config.basemap.notice, this.config.basemap.noticeKind || 'notice');
      }
      this.config.layers.forEach((spec) => {
        const state = { spec: spec, gate: new ZoomGate([]), loaded: false, count: 0 };
        this.states[spec.id] = state;
        this.order.push(spec.id);
        if (spec.visible) state.gate.addTo(this.map);
      });
      if (chrome) {
        this.addLayerControl();
        this.addSearch();
        if (this.config.page === 'battle') this.addNearestPanel();
        if (this.config.page !== 'battle') this.summaryBox = this.addBox('topright', 'gm-summary');
        this.legend = this.addBox('bottomright', 'gm-legend', { icon: 'list', label: this.t.panel_legend });
      } else {
        // An embed: no panels, but a reader of the portal must know what the map shows.
        const title = this.addBox('topright', 'gm-embed-title');
        title.innerHTML = '<h3>' + esc(this.config.title || '') + '</h3>';
        this.legend = this.addBox('bottomright', 'gm-legend gm-legend-compact');
        this.compactLegend = true;
      }
      this.map.on('zoomend', () => this.refreshZoomNotes());
      // Layers hidden at start (communities) are loaded when first switched on; layers not
      // drawn at the first view's zoom (below their catalog min_zoom) when first zoomed to.
      this.order.forEach((id) => {
        const state = this.states[id];
        if (!state.spec.visible) state.gate.once('add', () => this.whenDrawn(state));
      });
      if (this.config.page === 'battle' && this.config.nearest) {
        this.map.on('click', (e) => {
          if (!this.nearestOnClick || this.fromControl(e)) return;
          const p = this.toWgs84(e.latlng);
          this.nearest(p[0], p[1]);
        });
      }
      if (this.config.live) {
        // The live screen: who is signed in first (the layers need the permission), then
        // the layers, the cases and the event stream.
        this.startLive();
        this.ready = this.checkSession().then(() => this.startLayers());
      } else {
        this.ready = this.startLayers();
      }
      this.refreshZoomNotes();
      this.renderLegend();
      return this;
    }

    /** Load and draw the layers shown at start; resolves with the stats once drawn. */
    startLayers() {
      const shown = this.order.map((id) => this.states[id]).filter((state) => state.spec.visible);
      const first = shown.filter((state) => state.spec.type === 'catalog' && state.spec.source &&
        !state.spec.source.tiles && this.map.getZoom() >= (state.spec.minZoom || 0));
      first.forEach((state) => { state.prefetch = this.fetchCompact(state.spec); });
      const waits = first.map((state) => state.prefetch);
      // The open cases (the live screen) are part of the first view: drawn with the layers.
      if (this.config.live && this.config.live.cases) {
        this.casesPrefetch = this.fetchJson(this.casesUrl());
        waits.push(this.casesPrefetch);
      }
      this.firstView = waits.length ? Promise.allSettled(waits) : null;
      const loads = shown.map((state) => this.whenDrawn(state));
      if (this.config.live) loads.push(this.liveData());
      return Promise.all(loads).then(() => {
        document.documentElement.setAttribute('data-geomap-ready', 'true');
        return this.stats();
      });
    }

    /**
     * Load a layer now if the map is at its min_zoom, else once it gets there (while the
     * layer is on): the first view loads only what it draws. Resolves when loaded (or,
     * for a layer waiting for its zoom, at once).
     */
    whenDrawn(state) {
      if (state.loading) return state.loading;
      const due = () => this.map.getZoom() >= (state.spec.minZoom || 0) && this.map.hasLayer(state.gate);
      if (due()) {
        state.loading = this.load(state);
        return state.loading;
      }
      const check = () => {
        if (!due()) return;
        this.map.off('zoomend overlayadd', check);
        state.loading = this.load(state);
      };
      this.map.on('zoomend overlayadd', check);
      state.waiting = check;
      return Promise.resolve();
    }

    /** Load every layer still waiting for its zoom (the search looks through them all). */
    loadWaiting() {
      const loads = this.order.map((id) => this.states[id]).filter((state) => state.waiting && !state.loading)
        .map((state) => {
          this.map.off('zoomend overlayadd', state.waiting);
          state.loading = this.load(state);
          return state.loading;
        });
      return Promise.all(loads);
    }

    setView() {
      const view = this.config.view || {};
      if (view.center) {
        this.map.setView(this.latLng(view.center[1], view.center[0]), view.zoom || 12);
        return;
      }
      if (!view.bounds) return;
      const sw = this.latLng(view.bounds[0][1], view.bounds[0][0]);
      const ne = this.latLng(view.bounds[1][1], view.bounds[1][0]);
      const bounds = L.latLngBounds(sw, ne);
      // Fill the window with the area rather than fit all of it: round the zoom at which
      // the area fits instead of flooring it (a city-wide view one level too far out
      // would hide the grids behind their min_zoom).
      const a = this.map.project(bounds.getSouthWest(), 0);
      const b = this.map.project(bounds.getNorthEast(), 0);
      const size = this.map.getSize();
      const fit = Math.log2(Math.min(size.x / Math.max(Math.abs(b.x - a.x), 1e-9),
        size.y / Math.max(Math.abs(a.y - b.y), 1e-9)));
      let zoom = Math.max(this.map.getMinZoom(), Math.min(this.map.getMaxZoom() || 18, Math.round(fit)));
      // A narrow screen (a phone) would open the city below the teams' min_zoom: the first
      // view of the battle map always draws the teams (clustered).
      const teams = (this.config.layers || []).find((l) => l.id === 'teams' && l.visible);
      if (this.config.page === 'battle' && teams) zoom = Math.max(zoom, teams.minZoom || 0);
      this.map.setView(bounds.getCenter(), zoom);
    }

    /**
     * Circles overlap by the dozen in the city centre: drawn each at the catalog's fill
     * opacity they would pile up into a solid block. They are drawn opaque on their own
     * canvas instead, and the canvas itself is made translucent: their union shows at
     * one even tint, and each circle's outline stays visible on it.
     */
    circleStyle(spec) {
      const style = spec.style || {};
      const pane = this.map.getPane('gm-circles');
      const fillOpacity = style.fill_opacity === undefined ? 0.2 : style.fill_opacity;
      pane.style.opacity = String(Math.min(0.6, Math.max(0.15, fillOpacity * 1.6)));
      return Object.assign(this.pathStyle(spec), { fillOpacity: 0.75, opacity: 1 });
    }

    /** Whether the features of a pane answer the pointer (tooltips, popups). */
    paneInteractive(name) {
      if (name === 'areas' || name === 'routes' || name === 'points') return true;
      // On the battle map the circles are context: the grids below them stay reachable.
      if (name === 'circles') return this.config.page !== 'battle';
      return false;
    }

    renderer(paneName) {
      if (!this.renderers[paneName]) {
        // Canvas, not SVG: thousands of polygons stay smooth to pan and zoom. Leaflet's own
        // padding (a tenth of the view on each side): each canvas is redrawn and composited
        // whole, so a wider margin costs on every frame.
        this.renderers[paneName] = L.canvas({ pane: 'gm-' + paneName, padding: 0.1, tolerance: 2 });
      }
      return this.renderers[paneName];
    }

    // -- loading
    async load(state) {
      const spec = state.spec;
      this.say('load:' + spec.id, this.t.loading + ' ' + spec.title, 'progress');
      try {
        if (spec.type === 'catalog') {
          await this.loadCatalog(state, null);
        } else if (spec.type === 'circles') {
          await this.loadCircles(state);
        } else if (spec.type === 'venues') {
          this.buildVenues(state, (await this.circlesAnswer()).features);
        } else if (spec.type === 'coverage') {
          await this.loadCoverage(state, this.sourceUrl(spec));
        }
        state.loaded = true;
        this.say('load:' + spec.id, null);
        this.loaded(state);
      } catch (error) {
        state.error = error.message || String(error);
        this.say('load:' + spec.id, fmt(this.t.load_failed, { layer: spec.title, message: state.error }), 'error');
      }
      this.renderLegend();
      this.refreshZoomNotes();
    }

    /** A catalog layer's document (url: another detail than the page's), decoded and drawn. */
    async loadCatalog(state, url) {
      const spec = state.spec;
      if (spec.source && spec.source.tiles) {
        this.buildTiled(state);
        return;
      }
      const doc = await (url || !state.prefetch ? this.fetchCompact(spec, url) : state.prefetch);
      mark('fetched:' + spec.id);
      // The first view's layers are drawn together, once all have arrived (they come
      // within milliseconds of each other): one frame to paint, not one per layer.
      if (!url && this.firstView) await this.firstView;
      state.features = decodeCompact(doc, spec.idField);
      state.matched = doc.matched;
      state.sources = doc.sources || [];
      state.credits = doc.attribution || [];
      mark('decoded:' + spec.id);
      this.buildCatalogLayer(state);
      mark('built:' + spec.id);
      this.watchDetail(state, doc, async (zoom) => {
        await this.loadCatalog(state, this.sourceUrl(spec, zoom));
        this.loaded(state);
      });
    }

    /** Where a layer's data is: the URL the page preloads, or that URL for another zoom. */
    sourceUrl(spec, zoom) {
      const source = spec.source || {};
      if (source.inline) return null;
      const href = source.href || this.url(source.url);
      if (zoom === undefined) return href;
      const url = new URL(href, window.location.href);
      url.searchParams.delete('zoom');
      if (zoom !== null) url.searchParams.set('zoom', zoom);
      return url.toString();
    }

    /**
     * A document generalised for a zoom (doc.zoom: simplified to about a pixel there, holes
     * too small to see dropped) is loaded again, finer, once the map is zoomed in two
     * levels past it; from the layer's detailZoom on, in full detail.
     */
    watchDetail(state, doc, reload) {
      if (doc.zoom === undefined || doc.zoom === null) {
        state.detail = null;
        return;
      }
      state.detail = { zoom: doc.zoom, reload: reload, busy: false };
      if (!state.detailWatch) {
        state.detailWatch = () => this.refine(state);
        this.map.on('zoomend', state.detailWatch);
      }
    }

    async refine(state) {
      const detail = state.detail;
      if (!detail || detail.busy || !this.map.hasLayer(state.gate)) return;
      const zoom = Math.floor(this.map.getZoom());
      if (zoom < detail.zoom + 2) return;
      detail.busy = true;
      const full = !state.spec.detailZoom || zoom >= state.spec.detailZoom;
      try {
        await detail.reload(full ? null : zoom);
        mark('refined:' + state.spec.id);
      } catch (error) {
        this.say('load:' + state.spec.id, fmt(this.t.load_failed, { layer: state.spec.title, message: error.message }), 'error');
      } finally {
        detail.busy = false;
      }
      this.renderLegend();
      if (state.detail && state.detail !== detail) this.refine(state);  // zoomed on meanwhile
    }

    async fetchCompact(spec, url) {
      if (spec.source.inline) {
        const element = document.getElementById(spec.source.inline);
        return JSON.parse(element.textContent);
      }
      // source.href: the URL the page preloads (<link rel=preload>): fetch the same one.
      return this.fetchJson(url || this.sourceUrl(spec));
    }

    async fetchJson(url) {
      let response;
      // A busy service (503) or a caller over its rate (429) says when to come back
      // (Retry-After): wait that long, twice at most, before reporting the error.
      for (let attempt = 0; ; attempt += 1) {
        try {
          response = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
        } catch (error) {
          throw new Error(fmt(this.t.nearest_unreachable, { message: error.message }));
        }
        const wait = Number(response.headers.get('Retry-After'));
        if (attempt >= 2 || (response.status !== 503 && response.status !== 429) || !(wait > 0) || wait > 10) break;
        await sleep(wait * 1000);
      }
      let body = null;
      try {
        body = await response.json();
      } catch (error) {
        body = null;
      }
      if (!response.ok) {
        const message = body && body.error ? body.error.message : response.status + ' ' + response.statusText;
        const failure = new Error(message);
        failure.status = response.status;
        throw failure;
      }
      return body;
    }

    /**
     * The circles map's document (/map/circles/data: each venue's circle, the union's
     * residents as its summary), fetched once: the circles and the venues share it.
     */
    circlesAnswer(url) {
      if (!this.circlesRequest || url) {
        const spec = (this.states.circles || this.states.venues).spec;
        this.say('circles', this.t.circles_loading, 'progress');
        const request = this.fetchJson(url || this.sourceUrl(spec)).then((doc) => {
          mark('fetched:circles');
          return { doc: doc, features: decodeCompact(doc) };
        });
        const clear = () => this.say('circles', null);
        request.then(clear, clear);
        if (!url) this.circlesRequest = request;
        return request;
      }
      return this.circlesRequest;
    }

    /** What depends on more than one layer: search, team counts, the grids' colours. */
    loaded(state) {
      this.searchDirty = true;
      const id = state.spec.id;
      if (id === 'teams') {
        this.countTeams();
        this.fillCapabilities();
        if (this.pendingTeamEvents) this.flushTeamEvents();
      }
      const grids = this.states.grids;
      // The teams change the grids' colours only when the grids are coloured by teams.
      const recolour = (id === 'grids' && !state.coloured) || (id === 'teams' && this.gridColouring === 'teams');
      if (recolour && grids && grids.main) this.colourGrids(this.gridColouring);
    }

    stats() {
      const out = {};
      this.order.forEach((id) => {
        const state = this.states[id];
        out[id] = {
          loaded: state.loaded,
          error: state.error || null,
          features: state.features ? state.features.length : 0,
          drawn: state.tiled ? window.GeomapTiles.drawn(state) : state.count,
          tiled: !!state.tiled,
          tiles: state.tileStats ? state.tileStats.tiles : 0,
          matched: state.matched === undefined ? null : state.matched,
          onMap: !!(state.parts && state.parts.some((p) => this.map.hasLayer(p.layer))),
          minZoom: state.spec.minZoom,
        };
      });
      if (this.caseLayer) {
        // The live case layer (from /api/cases, not a catalog document).
        const n = Object.keys(this.cases).length;
        out.cases = { loaded: !!this.casesLoaded, error: null, features: n, drawn: n, tiled: false, tiles: 0,
          matched: n, onMap: this.map.hasLayer(this.caseLayer), minZoom: 0, live: true };
      }
      return out;
    }
  }

  /** Add `methods` to the page class (later files may build on earlier ones). */
  GeomapPage.include = function (methods) {
    Object.assign(GeomapPage.prototype, methods);
    return GeomapPage;
  };

  G.Page = GeomapPage;
  G.drawing = {
    PANES: PANES, AREA_LAYERS: AREA_LAYERS, ROUTE_COLORS: ROUTE_COLORS,
    COVERED_COLORS: COVERED_COLORS, UNCOVERED_COLOR: UNCOVERED_COLOR,
  };
})();
