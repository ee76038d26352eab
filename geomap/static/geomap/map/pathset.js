/*
 * map/pathset.js: the two Leaflet layers the page draws with (GeomapMap.ZoomGate,
 * GeomapMap.PathSet).
 *
 * ZoomGate is a layer-control entry whose parts show only from their minimum zoom;
 * PathSet draws thousands of polygons or lines as one canvas layer and finds the feature
 * under the pointer. Plain Leaflet plugins: they know nothing of the page class.
 */
(function () {
  'use strict';
  const G = window.GeomapMap;

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

  G.ZoomGate = ZoomGate;
  G.PathSet = PathSet;
})();
