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

  // ---------------------------------------------------------------- path set
  // Thousands of polygons or lines (4,418 grids, 819 streets) as one Leaflet layer on a
  // canvas renderer: one object instead of one L.Polygon or L.Polyline each (building
  // and adding those was a third of the battle map's start-up). It keeps the features'
  // rings and lines projected once, at zoom 0, in typed arrays; draws the ones in view,
  // grouped by style; and finds the feature under the pointer through a bucket grid.
  // Tooltips and clicks are the layer's, with featureAt() telling which feature.
  /**
   * Zoom-0 pixel coordinates of a longitude and latitude on Leaflet's EPSG:3857
   * (`L.CRS.EPSG3857.latLngToPoint(latlng, 0)`, its own projection and constants) without
   * an object per vertex.
   */
  function mercator0(lng, lat, out, i) {
    const sm = L.Projection.SphericalMercator;
    const d = Math.PI / 180;
    const s = Math.sin(Math.max(Math.min(sm.MAX_LATITUDE, lat), -sm.MAX_LATITUDE) * d);
    const scale = 0.5 / (Math.PI * sm.R);  // EPSG:3857's transformation
    out[i] = 256 * (scale * sm.R * lng * d + 0.5);
    out[i + 1] = 256 * (-scale * sm.R * Math.log((1 + s) / (1 - s)) / 2 + 0.5);
  }

  const PathSet = L.Path.extend({
    options: { fill: true, fillOpacity: 0.2, fillRule: 'evenodd' },

    /**
     * features: GeoJSON (Multi)Polygon or (Multi)LineString features. options: Path options plus
     * `style(feature)` (each feature's path options) and `toLngLat(lon, lat)` (the
     * screen's coordinates of a data point, e.g. GCJ-02 on Amap; default: as they are).
     */
    initialize: function (features, options) {
      L.setOptions(this, options);
      this._features = features;
      this._items = null;
      this._styleOf = this.options.style || null;
    },

    /** Each feature as a layer-like item: `feature` and its path `options`. */
    eachLayer: function (fn, context) {
      this._prepare(this._map && this._map.options.crs);
      this._items.forEach((item) => fn.call(context, item));
      return this;
    },

    getLayers: function () {
      this._prepare(this._map && this._map.options.crs);
      return this._items.slice();
    },

    /** Restyle every feature: `style` is path options or a function of the feature. */
    setStyle: function (style) {
      this._styleOf = style;
      if (this._items) this._applyStyles();
      if (this._renderer) this._renderer._updateStyle(this);
      return this;
    },

    getBounds: function () {
      this._prepare(this._map && this._map.options.crs);
      return this._latLngBounds;
    },

    /** The feature drawn at a LatLng of the map (null: none). */
    featureAt: function (latlng) {
      if (!this._map) return null;
      const p = this._map.options.crs.latLngToPoint(latlng, 0);
      const item = this._itemAt0(p.x, p.y);
      return item ? item.feature : null;
    },

    /** The feature under the pointer (the canvas renderer asked last), or null. */
    hoveredFeature: function () {
      return this._hovered ? this._hovered.feature : null;
    },

    beforeAdd: function (map) {
      L.Path.prototype.beforeAdd.call(this, map);
      if (this._items && this._crs !== map.options.crs) this._items = null;  // prepared for another CRS
      this._prepare(map.options.crs);
    },

    /** Rings to typed arrays of zoom-0 pixels, bounds, the bucket grid (once per CRS). */
    _prepare: function (crs) {
      if (this._items) return;
      this._crs = crs || L.CRS.EPSG3857;
      // Web Mercator (the maps' CRS) without an object per vertex; any other CRS through it.
      const project = this._crs === L.CRS.EPSG3857 ? mercator0 : (lng, lat, out, i) => {
        const p = this._crs.latLngToPoint(L.latLng(lat, lng), 0);
        out[i] = p.x;
        out[i + 1] = p.y;
      };
      const toLngLat = this.options.toLngLat;
      let vertices = 0;
      let rings = 0;
      // Every ring of a polygon and every line, as a list of positions: rings are closed.
      const partsOf = (g) => {
        if (!g) return [];
        if (g.type === 'Polygon') return g.coordinates;
        if (g.type === 'MultiPolygon') return [].concat(...g.coordinates);
        if (g.type === 'LineString') return [g.coordinates];
        if (g.type === 'MultiLineString') return g.coordinates;
        return [];
      };
      this._features.forEach((f) => partsOf(f.geometry).forEach((ring) => {
        rings += 1;
        vertices += ring.length;
      }));
      const p0 = new Float64Array(2 * vertices);
      const ringStart = new Int32Array(rings + 1);
      const items = [];
      const all = [Infinity, Infinity, -Infinity, -Infinity];
      const lonLat = [Infinity, Infinity, -Infinity, -Infinity];
      let v = 0;
      let r = 0;
      this._features.forEach((feature) => {
        const closed = /Polygon$/.test((feature.geometry || {}).type || '');
        const item = { feature: feature, options: null, first: r, last: r, closed: closed, box: [Infinity, Infinity, -Infinity, -Infinity], key: '' };
        partsOf(feature.geometry).forEach((ring) => {
          ringStart[r] = v;
          r += 1;
          for (let k = 0; k < ring.length; k++) {
            let lng = ring[k][0];
            let lat = ring[k][1];
            if (toLngLat) {
              const c = toLngLat(lng, lat);
              lng = c[0];
              lat = c[1];
            }
            if (lng < lonLat[0]) lonLat[0] = lng;
            if (lat < lonLat[1]) lonLat[1] = lat;
            if (lng > lonLat[2]) lonLat[2] = lng;
            if (lat > lonLat[3]) lonLat[3] = lat;
            project(lng, lat, p0, 2 * v);
            const x = p0[2 * v];
            const y = p0[2 * v + 1];
            const b = item.box;
            if (x < b[0]) b[0] = x;
            if (y < b[1]) b[1] = y;
            if (x > b[2]) b[2] = x;
            if (y > b[3]) b[3] = y;
            v += 1;
          }
        });
        item.last = r;
        if (item.last > item.first) {
          for (let k = 0; k < 2; k++) all[k] = Math.min(all[k], item.box[k]);
          for (let k = 2; k < 4; k++) all[k] = Math.max(all[k], item.box[k]);
          items.push(item);
        }
      });
      ringStart[r] = v;
      this._p0 = p0;
      this._px = new Float64Array(p0.length);
      this._ringStart = ringStart;
      this._items = items;
      this._box0 = all;
      this._latLngBounds = items.length ? L.latLngBounds([lonLat[1], lonLat[0]], [lonLat[3], lonLat[2]]) : L.latLngBounds([]);
      this._buildBuckets();
      this._applyStyles();
    },

    /** A grid of cells over the whole set, each listing the items whose box meets it. */
    _buildBuckets: function () {
      const n = Math.max(1, Math.ceil(Math.sqrt(this._items.length)));
      const box = this._box0;
      this._buckets = { n: n, w: Math.max(box[2] - box[0], 1e-12), h: Math.max(box[3] - box[1], 1e-12), cells: new Array(n * n) };
      const cells = this._buckets.cells;
      this._items.forEach((item, index) => {
        const b = item.box;
        for (let j = this._row(b[1]); j <= this._row(b[3]); j++) {
          for (let i = this._column(b[0]); i <= this._column(b[2]); i++) {
            (cells[j * n + i] || (cells[j * n + i] = [])).push(index);
          }
        }
      });
    },

    /** The bucket column and row of a zoom-0 x and y (clamped to the grid). */
    _column: function (x) {
      const g = this._buckets;
      return Math.min(g.n - 1, Math.max(0, Math.floor((x - this._box0[0]) / g.w * g.n)));
    },

    _row: function (y) {
      const g = this._buckets;
      return Math.min(g.n - 1, Math.max(0, Math.floor((y - this._box0[1]) / g.h * g.n)));
    },

    _applyStyles: function () {
      const base = {};
      ['stroke', 'color', 'weight', 'opacity', 'fill', 'fillColor', 'fillOpacity', 'dashArray'].forEach((k) => { base[k] = this.options[k]; });
      const styleOf = this._styleOf;
      this._items.forEach((item) => {
        const own = typeof styleOf === 'function' ? styleOf(item.feature) : styleOf;
        const o = Object.assign({}, base, own || {});
        item.options = o;
        item.key = [o.stroke, o.color, o.weight, o.opacity, o.fill, o.fillColor, o.fillOpacity, o.dashArray].join('|');
      });
      const groups = {};
      this._items.forEach((item, index) => { (groups[item.key] || (groups[item.key] = [])).push(index); });
      this._groups = Object.keys(groups).map((key) => groups[key]);
      this._maxWeight = this._items.reduce((m, item) => Math.max(m, item.options.stroke === false ? 0 : item.options.weight || 0), 0);
    },

    /** Zoom-0 pixels to the map's layer pixels at its zoom; the items' pixel boxes. */
    _project: function () {
      const map = this._map;
      const crs = map.options.crs;
      const k = crs.scale(map.getZoom()) / crs.scale(0);
      const origin = map.getPixelOrigin();
      const p0 = this._p0;
      const px = this._px;
      for (let i = 0; i < p0.length; i += 2) {
        px[i] = p0[i] * k - origin.x;
        px[i + 1] = p0[i + 1] * k - origin.y;
      }
      this._k = k;
      this._origin = origin;
      const b = this._box0;
      const pad = this._maxWeight / 2 + 1;
      this._pxBounds = L.bounds([b[0] * k - origin.x - pad, b[1] * k - origin.y - pad],
        [b[2] * k - origin.x + pad, b[3] * k - origin.y + pad]);
    },

    _itemBoxPx: function (item, out) {
      const k = this._k;
      const o = this._origin;
      out[0] = item.box[0] * k - o.x;
      out[1] = item.box[1] * k - o.y;
      out[2] = item.box[2] * k - o.x;
      out[3] = item.box[3] * k - o.y;
      return out;
    },

    _update: function () {
      // Culling happens as it draws (against the renderer's bounds): nothing to clip.
    },

    /** Called by the canvas renderer while it draws: the items in view, style by style. */
    _updatePath: function () {
      const renderer = this._renderer;
      if (!renderer._drawing || !this._items.length) return;
      const ctx = renderer._ctx;
      const view = renderer._redrawBounds || renderer._bounds;
      const vx0 = view.min.x;
      const vy0 = view.min.y;
      const vx1 = view.max.x;
      const vy1 = view.max.y;
      const px = this._px;
      const starts = this._ringStart;
      const box = [0, 0, 0, 0];
      this._groups.forEach((group) => {
        const o = this._items[group[0]].options;
        const dash = typeof o.dashArray === 'string' ? o.dashArray.split(/[, ]+/).map(Number) : (o.dashArray || []);
        group.forEach((index) => {
          const item = this._items[index];
          const b = this._itemBoxPx(item, box);
          if (b[2] < vx0 || b[0] > vx1 || b[3] < vy0 || b[1] > vy1) return;
          ctx.beginPath();
          for (let r = item.first; r < item.last; r++) {
            const end = starts[r + 1];
            let i = starts[r];
            let lx = px[2 * i];
            let ly = px[2 * i + 1];
            ctx.moveTo(lx, ly);
            for (i += 1; i < end; i++) {
              const x = px[2 * i];
              const y = px[2 * i + 1];
              // Vertices within half a pixel of the last one drawn add nothing visible.
              if (i < end - 1 && Math.abs(x - lx) < 0.5 && Math.abs(y - ly) < 0.5) continue;
              ctx.lineTo(x, y);
              lx = x;
              ly = y;
            }
            if (item.closed) ctx.closePath();
          }
          if (o.fill && item.closed) {
            ctx.globalAlpha = o.fillOpacity;
            ctx.fillStyle = o.fillColor || o.color;
            ctx.fill(this.options.fillRule || 'evenodd');
          }
          if (o.stroke !== false && o.weight !== 0) {
            if (ctx.setLineDash) ctx.setLineDash(dash);
            ctx.globalAlpha = o.opacity === undefined ? 1 : o.opacity;
            ctx.lineWidth = o.weight;
            ctx.strokeStyle = o.color;
            ctx.lineCap = 'round';
            ctx.lineJoin = 'round';
            ctx.stroke();
          }
        });
      });
    },

    /** The canvas renderer asks, for the pointer's position (layer pixels). */
    _containsPoint: function (p) {
      if (!this._items || this._k === undefined) return false;
      this._hovered = this._itemAt0((p.x + this._origin.x) / this._k, (p.y + this._origin.y) / this._k);
      return !!this._hovered;
    },

    /** The item drawn at zoom-0 pixel (x, y): the last one drawn, as Leaflet picks. */
    _itemAt0: function (x, y) {
      const box = this._box0;
      const g = this._buckets;
      // Lines answer within half their width plus the renderer's tolerance, in zoom-0 pixels.
      const near = this._k ? (this._maxWeight / 2 + ((this._renderer && this._renderer.options.tolerance) || 0)) / this._k : 0;
      if (!this._items.length || x < box[0] - near || y < box[1] - near || x > box[2] + near || y > box[3] + near) return null;
      const candidates = g.cells[this._row(y) * g.n + this._column(x)] || [];
      for (let c = candidates.length - 1; c >= 0; c--) {
        const item = this._items[candidates[c]];
        const b = item.box;
        if (x < b[0] - near || y < b[1] - near || x > b[2] + near || y > b[3] + near) continue;
        if (item.closed ? this._inside(item, x, y) : this._near(item, x, y, near)) return item;
      }
      return null;
    },

    /** Even-odd ray crossing over every ring of the item (holes are rings too). */
    _inside: function (item, x, y) {
      const p0 = this._p0;
      const starts = this._ringStart;
      let inside = false;
      for (let r = item.first; r < item.last; r++) {
        const start = starts[r];
        const end = starts[r + 1];
        for (let i = start, j = end - 1; i < end; j = i++) {
          const xi = p0[2 * i];
          const yi = p0[2 * i + 1];
          const xj = p0[2 * j];
          const yj = p0[2 * j + 1];
          if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
        }
      }
      return inside;
    },

    /** Whether (x, y) lies within `near` of one of the item's lines (zoom-0 pixels). */
    _near: function (item, x, y, near) {
      const p0 = this._p0;
      const starts = this._ringStart;
      for (let r = item.first; r < item.last; r++) {
        for (let i = starts[r] + 1; i < starts[r + 1]; i++) {
          const ax = p0[2 * i - 2];
          const ay = p0[2 * i - 1];
          const dx = p0[2 * i] - ax;
          const dy = p0[2 * i + 1] - ay;
          const t = dx || dy ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy))) : 0;
          const ex = ax + t * dx - x;
          const ey = ay + t * dy - y;
          if (ex * ex + ey * ey <= near * near) return true;
        }
      }
      return false;
    },

    _clickTolerance: function () {
      return 0;
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

    // -- styles
    kindStyle(spec, kind) {
      const style = spec.style || {};
      const kinds = style.kinds || {};
      const own = kinds[kind] || {};
      return { color: own.color || style.color || '#334155', icon: own.icon || style.icon || 'location-dot' };
    }

    icon(spec, kind, status, styleSpec, stale) {
      const key = spec.id + '|' + kind + '|' + status + (stale ? '|stale' : '');
      if (!this.iconCache[key]) {
        const look = this.kindStyle(styleSpec || spec, kind);
        const statuses = (spec.style && spec.style.statuses) || {};
        const ring = statuses[status] && statuses[status].ring;
        // The status ring sits outside a white gap: it shows on every kind's colour.
        const classes = 'gm-pin' + (ring ? ' gm-ringed gm-st-' + esc(status) : '') + (stale ? ' gm-stale' : '');
        const ringStyle = ring ? '--gm-ring:' + esc(ring) + ';' : '';
        this.iconCache[key] = styledIcon({
          className: 'gm-marker',
          html: '<div class="' + classes + '" data-style="background:' + esc(look.color) + ';' + ringStyle + '">' +
            '<i class="fa-solid fa-' + esc(look.icon) + '"></i>' +
            (stale ? '<span class="gm-stale-badge"><i class="fa-solid fa-clock"></i></span>' : '') + '</div>',
          iconSize: [22, 22],
          iconAnchor: [11, 11],
          popupAnchor: [0, -12],
        });
      }
      return this.iconCache[key];
    }

    /** Whether a team's last position is older than the staleMinutes setting. */
    isStale(spec, properties) {
      if (spec.id !== 'teams' || !properties.position_at || !this.config.staleMinutes) return false;
      const at = Date.parse(properties.position_at);
      return isFinite(at) && Date.now() - at > this.config.staleMinutes * 60000;
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
      if (style.width_column && style.widths) {
        // Major roads first: drawn last, on top of the streets they cross.
        const width = (f) => style.widths[f.properties[style.width_column]] || 0;
        features = features.slice().sort((a, b) => width(a) - width(b));
      }
      const styleOf = varies ? (feature) => this.featurePathStyle(spec, base, feature.properties) : () => base;
      // One path set for all the layer's polygons or lines (thousands of grids, streets).
      const layer = this.pathSet(features, Object.assign({}, base, {
        renderer: this.renderer(pane), interactive: interactive, style: styleOf,
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
      if (layer instanceof PathSet) {
        // One layer for all its features: the tooltip follows the feature under the pointer.
        let shown = null;
        layer.bindTooltip(() => tooltip(layer.hoveredFeature() || shown), { sticky: true, direction: 'top', opacity: 0.95 });
        layer.on('mouseover', () => { shown = layer.hoveredFeature(); });
        layer.on('mousemove', () => {
          const now = layer.hoveredFeature();
          if (now && now !== shown && layer.isTooltipOpen()) {
            shown = now;
            layer.getTooltip().update();
          }
        });
        layer.on('click', (e) => {
          const feature = layer.featureAt(e.latlng);
          const html = feature ? popup(feature) : null;
          if (html) L.popup().setLatLng(e.latlng).setContent(html).openOn(this.map);
        });
        return;
      }
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
        icon: this.icon(spec, kind, status, styleSpec, this.isStale(spec, p)),
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
        marker.bindPopup(() => this.markerHtml(marker));
        if (marker.spec.id === 'teams') marker.on('popupopen', () => this.teamPersonal(marker));
      }
      marker.openPopup();
    }

    markerHtml(marker) {
      const spec = marker.spec;
      const p = marker.feature.properties;
      const rows = [];
      if (this.isStale(spec, p)) {
        const minutes = (Date.now() - Date.parse(p.position_at)) / 60000;
        rows.push([this.t.stale, '<b class="gm-bad">' + esc(fmt(this.t.stale_since, { value: this.ageText(minutes, true) })) + '</b>']);
      }
      if (marker.personal) {
        const who = marker.personal;
        if (who.leader_name) rows.push([this.t.leader, esc(who.leader_name)]);
        if (who.leader_phone) {
          rows.push([this.t.phone, '<a href="tel:' + esc(String(who.leader_phone).replace(/[^0-9+]/g, '')) + '">' + esc(who.leader_phone) + '</a>']);
        }
      }
      return this.featureHtml(spec, p, rows);
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
            if (spec.statusColumn && spec.style && spec.style.statuses) return this.mixIcon(spec, cluster, size);
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
      const shown = state.markers.filter((m) => this.markerShown(state, m));
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
      state.main = this.pathSet(drawable, Object.assign({}, base, {
        renderer: this.renderer('circles'), style: () => base,
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
      state.main = this.pathSet(drawable, {
        renderer: this.renderer('areas'), style: (f) => page.coverageStyle(f.properties),
      });
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
    addBox(position, className, fold) {
      let box = null;
      const Box = L.Control.extend({
        onAdd: () => {
          box = L.DomUtil.create('div', 'gm-box ' + className);
          let outer = box;
          if (fold) {
            // A panel: a button folds it (on a phone it starts folded, the map first).
            outer = L.DomUtil.create('div', 'gm-panel');
            const button = L.DomUtil.create('button', 'gm-fold', outer);
            button.type = 'button';
            button.innerHTML = '<i class="fa-solid fa-' + esc(fold.icon) + '"></i> <span>' + esc(fold.label) + '</span>';
            outer.appendChild(box);
            const folded = this.map.getSize().x < 700;
            this.setFolded(outer, folded);
            button.addEventListener('click', () => this.setFolded(outer, !outer.classList.contains('gm-folded')));
          }
          // Nothing done in a panel reaches the map: no map query, no pan, no zoom.
          L.DomEvent.disableClickPropagation(outer);
          L.DomEvent.disableScrollPropagation(outer);
          L.DomEvent.on(outer, 'click', L.DomEvent.stopPropagation);
          return outer;
        },
      });
      const control = new Box({ position: position });
      control.addTo(this.map);
      return box;
    }

    setFolded(panel, folded) {
      L.DomUtil[folded ? 'addClass' : 'removeClass'](panel, 'gm-folded');
      const button = panel.querySelector('.gm-fold');
      if (button) button.setAttribute('aria-expanded', folded ? 'false' : 'true');
    }

    /** Whether a map event began on a control (a panel, the legend): never a map query. */
    fromControl(e) {
      const target = e && e.originalEvent && e.originalEvent.target;
      if (!target || !target.closest) return false;
      // A target the panel re-drew meanwhile is no longer in the page: it was a control.
      if (!document.documentElement.contains(target)) return true;
      return !!target.closest('.leaflet-control, .gm-skip');
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
      if (this.config.live && this.config.live.cases) {
        this.caseLayer = L.featureGroup().addTo(this.map);
        overlays['<span class="gm-overlay gm-overlay-cases">' + esc(this.t.cases_layer) + '</span>'] = this.caseLayer;
      }
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
          return '<li class="gm-toggle' + off + '" tabindex="0" role="button" aria-pressed="' + (off ? 'false' : 'true') + '" data-layer="' + esc(spec.id) + '" data-kind="' + esc(k) + '">' +
            '<i class="fa-solid fa-' + esc(look.icon) + '" data-style="color:' + esc(look.color) + '"></i> ' +
            esc((spec.kinds && spec.kinds[k]) || k) + ' <span class="gm-count">' + counts[k] + '</span></li>';
        }).join('') + '</ul>';
        if (spec.statusColumn) {
          const statuses = (spec.style && spec.style.statuses) || {};
          html += '<ul class="gm-kinds gm-statuses">' + Object.keys(statuses).map((s) => {
            const off = state.hiddenStatuses[s] ? ' gm-off' : '';
            const ring = statuses[s].ring ? 'background:#fff;box-shadow:0 0 0 3px ' + esc(statuses[s].ring) + ';' : '';
            const n = state.markers ? state.markers.filter((m) => m.feature.properties[spec.statusColumn] === s).length : '';
            return '<li class="gm-toggle' + off + '" tabindex="0" role="button" aria-pressed="' + (off ? 'false' : 'true') + '" data-layer="' + esc(spec.id) + '" data-status="' + esc(s) + '">' +
              '<span class="gm-dot" data-style="opacity:' + statuses[s].opacity + ';' + ring + '"></span> ' +
              esc(this.s.statuses[s] || s) + ' <span class="gm-count">' + n + '</span></li>';
          }).join('') + '</ul>';
          if (spec.id === 'teams' && state.markers) {
            const stale = state.markers.filter((m) => this.isStale(spec, m.feature.properties)).length;
            html += '<div class="gm-stale-note"><span class="gm-pin gm-stale gm-stale-swatch"><span class="gm-stale-badge"><i class="fa-solid fa-clock"></i></span></span> ' +
              esc(this.t.stale) + ' (&gt; ' + number(this.config.staleMinutes, 0) + ' ' + esc(this.t.min) + ') <span class="gm-count">' + stale + '</span></div>';
          }
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
        li.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); li.click(); }
        });
        li.addEventListener('click', () => {
          // The legend is drawn again: the keyboard keeps its place on the same entry.
          this.legendFocus = document.activeElement === li ? li.getAttribute('data-layer') + '|' +
            li.getAttribute('data-kind') + '|' + li.getAttribute('data-status') : null;
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
      if (this.legendFocus) {
        const again = Array.prototype.find.call(this.legend.querySelectorAll('.gm-toggle'), (li) =>
          li.getAttribute('data-layer') + '|' + li.getAttribute('data-kind') + '|' + li.getAttribute('data-status') === this.legendFocus);
        this.legendFocus = null;
        if (again) again.focus();
      }
    }

    // -- nearest teams
    addNearestPanel() {
      const t = this.t;
      const box = this.addBox('topleft', 'gm-nearest', { icon: 'location-crosshairs', label: t.panel_nearest });
      const by = (this.config.nearest && this.config.nearest.by) || 'drive';
      const teamKinds = this.s.kinds.teams || {};
      box.innerHTML = '<h3>' + esc(t.nearest) + '</h3>' +
        '<label class="gm-check"><input type="checkbox" class="gm-onclick"' + (this.nearestOnClick ? ' checked' : '') + '> ' + esc(t.nearest_click) + '</label>' +
        '<div class="gm-nearest-filters"><select class="gm-kind" title="' + esc(t.nearest_kind) + '" aria-label="' + esc(t.nearest_kind) + '">' +
        '<option value="">' + esc(t.all_kinds_option) + '</option>' + Object.keys(teamKinds).map((k) =>
          '<option value="' + esc(k) + '">' + esc(teamKinds[k]) + '</option>').join('') + '</select>' +
        '<select class="gm-capability" title="' + esc(t.nearest_capability) + '" aria-label="' + esc(t.nearest_capability) + '">' +
        '<option value="">' + esc(t.all_capabilities) + '</option></select></div>' +
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
          kind: this.nearestBox.querySelector('.gm-kind').value || null,
          capability: this.nearestBox.querySelector('.gm-capability').value || null,
        }));
      } catch (error) {
        this.nearestMessage(error.message, 'error');
        return null;
      }
      this.showNearest(answer, point, by);
      return answer;
    }

    /** The capability filter offers what the teams loaded can do. */
    fillCapabilities() {
      const select = this.nearestBox && this.nearestBox.querySelector('.gm-capability');
      const teams = this.states.teams;
      if (!select || !teams || !teams.features) return;
      const seen = {};
      teams.features.forEach((f) => {
        const caps = f.properties.capabilities;
        (Array.isArray(caps) ? caps : caps ? String(caps).split(',') : []).forEach((c) => { if (c) seen[String(c).trim()] = true; });
      });
      const chosen = select.value;
      select.innerHTML = '<option value="">' + esc(this.t.all_capabilities) + '</option>' + Object.keys(seen).sort().map((c) =>
        '<option value="' + esc(c) + '"' + (c === chosen ? ' selected' : '') + '>' + esc(c) + '</option>').join('');
    }

    showNearest(answer, point, by, target) {
      const t = this.t;
      const teams = answer.teams || [];
      const query = answer.query || {};
      this.nearestMessage(teams.length ? '(' + Number(query.lon).toFixed(5) + ', ' + Number(query.lat).toFixed(5) + ')' : t.nearest_none,
        teams.length ? null : 'notice');
      const bounds = L.latLngBounds([point]);
      const teamSpec = this.states.teams ? this.states.teams.spec : { id: 'teams', style: {}, kinds: this.s.kinds.teams };
      this.drawTeamRoutes(teams, point, bounds);
      if (teams.length) this.streetsUnderRoutes();
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
    }
  }

  // ---------------------------------------------------------------- the live battle map
  // Sign-in, the event stream (/api/events), the case layer and queue, dispatch from the
  // map. Only on served battle pages (config.live); an embed is read-only.
  const CASE_ICONS = { incident: 'triangle-exclamation', hazard: 'circle-exclamation', request: 'bell' };
  const SEVERITY_RANK = { low: 0, medium: 1, high: 2, critical: 3 };
  const OPEN_CASES = ['reported', 'accepted', 'dispatched', 'on_scene', 'resolved'];
  const USER_ACTIONS = ['accept', 'resolve', 'close', 'reopen', 'cancel'];
  const STREAM_KINDS = ['case.created', 'case.changed', 'case.escalated', 'dispatch.created',
    'dispatch.changed', 'team.changed', 'team.moved', 'reset'];

  Object.assign(GeomapPage.prototype, {
    /** Whether the signed-in caller has a permission (an older service: reading only). */
    can(permission) {
      const session = this.session;
      if (!session || !session.permissions) return permission === 'layers' || (permission === 'analysis' && !this.config.embed);
      return session.permissions.indexOf(permission) >= 0;
    },

    startLive() {
      const t = this.t;
      const live = this.config.live;
      this.cases = {};
      this.caseMarkers = {};
      this.caseBacklog = [];
      this.caseTimers = {};
      this.flashed = {};
      this.selectedCase = null;
      this.recommendation = null;
      this.liveState = { state: 'connecting', received: 0, lastId: null, kinds: {}, opened: 0, log: [] };
      if (!this.config.embed) {
        this.addSkipLinks();
        this.sessionBox = this.addBox('topright', 'gm-session', { icon: 'user', label: t.panel_account });
      } else {
        this.sessionBox = this.addBox('bottomleft', 'gm-session gm-session-embed');
      }
      if (live.cases) {
        // The layer control lists the case layer from its start (addLayerControl): added
        // to a control on the map, an entry forces a layout of the whole page.
        if (!this.caseLayer) this.caseLayer = L.featureGroup().addTo(this.map);
        if (!this.config.embed) {
          this.queueBox = this.addBox('topleft', 'gm-queue', { icon: 'list-check', label: t.panel_queue });
          this.queueBox.innerHTML = '<div class="gm-case-detail"></div><div class="gm-queue-list"></div>';
        }
        // Ages move on: the queue says them again every half minute.
        window.setInterval(() => this.renderQueue(), 30000);
      }
      if (!this.routes) this.routes = L.layerGroup().addTo(this.map);
      this.renderSession();
    },

    /** Who is signed in (GET /api/session); without the layers permission, wait for sign-in. */
    async checkSession() {
      if (this.config.embed) {
        this.session = { role: 'embed', permissions: ['layers'], signed_in: false };
        return;
      }
      try {
        this.session = this.config.live.session ? await this.fetchJson(this.url(this.config.live.session)) : null;
      } catch (error) {
        this.session = null;  // sessions unknown to this service: reading as before
      }
      this.renderSession();
      if (this.session && !this.can('layers')) {
        this.setFolded(this.sessionBox.parentNode, false);
        await new Promise((resolve) => { this.whenSignedIn = resolve; });
      }
    },

    /** A write (or sign-in) from the page: same-origin cookie, CSRF header, JSON both ways. */
    async send(method, path, body) {
      const headers = { Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (this.session && this.session.csrf_token) headers['X-CSRF-Token'] = this.session.csrf_token;
      let response;
      try {
        response = await fetch(this.url(path), {
          method: method, credentials: 'same-origin', headers: headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (error) {
        throw new Error(fmt(this.t.nearest_unreachable, { message: error.message }));
      }
      let answer = null;
      try { answer = await response.json(); } catch (error) { answer = null; }
      if (!response.ok) {
        const failure = new Error(answer && answer.error ? answer.error.message : response.status + ' ' + response.statusText);
        failure.status = response.status;
        throw failure;
      }
      return answer;
    },

    async signIn(key) {
      const message = this.sessionBox.querySelector('.gm-signin-msg');
      try {
        this.session = await this.send('POST', this.config.live.session, { key: key });
      } catch (error) {
        if (message) {
          message.className = 'gm-signin-msg gm-msg-error';
          message.textContent = fmt(this.t.sign_in_failed, { message: error.message });
        }
        return false;
      }
      this.renderSession();
      if (this.whenSignedIn) {
        const go = this.whenSignedIn;
        this.whenSignedIn = null;
        go();  // the layers load now (startLayers), the stream opens with them
      } else {
        // Another role than before: personal fields, buttons; the stream speaks for it.
        this.openStream();
        this.reloadLive();
      }
      return true;
    },

    async signOut() {
      try {
        await this.send('DELETE', this.config.live.session);
      } catch (error) {
        this.say('session', error.message, 'error');
        return;
      }
      window.location.reload();
    },

    renderSession() {
      const box = this.sessionBox;
      if (!box) return;
      const t = this.t;
      const session = this.session;
      const indicator = '<span class="gm-live gm-live-' + esc(this.liveState.state) + '" role="status">' +
        '<span class="gm-live-dot"></span> ' + esc(this.liveText()) + '</span>';
      if (this.config.embed) {
        box.innerHTML = indicator;
        return;
      }
      let html = '';
      const signedIn = session && session.signed_in;
      if (signedIn) {
        const role = t['role_' + session.role] || session.role;
        html += '<div class="gm-who"><i class="fa-solid fa-user-shield"></i> ' +
          esc(fmt(t.signed_in_as, { name: session.name || '', role: role })) + '</div>' +
          '<button type="button" class="gm-signout">' + esc(t.sign_out) + '</button>';
      } else if (session) {
        const needed = !this.can('layers');
        const role = t['role_' + session.role] || session.role || t.not_signed_in;
        html += (needed ? '<p class="gm-signin-needed">' + esc(t.sign_in_needed) + '</p>'
          : '<div class="gm-who">' + esc(role) + '</div>') +
          // POST, never GET: were the script to fail, the key would still not land in a URL.
          '<form class="gm-signin" method="post" autocomplete="on">' +
          '<label>' + esc(t.sign_in_key) + ' <input type="password" class="gm-key" name="key" autocomplete="current-password" required></label>' +
          '<button type="submit">' + esc(t.sign_in) + '</button></form><div class="gm-signin-msg"></div>';
      }
      box.innerHTML = html + (this.stream || signedIn || (session && this.can('layers')) ? indicator : '');
      const form = box.querySelector('.gm-signin');
      if (form) {
        form.addEventListener('submit', (e) => {
          e.preventDefault();
          const input = form.querySelector('.gm-key');
          const key = input.value;
          input.value = '';
          this.signIn(key);
        });
      }
      const out = box.querySelector('.gm-signout');
      if (out) out.addEventListener('click', () => this.signOut());
    },

    liveText() {
      const state = this.liveState.state;
      return state === 'live' ? this.t.live_on : state === 'reconnecting' ? this.t.live_reconnecting : this.t.live_connecting;
    },

    setLive(state) {
      if (this.liveState.state === state) return;
      this.liveState.state = state;
      const el = this.sessionBox && this.sessionBox.querySelector('.gm-live');
      if (el) {
        el.className = 'gm-live gm-live-' + state;
        el.innerHTML = '<span class="gm-live-dot"></span> ' + esc(this.liveText());
      } else {
        this.renderSession();
      }
    },

    /** The live data besides the catalog layers: the cases, then the event stream. */
    async liveData() {
      this.openStream();
      await this.loadCases();
    },

    /** Each team's route to ``point`` (a dashed straight line when it has none), a ring
     * at the team, and ``bounds`` grown to hold them all. */
    drawTeamRoutes(teams, point, bounds) {
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
    },

    openStream() {
      if (!window.EventSource || !this.config.live.events) return;
      if (this.stream) this.stream.close();
      clearTimeout(this.reopenTimer);
      // A stream opened again by the page (not by the browser, which sends Last-Event-ID
      // itself) says where the last one stopped; the service replays what came since.
      const resume = this.catchUp && this.liveState.lastId ? { after: this.liveState.lastId } : {};
      const stream = new EventSource(this.url(this.config.live.events, resume));
      this.stream = stream;
      this.liveState.opened += 1;
      stream.onopen = () => {
        this.setLive('live');
        this.reopenDelay = 0;
        // Back after a lost connection: the browser resumed after the last event it saw
        // (Last-Event-ID) and the service replays the rest; having seen none, it could
        // not say where it stopped, so everything is loaded again.
        if (this.streamBroken && !this.liveState.lastId) this.catchUp = true;  // (rare: see 'ready')
        this.streamBroken = false;
        if (this.catchUp) {
          // A new stream that could not say where the old one stopped: everything again.
          this.catchUp = false;
          if (!resume.after) this.reloadLive();
        }
      };
      stream.onerror = () => {
        this.setLive('reconnecting');
        this.streamBroken = true;
        if (stream.readyState !== EventSource.CLOSED || this.stream !== stream) return;
        // The browser gave up (an error answer, not a lost connection; a lost one it
        // resumes itself, with Last-Event-ID): a new stream, later and later.
        this.catchUp = true;
        this.reopenDelay = Math.min(60000, (this.reopenDelay || 1000) * 2);
        this.reopenTimer = setTimeout(() => this.openStream(), this.reopenDelay);
      };
      STREAM_KINDS.forEach((kind) => stream.addEventListener(kind, (e) => this.onEvent(kind, e)));
      // The service tells a new stream the latest event id: where to resume from, even for
      // a page that has seen no event yet.
      stream.addEventListener('ready', (e) => { this.liveState.lastId = e.lastEventId || this.liveState.lastId; });
      this.renderSession();
    },

    onEvent(kind, message) {
      let event;
      try { event = JSON.parse(message.data || '{}'); } catch (error) { return; }
      const state = this.liveState;
      state.received += 1;
      state.lastId = message.lastEventId || event.id || state.lastId;
      state.kinds[kind] = (state.kinds[kind] || 0) + 1;
      state.log.push({ kind: kind, id: event.id, case_id: event.case_id, team_id: event.team_id, t: Date.now() });
      if (state.log.length > 100) state.log.shift();
      this.setLive('live');
      if (kind === 'reset') {
        this.reloadLive();
        return;
      }
      const data = event.data || {};
      if (kind === 'team.changed' || kind === 'team.moved') {
        this.teamEvent(kind, event.team_id || data.id, data);
      }
      const caseId = event.case_id || (kind.indexOf('case.') === 0 ? data.id : null);
      if (caseId && this.config.live.cases) {
        if (kind === 'case.escalated' || kind === 'case.created') this.flashed[caseId] = Date.now();
        this.caseEvent(caseId);
      }
    },

    // -- teams, live
    teamEvent(kind, id, data) {
      const changes = { status: data.status, position_at: data.position_at };
      if (kind === 'team.moved' || (data.lon !== undefined && data.lat !== undefined)) {
        changes.lon = data.lon;
        changes.lat = data.lat;
      }
      const teams = this.states.teams;
      if (!teams || !teams.markerById) {
        (this.pendingTeamEvents = this.pendingTeamEvents || []).push([id, changes]);
        return;
      }
      this.updateTeam(id, changes);
    },

    flushTeamEvents() {
      const pending = this.pendingTeamEvents || [];
      this.pendingTeamEvents = null;
      pending.forEach((item) => this.updateTeam(item[0], item[1]));
    },

    markerShown(state, marker) {
      const spec = state.spec;
      const p = marker.feature.properties;
      if (spec.kindColumn && state.hiddenKinds[p[spec.kindColumn]]) return false;
      if (spec.statusColumn && state.hiddenStatuses[p[spec.statusColumn]]) return false;
      return true;
    },

    /** A team's new status or position, drawn at once (its cluster's mix too). */
    updateTeam(id, changes) {
      const state = this.states.teams;
      const marker = state && state.markerById && state.markerById[id];
      if (!marker) return false;
      const spec = state.spec;
      const p = marker.feature.properties;
      if (changes.status) p.status = changes.status;
      if (changes.position_at) p.position_at = changes.position_at;
      const moved = changes.lon !== undefined && changes.lon !== null && changes.lat !== null && isFinite(changes.lon) && isFinite(changes.lat);
      const group = state.group;
      const had = group.hasLayer(marker);
      if (had) group.removeLayer(marker);
      if (moved) {
        marker.feature.geometry = { type: 'Point', coordinates: [Number(changes.lon), Number(changes.lat)] };
        marker.setLatLng(this.latLng(Number(changes.lon), Number(changes.lat)));
      }
      const statuses = (spec.style && spec.style.statuses) || {};
      marker.setIcon(this.icon(spec, p[spec.kindColumn], p.status, null, this.isStale(spec, p)));
      marker.setOpacity(statuses[p.status] && statuses[p.status].opacity !== undefined ? statuses[p.status].opacity : 1);
      const shown = this.markerShown(state, marker);
      if (shown && (had || !state.pendingFill)) group.addLayer(marker);
      state.count += (shown ? 1 : 0) - (had ? 1 : 0);
      if (marker.isPopupOpen && marker.isPopupOpen()) marker.setPopupContent(this.markerHtml(marker));
      this.countTeams();
      this.renderLegend();
      return true;
    },

    /** A cluster of teams shows its mix: a ring cut by status, the count inside. */
    mixIcon(spec, cluster, size) {
      const statuses = spec.style.statuses;
      const counts = {};
      let stale = 0;
      const children = cluster.getAllChildMarkers();
      children.forEach((m) => {
        const s = m.feature.properties[spec.statusColumn];
        counts[s] = (counts[s] || 0) + 1;
        if (this.isStale(spec, m.feature.properties)) stale += 1;
      });
      const n = children.length;
      let at = 0;
      const stops = [];
      const parts = [];
      Object.keys(statuses).concat(Object.keys(counts).filter((s) => !(s in statuses))).forEach((s) => {
        if (!counts[s]) return;
        const colour = (statuses[s] && statuses[s].ring) || '#94a3b8';
        const next = at + 100 * counts[s] / n;
        stops.push(colour + ' ' + at.toFixed(2) + '% ' + next.toFixed(2) + '%');
        parts.push((this.s.statuses[s] || s) + ' ' + counts[s]);
        at = next;
      });
      const title = parts.join(' · ') + (stale ? ' · ' + this.t.stale + ' ' + stale : '');
      return styledIcon({
        html: '<div class="gm-mix" title="' + esc(title) + '" data-style="background:conic-gradient(' + stops.join(',') + ')">' +
          '<span class="gm-mix-n' + (stale === n ? ' gm-mix-stale' : '') + '">' + n + '</span></div>',
        className: 'marker-cluster gm-cluster gm-cluster-mix gm-cluster-' + size,
        iconSize: L.point(38, 38),
      });
    },

    /** Commanders: the leader's name and phone (personal fields) in a team's popup. */
    async teamPersonal(marker) {
      if (!this.config.live || !this.can('personal') || marker.personal || marker.personalBusy) return;
      marker.personalBusy = true;
      const c = marker.feature.geometry.coordinates;
      const d = 0.00002;
      try {
        const answer = await this.fetchJson(this.url(this.config.live.teamsGeojson, {
          bbox: [c[0] - d, c[1] - d, c[0] + d, c[1] + d].map((v) => v.toFixed(6)).join(','), limit: 50,
        }));
        const own = (answer.features || []).find((f) => String(f.id) === String(marker.feature.id) ||
          String(f.properties.id) === String(marker.feature.id));
        marker.personal = own ? own.properties : {};
      } catch (error) {
        marker.personal = null;
      } finally {
        marker.personalBusy = false;
      }
      if (marker.personal && marker.isPopupOpen()) marker.setPopupContent(this.markerHtml(marker));
    },

    // -- cases
    /** The open cases the queue lists (the service's URL, which the page also preloads). */
    casesUrl() {
      return this.url(this.config.live.openCases);
    },

    async loadCases() {
      const path = this.config.live.cases;
      if (!path) return;
      this.say('cases', this.t.loading + ' ' + this.t.cases_layer, 'progress');
      const prefetched = this.casesPrefetch;
      this.casesPrefetch = null;
      let answer;
      try {
        answer = await (prefetched || this.fetchJson(this.casesUrl()));
      } catch (error) {
        this.say('cases', fmt(this.t.load_failed, { layer: this.t.cases_layer, message: error.message }), 'error');
        return;
      }
      // At start, drawn in the same pass as the first view's layers: one frame to paint.
      if (prefetched && this.firstView) await this.firstView;
      this.say('cases', null);
      this.cases = {};
      (answer.cases || []).forEach((c) => { this.cases[c.id] = c; });
      this.casesLoaded = true;
      this.drawCases();
      this.renderQueue();
      if (this.selectedCase) this.renderDetail();
      const backlog = this.caseBacklog;
      this.caseBacklog = [];
      backlog.forEach((id) => this.caseEvent(id));
    },

    /** Something happened to a case: ask for it again (coalescing a burst of events). */
    caseEvent(id) {
      if (!this.casesLoaded) {
        this.caseBacklog.push(id);
        return;
      }
      clearTimeout(this.caseTimers[id]);
      this.caseTimers[id] = setTimeout(() => {
        delete this.caseTimers[id];
        this.refreshCase(id);
      }, 40);
    },

    async refreshCase(id) {
      let c;
      try {
        c = await this.fetchJson(this.url(this.config.live.cases + '/' + encodeURIComponent(id)));
      } catch (error) {
        if (error.status === 404) this.removeCase(id);
        return;
      }
      this.upsertCase(c);
    },

    upsertCase(c) {
      if (OPEN_CASES.indexOf(c.status) < 0) {
        this.removeCase(c.id);
        return;
      }
      this.cases[c.id] = c;
      this.drawCase(c);
      this.renderQueue();
      if (this.selectedCase === c.id) this.renderDetail();
    },

    removeCase(id) {
      delete this.cases[id];
      const marker = this.caseMarkers[id];
      if (marker) this.caseLayer.removeLayer(marker);
      delete this.caseMarkers[id];
      if (this.selectedCase === id) {
        this.selectedCase = null;
        this.recommendation = null;
        if (this.routes) this.routes.clearLayers();
      }
      this.renderQueue();
      this.renderDetail();
    },

    caseIcon(c) {
      const size = 22 + 3 * (SEVERITY_RANK[c.severity] || 0);
      return L.divIcon({
        className: 'gm-marker gm-case-marker',
        html: '<div class="gm-case gm-case-' + esc(c.kind) + ' gm-sev-' + esc(c.severity) + ' gm-cs-' + esc(c.status) +
          (c.overdue ? ' gm-overdue' : '') + (this.selectedCase === c.id ? ' gm-case-selected' : '') + '">' +
          '<i class="fa-solid fa-' + esc(CASE_ICONS[c.kind] || 'circle-exclamation') + '"></i></div>',
        iconSize: [size, size],
        iconAnchor: [size / 2, size / 2],
        popupAnchor: [0, -size / 2],
      });
    },

    drawCases() {
      if (!this.caseLayer) return;
      this.caseLayer.clearLayers();
      this.caseMarkers = {};
      Object.keys(this.cases).forEach((id) => this.drawCase(this.cases[id]));
    },

    drawCase(c) {
      if (!this.caseLayer) return;
      const old = this.caseMarkers[c.id];
      if (old) this.caseLayer.removeLayer(old);
      const marker = L.marker(this.latLng(c.lon, c.lat), {
        icon: this.caseIcon(c),
        keyboard: false,
        title: c.title || '',
        zIndexOffset: 1000 + 100 * (SEVERITY_RANK[c.severity] || 0) + (c.overdue ? 500 : 0),
      });
      marker.caseId = c.id;
      marker.on('click', () => this.selectCase(c.id));
      marker.bindTooltip(() => this.caseTooltip(this.cases[c.id] || c), { direction: 'top' });
      this.caseMarkers[c.id] = marker;
      this.caseLayer.addLayer(marker);
    },

    caseTooltip(c) {
      return '<b>' + esc(c.title || '') + '</b><br>' + esc(this.caseLine(c));
    },

    caseLine(c) {
      const s = this.s;
      return [s.case_kinds[c.kind] || c.kind, s.severities[c.severity] || c.severity,
        s.case_statuses[c.status] || c.status, (s.case_levels[c.level] || c.level),
        this.ageText((Date.now() - Date.parse(c.reported_at)) / 60000)].join(' · ');
    },

    ageText(minutes, bare) {
      const t = this.t;
      if (!isFinite(minutes)) return '';
      const m = Math.max(0, minutes);
      let text;
      if (m < 90) text = fmt(t.age_min, { value: number(m, 0) });
      else if (m < 48 * 60) text = fmt(t.age_h, { value: number(m / 60, 1) });
      else text = fmt(t.age_d, { value: number(m / 1440, 1) });
      return bare ? text.replace(/\s*(前|ago)$/, '') : text;
    },

    /** The queue: overdue first, then severity, then the oldest. */
    queue() {
      return Object.keys(this.cases).map((id) => this.cases[id]).sort((a, b) =>
        (b.overdue ? 1 : 0) - (a.overdue ? 1 : 0) ||
        (SEVERITY_RANK[b.severity] || 0) - (SEVERITY_RANK[a.severity] || 0) ||
        Date.parse(a.reported_at) - Date.parse(b.reported_at) || a.id - b.id);
    },

    renderQueue() {
      if (!this.queueBox) return;
      const list = this.queueBox.querySelector('.gm-queue-list');
      const t = this.t;
      const cases = this.queue();
      const now = Date.now();
      const items = cases.map((c) => {
        const flash = this.flashed[c.id] && now - this.flashed[c.id] < 10000 ? ' gm-flash' : '';
        return '<li class="gm-case-item gm-sev-' + esc(c.severity) + (c.overdue ? ' gm-item-overdue' : '') +
          (this.selectedCase === c.id ? ' gm-selected' : '') + flash + '" data-case="' + esc(c.id) + '">' +
          '<button type="button" class="gm-case-open" data-case="' + esc(c.id) + '">' +
          '<i class="fa-solid fa-' + esc(CASE_ICONS[c.kind] || 'circle-exclamation') + ' gm-case-glyph gm-sevc-' + esc(c.severity) + '"></i> ' +
          '<b>' + esc(c.title || ('#' + c.id)) + '</b>' + (c.overdue ? ' <span class="gm-overdue-tag">' + esc(t.overdue) + '</span>' : '') +
          '<br><small>' + esc(this.caseLine(c)) + '</small></button></li>';
      }).join('');
      list.innerHTML = '<h3>' + esc(t.queue) + ' <span class="gm-count gm-queue-count">' + cases.length + '</span></h3>' +
        (cases.length ? '<ol class="gm-queue-items">' + items + '</ol>' : '<p class="gm-queue-empty">' + esc(t.queue_empty) + '</p>');
      Array.prototype.forEach.call(list.querySelectorAll('.gm-case-open'), (button) => {
        button.addEventListener('click', () => this.selectCase(Number(button.getAttribute('data-case'))));
      });
    },

    /** A case chosen (queue or map): zoom to it, say all about it, its best teams by road. */
    selectCase(id) {
      const c = this.cases[id];
      if (!c) return;
      const previous = this.selectedCase;
      this.selectedCase = id;
      if (previous && this.cases[previous]) this.drawCase(this.cases[previous]);
      this.drawCase(c);
      if (this.queueBox) this.setFolded(this.queueBox.parentNode, false);
      this.map.setView(this.latLng(c.lon, c.lat), Math.max(this.map.getZoom(), 15));
      this.recommendation = null;
      if (this.routes) this.routes.clearLayers();
      this.renderQueue();
      this.renderDetail();
      if (this.can('analysis') && (c.actions || []).indexOf('dispatch') >= 0) this.loadRecommend(id);
    },

    async loadRecommend(id) {
      this.recommendation = { caseId: id, busy: true, teams: [] };
      this.renderDetail();
      let answer;
      try {
        answer = await this.fetchJson(this.url(this.config.live.cases + '/' + encodeURIComponent(id) + '/recommend', { k: 5 }));
      } catch (error) {
        if (this.selectedCase !== id) return;
        this.recommendation = { caseId: id, error: error.message, teams: [] };
        this.renderDetail();
        return;
      }
      if (this.selectedCase !== id) return;
      this.recommendation = { caseId: id, teams: answer.teams || [], fits: answer.fits };
      this.drawRoutes(this.recommendation.teams, this.cases[id]);
      this.renderDetail();
    },

    /** Routes from teams to a point, with the streets under them (no basemap). */
    drawRoutes(teams, c) {
      this.routes.clearLayers();
      if (!c) return;
      const point = this.latLng(c.lon, c.lat);
      const bounds = L.latLngBounds([point]);
      this.drawTeamRoutes(teams, point, bounds);
      this.streetsUnderRoutes();
      if (teams.length) this.map.fitBounds(bounds.pad(0.15), { maxZoom: 16 });
    },

    renderDetail() {
      if (!this.queueBox) return;
      const box = this.queueBox.querySelector('.gm-case-detail');
      const c = this.selectedCase ? this.cases[this.selectedCase] : null;
      if (!c) {
        box.innerHTML = '';
        return;
      }
      const t = this.t;
      const s = this.s;
      const commander = this.can('write');
      const rows = [
        [s.fields.status, esc(s.case_statuses[c.status] || c.status) + (c.overdue ? ' <b class="gm-bad">' + esc(t.overdue) + '</b>' : '')],
        [t.case_level, esc(s.case_levels[c.level] || c.level) + (c.level_unit ? ' · ' + esc(c.level_unit.name || c.level_unit.code) : '')],
        [s.fields.kind, esc(s.case_kinds[c.kind] || c.kind) + ' · ' + esc(s.severities[c.severity] || c.severity)],
        [s.fields.reported_at || 'reported', esc(this.ageText((Date.now() - Date.parse(c.reported_at)) / 60000))],
      ];
      if (c.address) rows.push([s.fields.address, esc(c.address)]);
      if (c.reporter && (c.reporter.name || c.reporter.phone)) {
        rows.push([t.leader, esc(c.reporter.name || '') + (c.reporter.phone ? ' <a href="tel:' +
          esc(String(c.reporter.phone).replace(/[^0-9+]/g, '')) + '">' + esc(c.reporter.phone) + '</a>' : '')]);
      }
      const active = (c.dispatches || []).filter((d) => d.status !== 'released');
      if (active.length) {
        rows.push([t.case_teams, active.map((d) => esc(d.team_name || d.team_code || d.team_id) + ' (' +
          esc(s.dispatch_statuses[d.status] || d.status) + (d.eta_min !== null && d.eta_min !== undefined ? ', ' + esc(t.eta) + ' ' + number(d.eta_min, 0) + ' ' + esc(t.min) : '') + ')').join('<br>')]);
      }
      let html = '<div class="gm-detail-head"><h3>' + esc(c.title || '#' + c.id) + ' <small>#' + esc(c.id) + '</small></h3>' +
        '<button type="button" class="gm-detail-close" aria-label="×">×</button></div>' + this.table(rows);
      const actions = (c.actions || []).filter((a) => USER_ACTIONS.indexOf(a) >= 0);
      if (commander) {
        html += actions.length ? '<div class="gm-actions">' + actions.map((a) =>
          '<button type="button" class="gm-act gm-act-' + esc(a) + '" data-action="' + esc(a) + '">' + esc(t['act_' + a] || a) + '</button>').join('') + '</div>' : '';
      } else {
        html += '<p class="gm-readonly">' + esc(t.read_only) + '</p>';
      }
      const rec = this.recommendation && this.recommendation.caseId === c.id ? this.recommendation : null;
      if (rec) {
        html += '<h4>' + esc(t.recommended) + '</h4>';
        if (rec.busy) html += '<p class="gm-msg-progress">' + esc(t.recommend_busy) + '</p>';
        else if (rec.error) html += '<p class="gm-msg-error">' + esc(rec.error) + '</p>';
        else if (!rec.teams.length) html += '<p class="gm-msg-notice">' + esc(t.recommend_none) + '</p>';
        else {
          const canDispatch = commander && (c.actions || []).indexOf('dispatch') >= 0;
          const teamSpec = this.states.teams ? this.states.teams.spec : { id: 'teams', style: {}, kinds: s.kinds.teams };
          html += '<table class="gm-nearest-table gm-recommend"><tbody>' + rec.teams.map((team, i) => {
            const look = this.kindStyle(teamSpec, team.kind);
            const eta = team.eta_min === null || team.eta_min === undefined ? '–' : number(team.eta_min, 1) + ' ' + esc(t.min);
            return '<tr data-team="' + esc(team.id) + '"><td><span class="gm-rank" data-style="background:' + ROUTE_COLORS[i % ROUTE_COLORS.length] + '">' + (i + 1) + '</span></td>' +
              '<td><i class="fa-solid fa-' + esc(look.icon) + '" data-style="color:' + esc(look.color) + '"></i> ' + esc(team.name) +
              '<br><small>' + esc((teamSpec.kinds && teamSpec.kinds[team.kind]) || team.kind) + '</small></td>' +
              '<td class="gm-num gm-time">' + eta + '</td>' +
              (canDispatch ? '<td><button type="button" class="gm-dispatch" data-team="' + esc(team.id) + '">' + esc(t.dispatch) + '</button></td>' : '') + '</tr>';
          }).join('') + '</tbody></table>';
        }
      }
      html += '<div class="gm-detail-msg" role="status"></div>';
      box.innerHTML = html;
      applyStyles(box);
      box.querySelector('.gm-detail-close').addEventListener('click', () => {
        const id = this.selectedCase;
        this.selectedCase = null;
        this.recommendation = null;
        this.routes.clearLayers();
        if (this.cases[id]) this.drawCase(this.cases[id]);
        this.renderDetail();
        this.renderQueue();
      });
      Array.prototype.forEach.call(box.querySelectorAll('.gm-act'), (button) => {
        button.addEventListener('click', () => this.caseStep(c.id, button.getAttribute('data-action'), button));
      });
      Array.prototype.forEach.call(box.querySelectorAll('.gm-dispatch'), (button) => {
        button.addEventListener('click', () => this.dispatchTeam(c.id, Number(button.getAttribute('data-team')), button));
      });
    },

    detailMessage(text, kind) {
      const el = this.queueBox && this.queueBox.querySelector('.gm-detail-msg');
      if (!el) return;
      el.className = 'gm-detail-msg' + (kind ? ' gm-msg-' + kind : '');
      el.textContent = text || '';
    },

    /** One click: send this team to this case (POST /api/cases/<id>/dispatch). */
    async dispatchTeam(caseId, teamId, button) {
      if (button) button.disabled = true;
      this.detailMessage(this.t.dispatch_busy, 'progress');
      let answer;
      try {
        answer = await this.send('POST', this.config.live.cases + '/' + encodeURIComponent(caseId) + '/dispatch', { team_ids: [teamId] });
      } catch (error) {
        if (button) button.disabled = false;
        this.detailMessage(error.message, 'error');
        this.refreshCase(caseId);
        return null;
      }
      this.updateTeam(teamId, { status: 'deployed' });
      const rec = this.recommendation;
      const team = rec && rec.teams.find((x) => x.id === teamId);
      if (answer && answer.case) this.upsertCase(answer.case);
      this.detailMessage(fmt(this.t.dispatch_done, { team: team ? team.name : '#' + teamId }), 'notice');
      if (this.selectedCase === caseId && this.cases[caseId] && (this.cases[caseId].actions || []).indexOf('dispatch') >= 0) {
        this.loadRecommend(caseId);
      }
      return answer;
    },

    async caseStep(caseId, action, button) {
      if (button) button.disabled = true;
      try {
        const answer = await this.send('POST', this.config.live.cases + '/' + encodeURIComponent(caseId) + '/steps', { action: action });
        this.upsertCase(answer);
      } catch (error) {
        if (button) button.disabled = false;
        this.detailMessage(error.message, 'error');
        this.refreshCase(caseId);
      }
    },

    /** Everything again (a reset from the stream, a new stream, another role). */
    async reloadLive() {
      const teams = this.states.teams;
      if (teams && teams.loaded && teams.spec.source && !teams.spec.source.tiles && !teams.spec.source.inline) {
        try {
          await this.loadCatalog(teams, this.sourceUrl(teams.spec));
          this.loaded(teams);
        } catch (error) {
          this.say('load:teams', fmt(this.t.load_failed, { layer: teams.spec.title, message: error.message }), 'error');
        }
      }
      await this.loadCases();
      this.renderLegend();
    },

    /** With no basemap, a route needs streets under it: they are switched on. */
    streetsUnderRoutes() {
      const streets = this.states.streets;
      if (!streets || (this.config.basemap && this.config.basemap.id !== 'none')) return;
      if (!this.map.hasLayer(streets.gate)) streets.gate.addTo(this.map);
    },

    addSkipLinks() {
      const nav = document.createElement('nav');
      nav.className = 'gm-skip';
      nav.innerHTML = '<a href="#" class="gm-skip-map">' + esc(this.t.skip_map) + '</a>' +
        '<a href="#" class="gm-skip-panels">' + esc(this.t.skip_panels) + '</a>';
      document.body.insertBefore(nav, document.body.firstChild);
      const container = this.map.getContainer();
      if (!container.hasAttribute('tabindex')) container.setAttribute('tabindex', '0');
      container.setAttribute('aria-label', this.config.title || '');
      nav.querySelector('.gm-skip-map').addEventListener('click', (e) => {
        e.preventDefault();
        container.focus();
      });
      nav.querySelector('.gm-skip-panels').addEventListener('click', (e) => {
        e.preventDefault();
        this.focusPanels();
      });
    },

    /** Focus the first panel: the queue (opened), else the sign-in, else the nearest panel. */
    focusPanels() {
      const signin = this.sessionBox && this.sessionBox.querySelector('.gm-key');
      if (signin) {
        this.setFolded(this.sessionBox.parentNode, false);
        signin.focus();
        return;
      }
      const box = this.queueBox || this.nearestBox;
      if (!box) return;
      this.setFolded(box.parentNode, false);
      const target = box.querySelector('button, input, select, a[href]') || box.parentNode.querySelector('.gm-fold');
      if (target) target.focus();
    },
  });

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

  window.GeomapMap = {
    start: start,
    decodeCompact: decodeCompact,
    gcj02: { fromWgs84: wgs84ToGcj02, toWgs84: gcj02ToWgs84 },
  };
})();
