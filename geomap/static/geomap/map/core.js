/*
 * map/core.js: what every part of the map page shares, and nothing of the page itself.
 *
 * Coordinates (WGS84 <-> GCJ-02, as geomap/crs.py), small helpers (escaping, numbers,
 * templates, CSP-safe inline styles, URLs, polygon anchors, performance marks, class
 * breaks) and the decoding of the compact layer form (geomap/maps/compact.py). It makes
 * the one namespace, window.GeomapMap, which the other files add to: GeomapMap.util,
 * GeomapMap.gcj02, GeomapMap.decodeCompact. geomap/maps/page.py lists the files in order.
 */
(function () {
  'use strict';
  const G = (window.GeomapMap = window.GeomapMap || {});

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

  G.util = {
    esc: esc, fmt: fmt, number: number, percent: percent, applyStyles: applyStyles,
    styledIcon: styledIcon, sleep: sleep, withQuery: withQuery, ringCentroid: ringCentroid,
    ringArea: ringArea, polygonAnchor: polygonAnchor, mark: mark,
    quantileBreaks: quantileBreaks, classOf: classOf,
  };
  G.gcj02 = { fromWgs84: wgs84ToGcj02, toWgs84: gcj02ToWgs84 };
  G.decodeCompact = decodeCompact;
})();
