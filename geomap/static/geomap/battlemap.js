/*
 * battlemap.js: the geomap map pages in the browser (battle map, circles, coverage).
 *
 * Folium builds the page shell (the Leaflet map, scale bar, fullscreen button, basemap
 * tiles, asset links); this module draws the data. Each layer's features are loaded ONCE,
 * from the service (/map/data/<layer>, the compact form of geomap/maps/compact.py) or
 * from JSON inlined in a standalone file, and drawn with the styles of the layer catalog
 * (layers/*.toml): polygons on canvas, points as Font Awesome markers, clustered where
 * the catalog says so. A layer is drawn only from its catalog min_zoom on.
 *
 * Entry point: GeomapMap.start(map, config), called by the page (geomap/maps/page.py
 * documents the configuration). No build step: plain ES2017 over Leaflet 1.9,
 * Leaflet.markercluster and leaflet-search. Tests and host pages read window.geomap.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------- coordinates
  // WGS84 -> GCJ-02, the published formula (the same as geomap/crs.py wgs84_to_gcj02):
  // Amap tiles are drawn in GCJ-02, so features are shifted onto them for display and
  // map clicks are shifted back to WGS84 before they are sent to the service.
  const GCJ_A = 6378245.0;
  const GCJ_EE = 0.00669342162296594323;

  function outOfChina(lon, lat) {
    return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271;
  }

  function offsetLat(x, y) {
    let ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    ret += (20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0 / 3.0;
    ret += (20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin(y / 3.0 * Math.PI)) * 2.0 / 3.0;
    ret += (160.0 * Math.sin(y / 12.0 * Math.PI) + 320.0 * Math.sin(y * Math.PI / 30.0)) * 2.0 / 3.0;
    return ret;
  }

  function offsetLon(x, y) {
    let ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    ret += (20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0 / 3.0;
    ret += (20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin(x / 3.0 * Math.PI)) * 2.0 / 3.0;
    ret += (150.0 * Math.sin(x / 12.0 * Math.PI) + 300.0 * Math.sin(x / 30.0 * Math.PI)) * 2.0 / 3.0;
    return ret;
  }

  /** [lon, lat] in GCJ-02 of a WGS84 point (unchanged outside China). */
  function wgs84ToGcj02(lon, lat) {
    if (outOfChina(lon, lat)) return [lon, lat];
    let dLat = offsetLat(lon - 105.0, lat - 35.0);
    let dLon = offsetLon(lon - 105.0, lat - 35.0);
    const radLat = lat / 180.0 * Math.PI;
    const sinLat = Math.sin(radLat);
    const magic = 1 - GCJ_EE * sinLat * sinLat;
    const sqrtMagic = Math.sqrt(magic);
    dLat = (dLat * 180.0) / ((GCJ_A * (1 - GCJ_EE)) / (magic * sqrtMagic) * Math.PI);
    dLon = (dLon * 180.0) / (GCJ_A / sqrtMagic * Math.cos(radLat) * Math.PI);
    return [lon + dLon, lat + dLat];
  }

  /** [lon, lat] in WGS84 of a GCJ-02 point: fixed-point inversion (< 1 mm), as geomap/crs.py. */
  function gcj02ToWgs84(lon, lat) {
    let wLon = lon;
    let wLat = lat;
    for (let i = 0; i < 30; i++) {
      const f = wgs84ToGcj02(wLon, wLat);
      const dLon = f[0] - lon;
      const dLat = f[1] - lat;
      wLon -= dLon;
      wLat -= dLat;
      if (Math.abs(dLon) < 1e-10 && Math.abs(dLat) < 1e-10) break;
    }
    return [wLon, wLat];
  }

  // ---------------------------------------------------------------- small helpers
  const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

  function esc(value) {
    return String(value === null || value === undefined ? '' : value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  }

  function fmt(template, values) {
    return String(template).replace(/\{(\w+)\}/g, (all, key) => (key in values ? values[key] : all));
  }

  // Thousands separated by commas (as Chinese and English both write them), at most
  // `digits` decimals. Not toLocaleString(): it builds a formatter on every call (and the
  // first Intl formatter costs tens of milliseconds of page start-up).
  function number(value, digits) {
    if (value === null || value === undefined || value === '') return '';
    const n = Number(value);
    if (!isFinite(n)) return esc(value);
    const d = digits === undefined ? 2 : digits;
    const text = n.toFixed(d).replace(/\.?0+$/, (m) => (m.indexOf('.') >= 0 || d > 0 ? '' : m));
    const parts = text.split('.');
    parts[0] = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    return parts.join('.');
  }

  function percent(share) {
    return share === null || share === undefined ? '' : (100 * share).toFixed(1) + '%';
  }

  // ---------------------------------------------------------------- inline styles
  // The pages' Content-Security-Policy allows no inline style attribute: HTML written
  // here carries data-style instead, applied through the CSSOM (which CSP allows).
  function applyStyles(root) {
    if (!root || !root.querySelectorAll) return root;
    Array.prototype.forEach.call(root.querySelectorAll('[data-style]'), (el) => {
      el.style.cssText = el.getAttribute('data-style');
      el.removeAttribute('data-style');
    });
    return root;
  }

  let StyledDivIcon = null;
  /** L.divIcon whose HTML may use data-style (see applyStyles). */
  function styledIcon(options) {
    if (!StyledDivIcon) {
      StyledDivIcon = L.DivIcon.extend({
        createIcon(oldIcon) { return applyStyles(L.DivIcon.prototype.createIcon.call(this, oldIcon)); },
      });
    }
    return new StyledDivIcon(options);
  }

  /** Resolve after ms milliseconds. */
  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function withQuery(url, params) {
    const parts = [];
    Object.keys(params).forEach((key) => {
      const value = params[key];
      if (value !== null && value !== undefined && value !== '') {
        parts.push(encodeURIComponent(key) + '=' + encodeURIComponent(value));
      }
    });
    if (!parts.length) return url;
    return url + (url.indexOf('?') >= 0 ? '&' : '?') + parts.join('&');
  }

  // Area-weighted centroid of a ring of [lon, lat] (a label or search position).
  function ringCentroid(ring) {
    let area = 0;
    let cx = 0;
    let cy = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
      area += f;
      cx += (ring[j][0] + ring[i][0]) * f;
      cy += (ring[j][1] + ring[i][1]) * f;
    }
    if (Math.abs(area) < 1e-18) return ring[0];
    return [cx / (3 * area), cy / (3 * area)];
  }

  function ringArea(ring) {
    let area = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      area += ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
    }
    return Math.abs(area / 2);
  }

  /** [lon, lat] inside-ish a (Multi)Polygon: the centroid of its largest outer ring. */
  function polygonAnchor(geometry) {
    if (!geometry) return null;
    if (geometry.type === 'Point') return geometry.coordinates;
    const polygons = geometry.type === 'MultiPolygon' ? geometry.coordinates
      : geometry.type === 'Polygon' ? [geometry.coordinates] : [];
    let best = null;
    let bestArea = -1;
    polygons.forEach((polygon) => {
      const a = ringArea(polygon[0]);
      if (a > bestArea) { bestArea = a; best = polygon[0]; }
    });
    return best ? ringCentroid(best) : null;
  }

  // Performance marks (geomap:...) show in the browser's timeline and in benchmarks.
  function mark(name) {
    if (window.performance && performance.mark) performance.mark('geomap:' + name);
  }

  // ---------------------------------------------------------------- compact layers
  /**
   * GeoJSON Features of a geomap-compact/1 document (see geomap/maps/compact.py):
   * property arrays become objects (dictionary fields looked up), delta-encoded integer
   * rings become coordinates. `idField` receives the feature id when it is not a field.
   */
  function decodeCompact(doc, idField) {
    const scale = Math.pow(10, doc.precision);
    const fields = doc.fields;
    const dictionaries = doc.dictionaries || {};
    const lookup = fields.map((name) => dictionaries[name] || null);
    const undelta = (flat) => {
      const out = new Array(flat.length / 2);
      let x = 0;
      let y = 0;
      for (let i = 0, k = 0; i < flat.length; i += 2, k++) {
        x += flat[i];
        y += flat[i + 1];
        out[k] = [x / scale, y / scale];
      }
      return out;
    };
    return doc.features.map((row) => {
      const values = row[1];
      const encoded = row[2];
      const properties = {};
      for (let i = 0; i < fields.length; i++) {
        properties[fields[i]] = lookup[i] ? lookup[i][values[i]] : values[i];
      }
      if (idField && !(idField in properties)) properties[idField] = row[0];
      let geometry = null;
      if (encoded) {
        if (doc.geometry === 'point') {
          geometry = { type: 'Point', coordinates: [encoded[0] / scale, encoded[1] / scale] };
        } else if (doc.geometry === 'line') {
          geometry = { type: 'MultiLineString', coordinates: encoded.map(undelta) };
        } else {
          geometry = { type: 'MultiPolygon', coordinates: encoded.map((p) => p.map(undelta)) };
        }
      }
      return { type: 'Feature', id: row[0], properties: properties, geometry: geometry };
    });
  }

  // ---------------------------------------------------------------- zoom gate
  // A layer-control entry whose parts are on the map only from their minimum zoom: the
  // catalog's min_zoom keeps thousands of grid polygons off a city-wide view.
  const ZoomGate = L.Layer.extend({
    initialize: function (parts) {
      this._parts = parts || [];
    },
    setParts: function (parts) {
      if (this._map) this._detach();
      this._parts = parts;
      if (this._map) this._sync();
      return this;
    },
    onAdd: function (map) {
      map.on('zoomend', this._sync, this);
      this._sync();
    },
    onRemove: function (map) {
      map.off('zoomend', this._sync, this);
      this._detach();
    },
    _detach: function () {
      this._parts.forEach((part) => {
        if (this._map.hasLayer(part.layer)) this._map.removeLayer(part.layer);
      });
    },
    _sync: function () {
      const zoom = this._map.getZoom();
      this._parts.forEach((part) => {
        const wanted = zoom >= part.minZoom;
        const shown = this._map.hasLayer(part.layer);
        if (wanted && !shown) this._map.addLayer(part.layer);
        else if (!wanted && shown) this._map.removeLayer(part.layer);
      });
    },
  });

  // Panes, bottom to top: filled areas, circles, outlines, routes, labels; markers above.
  // Points drawn from vector tiles (vectortiles.js) sit just below the markers.
  const PANES = { areas: 350, circles: 370, outlines: 390, routes: 420, labels: 450, points: 590 };
  const AREA_LAYERS = { grids: 'areas', communities: 'areas', coverage: 'areas', circles: 'circles' };
  const ROUTE_COLORS = ['#dc2626', '#ea580c', '#ca8a04', '#16a34a', '#2563eb', '#7c3aed'];
  const COVERED_COLORS = ['#bbf7d0', '#4ade80', '#15803d'];
  const UNCOVERED_COLOR = '#dc2626';

  // ---------------------------------------------------------------- the page
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
        this.legend = this.addBox('bottomright', 'gm-legend');
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
          if (!this.nearestOnClick) return;
          const p = this.toWgs84(e.latlng);
          this.nearest(p[0], p[1]);
        });
      }
      const shown = this.order.map((id) => this.states[id]).filter((state) => state.spec.visible);
      const first = shown.filter((state) => state.spec.type === 'catalog' && state.spec.source &&
        !state.spec.source.tiles && this.map.getZoom() >= (state.spec.minZoom || 0));
      first.forEach((state) => { state.prefetch = this.fetchCompact(state.spec); });
      this.firstView = first.length ? Promise.allSettled(first.map((state) => state.prefetch)) : null;
      const loads = shown.map((state) => this.whenDrawn(state));
      this.ready = Promise.all(loads).then(() => {
        document.documentElement.setAttribute('data-geomap-ready', 'true');
        return this.stats();
      });
      this.refreshZoomNotes();
      this.renderLegend();
      return this;
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
      const zoom = Math.max(this.map.getMinZoom(), Math.min(this.map.getMaxZoom() || 18, Math.round(fit)));
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
      if (id === 'teams') this.countTeams();
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
      return out;
    }

    // -- styles
    kindStyle(spec, kind) {
      const style = spec.style || {};
      const kinds = style.kinds || {};
      const own = kinds[kind] || {};
      return { color: own.color || style.color || '#334155', icon: own.icon || style.icon || 'location-dot' };
    }

    icon(spec, kind, status, styleSpec) {
      const key = spec.id + '|' + kind + '|' + status;
      if (!this.iconCache[key]) {
        const look = this.kindStyle(styleSpec || spec, kind);
        const statuses = (spec.style && spec.style.statuses) || {};
        const ring = statuses[status] && statuses[status].ring;
        const shadow = ring ? 'box-shadow:0 0 0 3px ' + ring + ';' : '';
        this.iconCache[key] = styledIcon({
          className: 'gm-marker',
          html: '<div class="gm-pin" data-style="background:' + esc(look.color) + ';' + shadow + '">' +
            '<i class="fa-solid fa-' + esc(look.icon) + '"></i></div>',
          iconSize: [22, 22],
          iconAnchor: [11, 11],
          popupAnchor: [0, -10],
        });
      }
      return this.iconCache[key];
    }

    /**
     * A path's style from its properties: the catalog's per-kind look (style.kinds by
     * kind_column: colour, opacity, dash) and line width (style.widths by width_column,
     * e.g. by road class), over the layer's base style.
     */
    featurePathStyle(spec, base, properties) {
      const style = spec.style || {};
      const own = Object.assign({}, base);
      const kind = spec.kindColumn && style.kinds && style.kinds[properties[spec.kindColumn]];
      if (kind) {
        if (kind.color) own.color = kind.color;
        if (kind.opacity !== undefined) own.opacity = kind.opacity;
        if (kind.dash !== undefined) own.dashArray = kind.dash;
        if (kind.weight !== undefined) own.weight = kind.weight;
      }
      const width = style.width_column && style.widths && style.widths[properties[style.width_column]];
      if (width !== undefined && width) own.weight = width;
      return own;
    }

    pathStyle(spec) {
      const style = spec.style || {};
      return {
        color: style.color || '#475569',
        weight: style.weight === undefined ? 1 : style.weight,
        dashArray: style.dash || null,
        fill: !!style.fill,
        fillColor: style.fill_color || style.color || '#94a3b8',
        fillOpacity: style.fill_opacity === undefined ? 0.2 : style.fill_opacity,
        opacity: 0.9,
      };
    }

    // -- popups
    label(spec, properties) {
      if (spec.label) {
        if (this.config.lang === 'en' && properties[spec.label + '_en']) return properties[spec.label + '_en'];
        if (properties[spec.label] !== undefined && properties[spec.label] !== null) return properties[spec.label];
      }
      return properties.name || properties.code || '';
    }

    value(spec, name, value) {
      if (value === null || value === undefined || value === '') return null;
      if (name === spec.kindColumn || name === 'kind') {
        return esc((spec.kinds && spec.kinds[value]) || this.s.all_kinds[value] || value);
      }
      if (name === spec.statusColumn || name === 'status') return esc(this.s.statuses[value] || value);
      if (name === 'level') return esc(this.s.levels[value] || value);
      if (typeof value === 'boolean') return value ? this.t.yes : this.t.no;
      if (Array.isArray(value)) return esc(value.join(', '));
      if (typeof value === 'number') return number(value);
      if (/_at$/.test(name)) {
        const date = new Date(value);
        if (!isNaN(date)) return esc(date.toLocaleString(this.config.lang === 'zh' ? 'zh-CN' : 'en-GB'));
      }
      return esc(value);
    }

    table(rows) {
      return '<table class="gm-props">' + rows.map((r) =>
        '<tr><th>' + esc(r[0]) + '</th><td>' + r[1] + '</td></tr>').join('') + '</table>';
    }

    featureHtml(spec, properties, extraRows) {
      const title = this.label(spec, properties);
      const rows = [];
      (spec.fields || Object.keys(properties)).forEach((name) => {
        if (name === spec.label || name === 'name_en') return;
        const shown = this.value(spec, name, properties[name]);
        if (shown !== null) rows.push([this.s.fields[name] || name, shown]);
      });
      if (spec.idField && spec.fields && spec.fields.indexOf(spec.idField) < 0 && properties[spec.idField] !== undefined) {
        rows.unshift([this.s.fields[spec.idField] || spec.idField, esc(properties[spec.idField])]);
      }
      return '<div class="gm-popup"><h4>' + esc(title) + ' <small>' + esc(spec.title) + '</small></h4>' +
        this.table(rows.concat(extraRows || [])) + '</div>';
    }

    // -- catalog layers
    buildCatalogLayer(state) {
      const spec = state.spec;
      const drawable = state.features.filter((f) => f.geometry);
      state.count = drawable.length;
      let main;
      if (spec.geometry === 'point') {
        main = this.buildMarkers(state, drawable);
      } else {
        main = this.buildPaths(state, drawable);
      }
      const parts = [{ layer: main, minZoom: spec.minZoom || 0 }];
      const labels = this.buildLabels(state, drawable);
      if (labels) parts.push(labels);
      this.credit(main, state.credits);
      state.main = main;
      state.parts = parts;
      // The grids get their colours before they are drawn: drawn once, not twice.
      state.coloured = spec.id === 'grids' && this.gridColouring !== 'coverage';
      if (state.coloured) this.colourGrids(this.gridColouring);
      state.gate.setParts(parts);
    }

    /**
     * Show the credit lines of a layer's sources (doc.attribution, e.g. "© OpenStreetMap
     * contributors") in the attribution control while the layer is on the map: added when
     * the layer is drawn, removed when it is hidden or zoomed out of. The control counts
     * the lines, so a credit two layers owe shows once and stays while either is drawn.
     */
    credit(layer, lines) {
      const control = this.map.attributionControl;
      if (!control || !lines || !lines.length) return;
      layer.on('add', () => lines.forEach((line) => control.addAttribution(esc(line))));
      layer.on('remove', () => lines.forEach((line) => control.removeAttribution(esc(line))));
      if (this.map.hasLayer(layer)) lines.forEach((line) => control.addAttribution(esc(line)));
    }

    /** The pane of a polygon or line layer: filled areas, circles or outlines. */
    paneOf(spec) {
      return AREA_LAYERS[spec.id] || (spec.style && spec.style.fill ? 'areas' : 'outlines');
    }

    /**
     * A layer too big for one document, drawn from vector tiles (vectortiles.js): the
     * legend counts what the service counted; search and labels need the features, so
     * they skip it.
     */
    buildTiled(state) {
      const spec = state.spec;
      const layer = window.GeomapTiles.build(this, state);
      state.main = layer;
      state.count = spec.count || 0;
      state.matched = spec.count;
      state.sources = spec.sources || [];
      state.parts = [{ layer: layer, minZoom: spec.minZoom || 0 }];
      state.gate.setParts(state.parts);
    }

    tileTooltip(spec, properties) {
      if (spec.id === 'grids') return this.tooltipHtml(spec, { properties: properties });
      return '<b>' + esc(this.label(spec, properties)) + '</b>';
    }

    clusterTooltip(spec, properties) {
      const kind = spec.kindColumn ? properties[spec.kindColumn] : null;
      const kindName = kind === null ? '' : ' · ' + esc((spec.kinds && spec.kinds[kind]) || kind);
      return '<b>' + number(properties.cluster_count, 0) + '</b> ' + esc(spec.title) + kindName;
    }

    tilePopup(spec, properties) {
      // On the battle map a click on an area asks for the nearest teams instead.
      if (spec.geometry !== 'point' && this.nearestOnClick) return null;
      return this.featureHtml(spec, properties, this.extraRows(spec, { properties: properties }));
    }

    buildPaths(state, features) {
      const spec = state.spec;
      const page = this;
      const pane = this.paneOf(spec);
      // Outlines only frame the map: not clickable, so clicks reach the grids below.
      const interactive = this.paneInteractive(pane);
      const base = pane === 'circles' ? this.circleStyle(spec) : this.pathStyle(spec);
      const style = spec.style || {};
      const varies = pane !== 'circles' && ((spec.kindColumn && style.kinds) || (style.width_column && style.widths));
      const layer = L.geoJSON(features, this.geoJsonOptions({
        renderer: this.renderer(pane),
        interactive: interactive,
        style: varies ? (feature) => this.featurePathStyle(spec, base, feature.properties) : () => base,
      }));
      if (interactive) {
        this.bindFeatures(layer, (feature) => page.tooltipHtml(spec, feature), (feature) => {
          // On the battle map a click asks for the nearest teams; elsewhere it opens a popup.
          if (page.nearestOnClick) return null;
          return page.featureHtml(spec, feature.properties, page.extraRows(spec, feature));
        });
      }
      return layer;
    }

    /**
     * One tooltip and one click handler for all the features of a layer (thousands of
     * grids): bound on the layer, they show the feature under the pointer. `popup`
     * returns the popup's HTML, or null for none.
     */
    bindFeatures(layer, tooltip, popup) {
      layer.bindTooltip((path) => tooltip(path.feature), { sticky: true, direction: 'top', opacity: 0.95 });
      layer.on('click', (e) => {
        const path = e.propagatedFrom || e.layer;
        const html = path && path.feature ? popup(path.feature) : null;
        if (html) L.popup().setLatLng(e.latlng).setContent(html).openOn(this.map);
      });
    }

    tooltipHtml(spec, feature) {
      const p = feature.properties;
      let html = '<b>' + esc(this.label(spec, p)) + '</b>';
      if (spec.id === 'grids') {
        html += '<br>' + esc(this.s.fields.population) + ' ' + number(p.population);
        const teams = this.teamCounts && this.teamCounts[p[spec.idField]];
        html += '<br>' + esc(this.t.teams_in_grid) + ' ' + (teams ? teams.all : 0) +
          ' (' + esc(this.t.available_short) + ' ' + (teams ? teams.available : 0) + ')';
        if (this.coverageShares && p[spec.idField] in this.coverageShares) {
          html += '<br>' + esc(this.t.colour_coverage) + ' ' + percent(this.coverageShares[p[spec.idField]]);
        }
      }
      return html;
    }

    extraRows(spec, feature) {
      if (spec.id !== 'grids') return [];
      const teams = this.teamCounts && this.teamCounts[feature.properties[spec.idField]];
      const rows = [[this.t.teams_in_grid, (teams ? teams.all : 0) + ' (' + this.t.available_short + ' ' + (teams ? teams.available : 0) + ')']];
      if (this.coverageShares && feature.properties[spec.idField] in this.coverageShares) {
        rows.push([this.t.colour_coverage, percent(this.coverageShares[feature.properties[spec.idField]])]);
      }
      return rows;
    }

    buildLabels(state, features) {
      const spec = state.spec;
      if (spec.geometry !== 'polygon' || !spec.label || ['districts', 'townships'].indexOf(spec.id) < 0) return null;
      // District names at every zoom; township names once there is room for them.
      const minZoom = spec.id === 'districts' ? spec.minZoom : Math.max(spec.minZoom, 11);
      const markers = [];
      features.forEach((f) => {
        const anchor = polygonAnchor(f.geometry);
        if (!anchor) return;
        markers.push(L.marker(this.latLng(anchor[0], anchor[1]), {
          pane: 'gm-labels',
          interactive: false,
          keyboard: false,
          icon: L.divIcon({
            className: 'gm-label gm-label-' + spec.id,
            html: '<span>' + esc(this.label(spec, f.properties)) + '</span>',
            iconSize: null,
          }),
        }));
      });
      return { layer: L.layerGroup(markers), minZoom: minZoom };
    }

    markerFor(spec, feature, styleSpec) {
      const p = feature.properties;
      const c = feature.geometry.coordinates;
      const kind = spec.kindColumn ? p[spec.kindColumn] : null;
      const status = spec.statusColumn ? p[spec.statusColumn] : null;
      const statuses = (spec.style && spec.style.statuses) || {};
      const marker = L.marker(this.latLng(c[0], c[1]), {
        icon: this.icon(spec, kind, status, styleSpec),
        opacity: statuses[status] && statuses[status].opacity !== undefined ? statuses[status].opacity : 1,
        keyboard: false,
        title: this.label(spec, p),
      });
      marker.feature = feature;
      marker.spec = spec;
      return marker;
    }

    /** Open a marker's popup, binding it on first use (thousands of markers, few clicked). */
    openMarkerPopup(marker) {
      if (!marker.getPopup()) {
        marker.bindPopup(() => this.featureHtml(marker.spec, marker.feature.properties));
      }
      marker.openPopup();
    }

    buildMarkers(state, features) {
      const spec = state.spec;
      state.markers = features.map((f) => this.markerFor(spec, f));
      state.markerById = {};
      state.markers.forEach((m) => { state.markerById[m.feature.id] = m; });
      state.hiddenKinds = {};
      state.hiddenStatuses = {};
      if (spec.kindsShown) {
        // A provider layer on the coverage map shows the kinds the analysis used.
        Object.keys(spec.kinds || {}).forEach((k) => {
          if (spec.kindsShown.indexOf(k) < 0) state.hiddenKinds[k] = true;
        });
      }
      let group;
      if (spec.cluster) {
        const color = (spec.style && spec.style.color) || '#334155';
        group = L.markerClusterGroup({
          maxClusterRadius: 55,
          disableClusteringAtZoom: 16,
          showCoverageOnHover: false,
          spiderfyOnMaxZoom: true,
          iconCreateFunction: (cluster) => {
            const n = cluster.getChildCount();
            const size = n < 10 ? 'small' : n < 100 ? 'medium' : 'large';
            return styledIcon({
              html: '<div data-style="background:' + esc(color) + '"><span>' + n + '</span></div>',
              className: 'marker-cluster gm-cluster gm-cluster-' + size,
              iconSize: L.point(36, 36),
            });
          },
        });
      } else {
        group = L.featureGroup();
      }
      // The first click binds the popup; later clicks are the marker's own (open/close).
      group.on('click', (e) => {
        if (e.layer && e.layer.feature && !e.layer.getPopup()) this.openMarkerPopup(e.layer);
      });
      state.group = group;
      this.applyMarkerFilter(state);
      return group;
    }

    applyMarkerFilter(state) {
      const spec = state.spec;
      const shown = state.markers.filter((m) => {
        const p = m.feature.properties;
        if (spec.kindColumn && state.hiddenKinds[p[spec.kindColumn]]) return false;
        if (spec.statusColumn && state.hiddenStatuses[p[spec.statusColumn]]) return false;
        return true;
      });
      state.count = shown.length;
      const group = state.group;
      const fill = () => {
        group.clearLayers();
        if (group.addLayers) group.addLayers(shown);
        else shown.forEach((m) => group.addLayer(m));
      };
      // A cluster group off the map checks each marker added against every marker
      // waiting (quadratic: 0.1 s for 7,000 stations); on the map it clusters them at once.
      if (!group.addLayers || group._map) {
        fill();
      } else {
        if (state.pendingFill) group.off('add', state.pendingFill);
        state.pendingFill = () => { state.pendingFill = null; fill(); };
        group.once('add', state.pendingFill);
      }
    }

    // -- the grids' colouring: population, coverage (from /api/coverage), teams
    countTeams() {
      const teams = this.states.teams;
      if (!teams || !teams.features) return;
      const counts = {};
      teams.features.forEach((f) => {
        const code = f.properties.home_grid_code;
        if (!code) return;
        const c = counts[code] || (counts[code] = { all: 0, available: 0 });
        c.all += 1;
        if (f.properties.status === 'available') c.available += 1;
      });
      this.teamCounts = counts;
    }

    colouringOptions() {
      const grids = this.states.grids;
      if (!grids) return [];
      const options = ['none'];
      (grids.spec.choropleth || []).forEach((name) => {
        if (name === 'coverage' && this.config.service === null) return;  // needs the service
        if (name === 'coverage' && !(this.config.urls && this.config.urls.gridCoverage)) return;
        options.push(name);
      });
      // Teams per grid need every team and every grid in the browser (not tiled).
      if (this.states.teams && !this.states.teams.spec.source.tiles && !grids.spec.source.tiles) options.push('teams');
      return options;
    }

    async colourGrids(mode) {
      const state = this.states.grids;
      if (!state || !state.main) return;
      this.gridColouring = mode;
      const spec = state.spec;
      const ramp = (spec.style && spec.style.ramp) || ['#fff7ec', '#fdd49e', '#fc8d59', '#d7301f', '#7f0000'];
      const code = (p) => p[spec.idField];
      let value = null;
      let breaks = null;
      let colours = ramp;
      if (mode === 'population') {
        value = (p) => p.population;
        // Tiled grids are not all in the browser: the service gave their quantiles.
        if (state.tiled) breaks = (spec.breaks && spec.breaks.population) || [];
      } else if (mode === 'teams') {
        const counts = this.teamCounts || {};
        value = (p) => (counts[code(p)] ? counts[code(p)].all : 0);
      } else if (mode === 'coverage') {
        if (!this.coverageShares) {
          this.say('coverage', this.t.coverage_loading, 'progress');
          this.renderLegend();
          try {
            const answer = await this.fetchJson(this.url(this.config.urls.gridCoverage));
            const shares = {};
            answer.units.forEach((u) => { shares[u.code] = u.covered_share_population; });
            this.coverageShares = shares;
            this.say('coverage', null);
          } catch (error) {
            this.say('coverage', fmt(this.t.load_failed, { layer: this.t.colour_coverage, message: error.message }), 'error');
            return;
          }
          if (this.gridColouring !== 'coverage') return;  // the user moved on meanwhile
        }
        const shares = this.coverageShares;
        value = (p) => shares[code(p)];
        breaks = [0.2, 0.4, 0.6, 0.8];
        colours = ramp.slice().reverse();  // the least covered, the darkest
      }
      if (value && !breaks) breaks = quantileBreaks(state.features.map((f) => value(f.properties)), colours.length);
      const base = this.pathStyle(spec);
      const styleOf = (properties) => {
        if (!value) return Object.assign({}, base, { fillOpacity: 0.05 });
        const v = value(properties);
        if (v === undefined || v === null) return Object.assign({}, base, { fillColor: '#cbd5e1' });
        return Object.assign({}, base, { fillColor: colours[classOf(v, breaks)] });
      };
      if (state.tiled) {
        state.tileStyle = styleOf;
        window.GeomapTiles.restyle(state);
      } else {
        state.main.setStyle((feature) => styleOf(feature.properties));
      }
      this.gridValues = { mode: mode, breaks: breaks, colours: colours };
      this.renderLegend();
    }

    // -- the 15-minute circles (planners' map)
    async loadCircles(state, url) {
      const answer = await this.circlesAnswer(url);
      const spec = state.spec;
      state.features = answer.features;
      state.sources = answer.doc.sources || [];
      const drawable = answer.features.filter((f) => f.geometry);
      state.count = drawable.length;
      const base = this.circleStyle(spec);
      const page = this;
      state.main = L.geoJSON(drawable, this.geoJsonOptions({
        renderer: this.renderer('circles'),
        style: () => base,
      }));
      this.credit(state.main, spec.credits);
      this.bindFeatures(state.main, (feature) => '<b>' + esc(feature.properties.name) + '</b><br>' +
        esc(page.s.fields.population) + ' ' + number(feature.properties.population),
      (feature) => page.circleHtml(feature.properties));
      state.parts = [{ layer: state.main, minZoom: 0 }];
      state.gate.setParts(state.parts);
      mark('built:circles');
      this.circleFeatures = answer.features;
      // Residents inside any circle (the union: overlaps counted once).
      this.circlesUnion = answer.doc.summary || null;
      this.renderCirclesSummary();
      this.watchDetail(state, answer.doc, (zoom) => this.loadCircles(state, this.sourceUrl(spec, zoom)));
    }

    circleHtml(p) {
      const spec = { title: this.t.title_circles, fields: [], kinds: this.s.all_kinds };
      const rows = [
        [this.s.fields.kind, esc(this.s.all_kinds[p.kind] || p.kind)],
        [this.s.fields.minutes, p.minutes === null ? '' : number(p.minutes)],
        [this.s.fields.area_km2, number(p.area_km2, 3)],
        [this.s.fields.population, number(p.population, 0)],
        [this.s.fields.reached_edges, number(p.reached_edges, 0)],
      ];
      if (p.distance_m) rows.splice(2, 0, [this.s.fields.distance_m, number(p.distance_m, 0)]);
      return this.featureHtml(Object.assign(spec, { label: 'name' }), { name: p.name }, rows);
    }

    buildVenues(state, features) {
      const spec = state.spec;
      const styles = spec.styles || {};
      state.features = features;
      const markers = [];
      features.forEach((f) => {
        const p = f.properties;
        if (p.lon === null || p.lon === undefined) return;
        // Small dots in the kind's colour: markers would hide the circles they stand in.
        const look = this.kindStyle({ style: styles[p.venue_table] || {} }, p.kind);
        const marker = L.circleMarker(this.latLng(p.lon, p.lat), {
          radius: 4, color: '#fff', weight: 1.5, fillColor: look.color, fillOpacity: 1,
        });
        marker.bindTooltip(esc(p.name), { direction: 'top' });
        marker.bindPopup(() => this.circleHtml(p));
        markers.push(marker);
      });
      state.count = markers.length;
      state.main = L.featureGroup(markers);
      state.parts = [{ layer: state.main, minZoom: 0 }];
      state.gate.setParts(state.parts);
    }

    renderCirclesSummary() {
      if (!this.summaryBox) return;
      const features = this.circleFeatures || [];
      const union = this.circlesUnion;
      let covered = esc(this.t.computing);
      if (union) covered = '<b>' + number(union.covered_population, 0) + '</b> (' + percent(union.covered_share) + ')';
      const drawn = features.filter((f) => f.geometry);
      const area = drawn.reduce((s, f) => s + (f.properties.area_km2 || 0), 0);
      const people = drawn.reduce((s, f) => s + (f.properties.population || 0), 0);
      const top = drawn.slice().sort((a, b) => (b.properties.population || 0) - (a.properties.population || 0)).slice(0, 8);
      this.summaryTop = top;
      this.summaryBox.innerHTML = '<h3>' + esc(this.t.title_circles) + '</h3>' + this.table([
        [this.t.circles_count, number(drawn.length, 0)],
        [this.t.venues_without_circle, number(features.length - drawn.length, 0)],
        [this.t.circles_area, number(area, 1) + ' ' + esc(this.t.km2)],
        [this.t.circles_covered, covered],
        [this.t.circles_population, number(people, 0)],
      ]) + '<h4>' + esc(this.t.top_circles) + '</h4><ol class="gm-top">' + top.map((f, i) =>
        '<li><a href="#" data-top="' + i + '">' + esc(f.properties.name) + '</a> ' +
        number(f.properties.population, 0) + '</li>').join('') + '</ol>';
      this.bindTopLinks();
    }

    bindTopLinks() {
      Array.prototype.forEach.call(this.summaryBox.querySelectorAll('a[data-top]'), (a) => {
        a.addEventListener('click', (e) => {
          e.preventDefault();
          const feature = this.summaryTop[Number(a.getAttribute('data-top'))];
          const layer = L.geoJSON(feature, this.geoJsonOptions({}));
          this.map.fitBounds(layer.getBounds(), { maxZoom: 15 });
        });
      });
    }

    // -- coverage gaps (planners' map)
    async loadCoverage(state, url) {
      this.say('coverage', this.t.coverage_loading, 'progress');
      let doc;
      try {
        doc = await this.fetchJson(url);
      } finally {
        this.say('coverage', null);
      }
      mark('fetched:coverage');
      const spec = state.spec;
      const page = this;
      state.features = decodeCompact(doc);
      const drawable = state.features.filter((f) => f.geometry);
      state.count = drawable.length;
      state.summary = doc.summary;
      state.query = doc.query;
      state.main = L.geoJSON(drawable, this.geoJsonOptions({
        renderer: this.renderer('areas'),
        style: (f) => page.coverageStyle(f.properties),
      }));
      this.credit(state.main, spec.credits);
      this.bindFeatures(state.main, (feature) => '<b>' + esc(feature.properties.name) + '</b><br>' +
        esc(page.t.covered_share) + ' ' + percent(feature.properties.covered_share_population),
      (feature) => page.coverageHtml(spec, feature.properties));
      state.parts = [{ layer: state.main, minZoom: 0 }];
      state.gate.setParts(state.parts);
      mark('built:coverage');
      this.renderCoverageSummary(state);
      this.watchDetail(state, doc, (zoom) => this.loadCoverage(state, this.sourceUrl(spec, zoom)));
    }

    coverageStyle(p) {
      if (!p.covered) {
        // Gaps stand out: red fill and a heavier outline.
        return { color: '#7f1d1d', weight: 1.4, fill: true, fillColor: UNCOVERED_COLOR, fillOpacity: 0.6 };
      }
      const share = p.covered_share_population || 0;
      const colour = share >= 0.95 ? COVERED_COLORS[2] : share >= 0.8 ? COVERED_COLORS[1] : COVERED_COLORS[0];
      return { color: '#64748b', weight: 0.4, fill: true, fillColor: colour, fillOpacity: 0.45 };
    }

    coverageHtml(spec, p) {
      const rows = [
        [this.s.fields.code, esc(p.code)],
        [this.s.fields.level, esc(this.s.levels[p.level] || p.level)],
        [this.s.fields.population, number(p.population, 0)],
        [this.s.fields.covered_population, number(p.covered_population, 0)],
        [this.t.left_outside, '<b>' + number(p.uncovered_population, 0) + '</b>'],
        [this.s.fields.covered_share_population, percent(p.covered_share_population)],
        [this.s.fields.covered_share_area, percent(p.covered_share_area)],
        [this.s.fields.nearest_m, number(p.nearest_m, 0)],
        [this.s.fields.covered, p.covered ? this.t.covered : '<b class="gm-bad">' + esc(this.t.not_covered) + '</b>'],
      ];
      if (p.grids > 1) rows.push([this.s.fields.grids, number(p.grids, 0)]);
      return '<div class="gm-popup"><h4>' + esc(p.name) + ' <small>' + esc(spec.title) + '</small></h4>' +
        this.table(rows) + '</div>';
    }

    queryText(q) {
      const of = this.s.providers[q.of] || q.of;
      let text = fmt(this.t.coverage_of, { of: of });
      if (q.kind && q.kind.length) {
        const kinds = this.s.kinds[q.of] || {};
        text += ' (' + q.kind.map((k) => kinds[k] || k).join(', ') + ')';
      }
      if (q.within_m) text += ', ' + fmt(this.t.within_m, { value: number(q.within_m, 0) });
      if (q.within_min) text += ', ' + fmt(this.t.within_min, { value: number(q.within_min, 1), by: this.t['by_' + q.by] || q.by });
      return text;
    }

    renderCoverageSummary(state) {
      if (!this.summaryBox) return;
      const s = state.summary || {};
      const gaps = state.features.filter((f) => f.geometry && f.properties.uncovered_population > 0)
        .sort((a, b) => b.properties.uncovered_population - a.properties.uncovered_population).slice(0, 8);
      this.summaryTop = gaps;
      const outside = (s.population || 0) - (s.covered_population || 0);
      this.summaryBox.innerHTML = '<h3>' + esc(this.t.title_coverage) + '</h3>' +
        '<p class="gm-query">' + esc(this.queryText(state.query || this.config.query || {})) + '</p>' + this.table([
          [this.t.units, number(s.units, 0)],
          [this.t.covered_units, number(s.covered_units, 0)],
          [this.t.uncovered_units, '<b class="gm-bad">' + number((s.units || 0) - (s.covered_units || 0), 0) + '</b>'],
          [this.t.population, number(s.population, 0)],
          [this.t.covered_share, percent(s.covered_share)],
          [this.t.left_outside, '<b>' + number(outside, 0) + '</b>'],
        ]) + '<h4>' + esc(this.t.top_gaps) + '</h4><ol class="gm-top">' + gaps.map((f, i) =>
          '<li><a href="#" data-top="' + i + '">' + esc(f.properties.name) + '</a> ' +
          number(f.properties.uncovered_population, 0) + '</li>').join('') + '</ol>';
      this.bindTopLinks();
    }

    // -- controls
    addBox(position, className) {
      const Box = L.Control.extend({
        onAdd: () => {
          const div = L.DomUtil.create('div', 'gm-box ' + className);
          L.DomEvent.disableClickPropagation(div);
          L.DomEvent.disableScrollPropagation(div);
          return div;
        },
      });
      const control = new Box({ position: position });
      control.addTo(this.map);
      return control.getContainer();
    }

    addStatusBox() {
      const box = this.addBox('bottomleft', 'gm-status');
      box.style.display = 'none';
      return box;
    }

    /** Show (or with text null, clear) one status message; kinds: progress, notice, error. */
    say(key, text, kind) {
      // An embed has no chrome: it shows errors only, never progress or notes.
      if (this.config.embed && text && kind !== 'error') return;
      if (text === null || text === undefined) delete this.messages[key];
      else this.messages[key] = { text: text, kind: kind || 'notice' };
      if (!this.statusBox) return;
      const keys = Object.keys(this.messages);
      this.statusBox.style.display = keys.length ? '' : 'none';
      this.statusBox.innerHTML = keys.map((k) => '<div class="gm-msg gm-msg-' + this.messages[k].kind + '">' +
        esc(this.messages[k].text) + '</div>').join('');
    }

    addLayerControl() {
      const overlays = {};
      this.order.forEach((id) => {
        const spec = this.states[id].spec;
        const note = spec.minZoom > 0 ? ' <small class="gm-zoom-note">' + esc(fmt(this.t.zoom_in_to_see, { zoom: spec.minZoom })) + '</small>' : '';
        overlays['<span class="gm-overlay gm-overlay-' + esc(id) + '">' + esc(spec.title) + note + '</span>'] = this.states[id].gate;
      });
      this.layerControl = L.control.layers(null, overlays, {
        position: 'topright',
        collapsed: this.map.getSize().x < 700,
      }).addTo(this.map);
      this.map.on('overlayadd overlayremove', () => this.renderLegend());
    }

    refreshZoomNotes() {
      // The map container says which layers the zoom hides; CSS greys their entries.
      const zoom = this.map.getZoom();
      const container = this.map.getContainer();
      this.order.forEach((id) => {
        const hidden = zoom < (this.states[id].spec.minZoom || 0);
        L.DomUtil[hidden ? 'addClass' : 'removeClass'](container, 'gm-below-' + id);
      });
    }

    addSearch() {
      if (!L.Control.Search) return;
      const page = this;
      this.search = new L.Control.Search({
        position: 'topleft',
        sourceData: (text, callResponse) => {
          page.loadWaiting().then(() => callResponse(page.index()));
          return { abort: function () {} };
        },
        formatData: (records) => records,
        filterData: (text, records) => {
          const needle = text.trim().toLowerCase();
          const out = {};
          let n = 0;
          for (const key in records) {
            if (records[key].haystack.indexOf(needle) >= 0) {
              out[key] = records[key];
              if (++n >= 30) break;
            }
          }
          return out;
        },
        buildTip: (text, loc) => '<a href="#">' + esc(text) + ' <small>' + esc(loc.layerTitle) + '</small></a>',
        moveToLocation: (loc) => page.goTo(loc),
        textPlaceholder: this.t.search,
        textErr: this.t.search_none,
        textCancel: '×',
        minLength: 1,
        delayType: 150,
        autoCollapse: false,
        marker: false,
        initial: false,
        zoom: null,
      });
      this.map.addControl(this.search);
    }

    index() {
      if (this.searchDirty) {
        this.buildSearchIndex();
        this.searchDirty = false;
      }
      return this.searchIndex;
    }

    buildSearchIndex() {
      const index = {};
      this.order.forEach((id) => {
        const state = this.states[id];
        const spec = state.spec;
        if (!state.features || !spec.search || !spec.search.length) return;
        state.features.forEach((f) => {
          if (!f.geometry) return;
          const p = f.properties;
          const name = this.label(spec, p);
          const code = p.code || (spec.idField ? p[spec.idField] : '') || '';
          let key = code && code !== name ? name + ' · ' + code : String(name);
          if (index[key]) key += ' · ' + spec.title;
          const anchor = polygonAnchor(f.geometry);
          const loc = this.latLng(anchor[0], anchor[1]);
          loc.layerId = id;
          loc.layerTitle = spec.title;
          loc.featureId = f.id;
          loc.feature = f;
          loc.haystack = spec.search.map((s) => String(p[s] === undefined ? '' : p[s])).join(' ').toLowerCase() +
            ' ' + String(name).toLowerCase();
          index[key] = loc;
        });
      });
      this.searchIndex = index;
    }

    /** Show a feature found by the search: its layer on, zoomed in enough, popup open. */
    goTo(loc) {
      const state = this.states[loc.layerId];
      if (!state) return;
      if (!this.map.hasLayer(state.gate)) state.gate.addTo(this.map);
      const spec = state.spec;
      const feature = loc.feature;
      if (spec.geometry === 'point') {
        const marker = state.markerById && state.markerById[feature.id];
        const zoom = Math.max(this.map.getZoom(), spec.minZoom || 0, 16);
        this.map.setView(loc, zoom);
        if (marker && state.group && state.group.zoomToShowLayer && state.group.hasLayer(marker)) {
          state.group.zoomToShowLayer(marker, () => this.openMarkerPopup(marker));
        } else if (marker) {
          this.openMarkerPopup(marker);
        }
        return;
      }
      const bounds = L.geoJSON(feature, this.geoJsonOptions({})).getBounds();
      this.map.fitBounds(bounds, { maxZoom: 16 });
      if (this.map.getZoom() < (spec.minZoom || 0)) this.map.setZoom(spec.minZoom);
      L.popup().setLatLng(loc).setContent(this.featureHtml(spec, feature.properties, this.extraRows(spec, feature)))
        .openOn(this.map);
    }

    /** Render the legend once, at the next frame, however many layers asked meanwhile. */
    renderLegend() {
      if (!this.legend || this.legendPending) return;
      this.legendPending = true;
      window.requestAnimationFrame(() => {
        this.legendPending = false;
        this.renderLegendNow();
      });
    }

    renderLegendNow() {
      if (!this.legend) return;
      if (this.compactLegend) {
        this.renderCompactLegend();
        return;
      }
      const parts = ['<h3>' + esc(this.t.legend) + '</h3>'];
      this.order.forEach((id) => {
        const state = this.states[id];
        const spec = state.spec;
        if (!this.map.hasLayer(state.gate)) return;
        const synthetic = (state.sources || []).some((s) => /^synthetic/.test(s));
        let head = '<div class="gm-legend-layer"><div class="gm-legend-title">' + this.swatch(spec) + ' ' + esc(spec.title);
        if (state.loaded) head += ' <span class="gm-count">' + number(state.count, 0) + '</span>';
        else if (state.waiting && !state.loading) head += ' <small class="gm-zoom-note">' + esc(fmt(this.t.zoom_in_to_see, { zoom: spec.minZoom })) + '</small>';
        else if (!state.error) head += ' <span class="gm-count">…</span>';
        if (state.matched && state.features && state.matched > state.features.length) {
          head += ' <small>' + esc(fmt(this.t.shown_of, { count: number(state.features.length, 0), matched: number(state.matched, 0) })) + '</small>';
        }
        if (synthetic) head += ' <small class="gm-synthetic">' + esc(this.t.synthetic) + '</small>';
        if (spec.id === 'circles' && spec.type === 'catalog' && state.loaded && !state.count) {
          head += '<br><small>' + esc(this.t.circles_none) + '</small>';
        }
        head += '</div>';
        parts.push(head + this.legendDetail(state) + '</div>');
      });
      this.legend.innerHTML = parts.join('');
      applyStyles(this.legend);
      this.bindLegend();
    }

    /** The embed's legend: one line per layer shown, its kinds inline, nothing to click. */
    renderCompactLegend() {
      const parts = [];
      this.order.forEach((id) => {
        const state = this.states[id];
        const spec = state.spec;
        if (!this.map.hasLayer(state.gate)) return;
        let line = '<div class="gm-legend-title">' + this.swatch(spec) + ' ' + esc(spec.title);
        if (state.loaded) line += ' <span class="gm-count">' + number(state.count, 0) + '</span>';
        line += '</div>';
        if (spec.geometry === 'point' && state.markers && spec.kindColumn) {
          const kinds = {};
          state.markers.forEach((m) => { kinds[m.feature.properties[spec.kindColumn]] = true; });
          line += '<div class="gm-kinds-inline">' + Object.keys(kinds).sort().map((k) => {
            const look = this.kindStyle(spec, k);
            return '<span><i class="fa-solid fa-' + esc(look.icon) + '" data-style="color:' + esc(look.color) + '"></i> ' +
              esc((spec.kinds && spec.kinds[k]) || k) + '</span>';
          }).join(' ') + '</div>';
        }
        parts.push(line);
      });
      this.legend.innerHTML = parts.join('');
      applyStyles(this.legend);
    }

    swatch(spec) {
      const style = spec.style || {};
      if (spec.geometry === 'point') {
        return '<i class="fa-solid fa-' + esc(style.icon || 'location-dot') + '" data-style="color:' + esc(style.color || '#334155') + '"></i>';
      }
      const border = (style.dash ? 'dashed ' : 'solid ') + esc(style.color || '#475569');
      const fill = style.fill ? esc(style.color || '#94a3b8') : 'transparent';
      return '<span class="gm-swatch" data-style="border:2px ' + border + ';background:' + fill + ';opacity:.8"></span>';
    }

    legendDetail(state) {
      const spec = state.spec;
      let html = '';
      if (spec.geometry === 'point' && (state.markers || state.tiled) && spec.kindColumn) {
        const counts = {};
        if (state.tiled) {
          // Not all in the browser: every kind of the catalog, without counts.
          Object.keys((spec.style && spec.style.kinds) || {}).forEach((k) => { counts[k] = ''; });
        } else {
          state.markers.forEach((m) => {
            const k = m.feature.properties[spec.kindColumn];
            counts[k] = (counts[k] || 0) + 1;
          });
        }
        html += '<ul class="gm-kinds">' + Object.keys(counts).sort((a, b) => counts[b] - counts[a]).map((k) => {
          const look = this.kindStyle(spec, k);
          const off = state.hiddenKinds[k] ? ' gm-off' : '';
          return '<li class="gm-toggle' + off + '" data-layer="' + esc(spec.id) + '" data-kind="' + esc(k) + '">' +
            '<i class="fa-solid fa-' + esc(look.icon) + '" data-style="color:' + esc(look.color) + '"></i> ' +
            esc((spec.kinds && spec.kinds[k]) || k) + ' <span class="gm-count">' + counts[k] + '</span></li>';
        }).join('') + '</ul>';
        if (spec.statusColumn) {
          const statuses = (spec.style && spec.style.statuses) || {};
          html += '<ul class="gm-kinds gm-statuses">' + Object.keys(statuses).map((s) => {
            const off = state.hiddenStatuses[s] ? ' gm-off' : '';
            const ring = statuses[s].ring ? 'box-shadow:0 0 0 2px ' + esc(statuses[s].ring) + ';' : '';
            return '<li class="gm-toggle' + off + '" data-layer="' + esc(spec.id) + '" data-status="' + esc(s) + '">' +
              '<span class="gm-dot" data-style="opacity:' + statuses[s].opacity + ';' + ring + '"></span> ' +
              esc(this.s.statuses[s] || s) + '</li>';
          }).join('') + '</ul>';
        }
      }
      if (spec.geometry === 'line' && spec.kindColumn && state.features && spec.style && spec.style.kinds) {
        const counts = {};
        state.features.forEach((f) => {
          const k = f.properties[spec.kindColumn];
          counts[k] = (counts[k] || 0) + 1;
        });
        html += '<ul class="gm-kinds">' + Object.keys(counts).sort().map((k) => {
          const look = spec.style.kinds[k] || {};
          const line = (look.dash ? 'dashed ' : 'solid ') + esc(look.color || spec.style.color || '#475569');
          return '<li><span class="gm-line" data-style="border-top:3px ' + line + '"></span> ' +
            esc((spec.kinds && spec.kinds[k]) || k) + ' <span class="gm-count">' + counts[k] + '</span></li>';
        }).join('') + '</ul>';
      }
      if (spec.type === 'coverage') {
        const rows = [[UNCOVERED_COLOR, this.t.not_covered], [COVERED_COLORS[0], this.t.covered + ' < 80%'],
          [COVERED_COLORS[1], this.t.covered + ' 80–95%'], [COVERED_COLORS[2], this.t.covered + ' ≥ 95%']];
        html += '<ul class="gm-ramp">' + rows.map((r) => '<li><span class="gm-swatch" data-style="background:' + r[0] +
          '"></span> ' + esc(r[1]) + '</li>').join('') + '</ul>';
      }
      if (spec.id === 'grids' && state.main) {
        const options = this.colouringOptions();
        html += '<label class="gm-colouring">' + esc(this.t.colour_grids) + ' <select>' + options.map((o) =>
          '<option value="' + o + '"' + (o === this.gridColouring ? ' selected' : '') + '>' +
          esc(this.t['colour_' + o] || o) + '</option>').join('') + '</select></label>';
        const g = this.gridValues;
        if (g && g.breaks && g.mode === this.gridColouring && g.mode !== 'none') {
          const fmtBreak = (v) => (g.mode === 'coverage' ? percent(v) : number(v, 0));
          html += '<ul class="gm-ramp">' + g.colours.slice(0, g.breaks.length + 1).map((c, i) => {
            const lo = i === 0 ? null : g.breaks[i - 1];
            const hi = i < g.breaks.length ? g.breaks[i] : null;
            const label = lo === null ? '< ' + fmtBreak(hi) : hi === null ? '≥ ' + fmtBreak(lo) : fmtBreak(lo) + '–' + fmtBreak(hi);
            return '<li><span class="gm-swatch" data-style="background:' + esc(c) + '"></span> ' + esc(label) + '</li>';
          }).join('') + '</ul>';
        }
      }
      return html;
    }

    bindLegend() {
      Array.prototype.forEach.call(this.legend.querySelectorAll('.gm-toggle'), (li) => {
        li.addEventListener('click', () => {
          const state = this.states[li.getAttribute('data-layer')];
          const kind = li.getAttribute('data-kind');
          const status = li.getAttribute('data-status');
          const set = kind !== null ? state.hiddenKinds : state.hiddenStatuses;
          const key = kind !== null ? kind : status;
          if (set[key]) delete set[key];
          else set[key] = true;
          if (state.tiled) window.GeomapTiles.restyle(state);
          else this.applyMarkerFilter(state);
          this.renderLegend();
        });
      });
      const select = this.legend.querySelector('.gm-colouring select');
      if (select) select.addEventListener('change', () => this.colourGrids(select.value));
    }

    // -- nearest teams
    addNearestPanel() {
      const t = this.t;
      const box = this.addBox('topleft', 'gm-nearest');
      const by = (this.config.nearest && this.config.nearest.by) || 'drive';
      box.innerHTML = '<h3>' + esc(t.nearest) + '</h3>' +
        '<label class="gm-check"><input type="checkbox" class="gm-onclick"' + (this.nearestOnClick ? ' checked' : '') + '> ' + esc(t.nearest_click) + '</label>' +
        '<form class="gm-nearest-form"><input type="text" class="gm-where" placeholder="' + esc(t.nearest_hint) + '" title="' + esc(t.nearest_hint) + '">' +
        '<select class="gm-by" title="' + esc(t.nearest_by) + '">' + ['drive', 'walk', 'distance'].map((b) =>
          '<option value="' + b + '"' + (b === by ? ' selected' : '') + '>' + esc(t['by_' + b]) + '</option>').join('') + '</select>' +
        '<button type="submit">' + esc(t.nearest_go) + '</button></form>' +
        '<div class="gm-nearest-msg"></div><div class="gm-nearest-result"></div>';
      this.nearestBox = box;
      box.querySelector('.gm-onclick').addEventListener('change', (e) => {
        this.nearestOnClick = e.target.checked;
        L.DomUtil[this.nearestOnClick ? 'addClass' : 'removeClass'](this.map.getContainer(), 'gm-picking');
      });
      if (this.nearestOnClick) L.DomUtil.addClass(this.map.getContainer(), 'gm-picking');
      box.querySelector('form').addEventListener('submit', (e) => {
        e.preventDefault();
        this.nearestFromText(box.querySelector('.gm-where').value);
      });
      this.routes = L.layerGroup().addTo(this.map);
    }

    nearestFromText(textValue) {
      const text = (textValue || '').trim();
      const pair = /^\s*(-?\d+(?:\.\d+)?)\s*[,，\s]\s*(-?\d+(?:\.\d+)?)\s*$/.exec(text);
      if (pair) {
        let lon = Number(pair[1]);
        let lat = Number(pair[2]);
        if (Math.abs(lon) <= 90 && Math.abs(lat) > 90) { const x = lon; lon = lat; lat = x; }  // lat,lon given
        this.nearest(lon, lat);
        return;
      }
      const grids = this.states.grids;
      if (!grids || !grids.features) {
        this.nearestMessage(this.t.grids_not_loaded, 'error');
        return;
      }
      const idField = grids.spec.idField;
      const found = grids.features.find((f) => f.properties[idField] === text || f.properties.name === text);
      if (!found || !found.geometry) {
        this.nearestMessage(fmt(this.t.not_found_input, { text: text }), 'error');
        return;
      }
      const anchor = polygonAnchor(found.geometry);
      this.nearest(anchor[0], anchor[1]);
    }

    nearestMessage(text, kind) {
      const box = this.nearestBox && this.nearestBox.querySelector('.gm-nearest-msg');
      if (!box) return;
      box.className = 'gm-nearest-msg' + (kind ? ' gm-msg-' + kind : '');
      box.textContent = text || '';
    }

    /** Ask the service for the nearest available teams to a WGS84 point, and show them. */
    async nearest(lon, lat) {
      if (!this.nearestBox) return null;
      const t = this.t;
      this.routes.clearLayers();
      this.nearestBox.querySelector('.gm-nearest-result').innerHTML = '';
      const point = this.latLng(lon, lat);
      L.marker(point, {
        icon: L.divIcon({ className: 'gm-incident', html: '<i class="fa-solid fa-location-crosshairs"></i>', iconSize: [26, 26], iconAnchor: [13, 13] }),
        keyboard: false,
        title: t.nearest_point,
      }).addTo(this.routes);
      if (this.config.service === null || this.config.service === undefined) {
        this.nearestMessage(t.nearest_service, 'notice');
        return null;
      }
      const by = this.nearestBox.querySelector('.gm-by').value;
      const options = this.config.nearest || {};
      this.nearestMessage(t.nearest_busy + ' (' + lon.toFixed(5) + ', ' + lat.toFixed(5) + ')', 'progress');
      let answer;
      try {
        answer = await this.fetchJson(this.url(this.config.urls.nearest, {
          lon: lon.toFixed(6), lat: lat.toFixed(6), k: options.k || 5, by: by, route: options.route ? 1 : null,
        }));
      } catch (error) {
        this.nearestMessage(error.message, 'error');
        return null;
      }
      this.showNearest(answer, point, by);
      return answer;
    }

    showNearest(answer, point, by) {
      const t = this.t;
      const teams = answer.teams || [];
      const query = answer.query || {};
      this.nearestMessage(teams.length ? '(' + Number(query.lon).toFixed(5) + ', ' + Number(query.lat).toFixed(5) + ')' : t.nearest_none,
        teams.length ? null : 'notice');
      const bounds = L.latLngBounds([point]);
      const teamSpec = this.states.teams ? this.states.teams.spec : { id: 'teams', style: {}, kinds: this.s.kinds.teams };
      teams.forEach((team, i) => {
        const colour = ROUTE_COLORS[i % ROUTE_COLORS.length];
        const at = this.latLng(team.lon, team.lat);
        bounds.extend(at);
        if (team.route) {
          const line = L.geoJSON(team.route, this.geoJsonOptions({
            pane: 'gm-routes', style: () => ({ color: colour, weight: 4, opacity: 0.85 }),
          }));
          line.addTo(this.routes);
          bounds.extend(line.getBounds());
        } else {
          L.polyline([at, point], { pane: 'gm-routes', color: colour, weight: 3, dashArray: '6 6', opacity: 0.9 }).addTo(this.routes);
        }
        L.circleMarker(at, { pane: 'gm-routes', radius: 13, color: colour, weight: 3, fill: false }).addTo(this.routes);
      });
      if (teams.length) this.map.fitBounds(bounds.pad(0.15), { maxZoom: 16 });
      const rows = teams.map((team, i) => {
        const look = this.kindStyle(teamSpec, team.kind);
        const distance = team.distance_m >= 1000 ? number(team.distance_m / 1000, 1) + ' ' + t.km : number(team.distance_m, 0) + ' ' + t.m;
        const time = team.travel_min === null || team.travel_min === undefined ? '–' : number(team.travel_min, 1) + ' ' + t.min;
        const note = by !== 'distance' && !team.route && this.config.nearest && this.config.nearest.route ? ' <small>' + esc(t.straight_line) + '</small>' : '';
        return '<tr data-team="' + esc(team.id) + '"><td><span class="gm-rank" data-style="background:' + ROUTE_COLORS[i % ROUTE_COLORS.length] + '">' + (i + 1) + '</span></td>' +
          '<td><i class="fa-solid fa-' + esc(look.icon) + '" data-style="color:' + esc(look.color) + '"></i> ' + esc(team.name) +
          '<br><small>' + esc(teamSpec.kinds && teamSpec.kinds[team.kind] || team.kind) + ' · ' + esc(this.s.statuses[team.status] || team.status) + ' · ' + number(team.headcount, 0) + esc(t.people) + '</small>' + note + '</td>' +
          '<td class="gm-num">' + distance + '</td><td class="gm-num gm-time">' + time + '</td></tr>';
      }).join('');
      const result = this.nearestBox.querySelector('.gm-nearest-result');
      result.innerHTML = teams.length ? '<table class="gm-nearest-table"><thead><tr><th>' + esc(t.col_rank) + '</th><th>' + esc(t.col_team) +
        '</th><th>' + esc(t.col_distance) + '</th><th>' + esc(t.col_time) + '</th></tr></thead><tbody>' + rows + '</tbody></table>' : '';
      applyStyles(result);
      Array.prototype.forEach.call(result.querySelectorAll('tr[data-team]'), (tr) => {
        tr.addEventListener('click', () => {
          const team = teams.find((x) => String(x.id) === tr.getAttribute('data-team'));
          if (!team) return;
          const state = this.states.teams;
          const marker = state && state.markerById && state.markerById[team.id];
          if (marker && state.group.hasLayer(marker) && state.group.zoomToShowLayer) {
            state.group.zoomToShowLayer(marker, () => this.openMarkerPopup(marker));
          } else {
            this.map.setView(this.latLng(team.lon, team.lat), Math.max(this.map.getZoom(), 15));
          }
        });
      });
    }

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
        gcj02: { fromWgs84: wgs84ToGcj02, toWgs84: gcj02ToWgs84 },
      };
    }
  }

  // Class breaks for a choropleth: quantiles of the values (n classes, n-1 breaks).
  function quantileBreaks(values, n) {
    const sorted = values.filter((v) => v !== null && v !== undefined && isFinite(v)).sort((a, b) => a - b);
    if (!sorted.length) return [];
    const breaks = [];
    for (let i = 1; i < n; i++) {
      const v = sorted[Math.min(sorted.length - 1, Math.floor(i * sorted.length / n))];
      if (!breaks.length || v > breaks[breaks.length - 1]) breaks.push(v);
    }
    return breaks;
  }

  function classOf(value, breaks) {
    let i = 0;
    while (i < breaks.length && value >= breaks[i]) i++;
    return i;
  }

  function start(map, config) {
    const page = new GeomapPage(map, config);
    window.geomap = page.api();
    page.run();
    return page;
  }

  window.GeomapMap = {
    start: start,
    decodeCompact: decodeCompact,
    gcj02: { fromWgs84: wgs84ToGcj02, toWgs84: gcj02ToWgs84 },
  };
})();
