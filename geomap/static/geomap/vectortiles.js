/*
 * vectortiles.js: catalog layers drawn from vector tiles, for layers too big for one
 * document (more features than GEOMAP_MAP_TILES_ABOVE: a city's 44,000 grids or 56,000
 * teams). The service makes each tile with PostGIS (ST_AsMVT, /tiles/<layer>/{z}/{x}/{y}.pbf);
 * Leaflet.VectorGrid (vendored, no CDN) draws it on a canvas per tile. Only the tiles in
 * view are asked for, each holding only the features that touch it.
 *
 * The map page (map/layers.js) calls GeomapTiles.build(page, state) for a layer whose
 * source is {tiles: ...}; it returns the Leaflet layer. Styles, tooltips and popups come from the
 * page (the catalog's styles; the grids' colouring), as for the layers of one document.
 */
(function () {
  'use strict';

  // Leaflet.VectorGrid 1.3 and Leaflet 1.9 disagree on two points, both fixed here, on the
  // tile renderer only: its click handler calls L.DomEvent.fakeStop, which Leaflet 1.9 no
  // longer has (every click threw); and Leaflet 1.9 places an event on a point at the
  // point's latlng, which a tile's points do not have (every hover threw). Events are
  // placed where the pointer is; the feature under it gets them first, then the map (a
  // click on an empty spot, or on an area, still asks for the nearest teams).
  const HOVER = { mouseover: true, mouseout: true, mousemove: true };

  function patchEvents() {
    if (!L.Canvas.Tile || L.Canvas.Tile.prototype.geomapEvents) return;
    L.Canvas.Tile.include({
      geomapEvents: true,
      _onClick: function (e) {
        const point = this._map.mouseEventToLayerPoint(e).subtract(this.getOffset());
        let clicked = null;
        for (const id in this._layers) {
          const layer = this._layers[id];
          if (layer.options.interactive && layer._containsPoint(point) && !this._map._draggableMoved(layer)) {
            clicked = layer;
          }
        }
        this._fireEvent(clicked ? [clicked] : [], e);
      },
      _fireEvent: function (layers, e, type) {
        const map = this._map;
        const kind = type || e.type;
        if (!map || (kind === 'click' && map._draggableMoved(map))) return;
        const containerPoint = map.mouseEventToContainerPoint(e);
        const layerPoint = map.containerPointToLayerPoint(containerPoint);
        const data = { originalEvent: e, containerPoint: containerPoint, layerPoint: layerPoint,
          latlng: map.layerPointToLatLng(layerPoint) };
        if (kind === 'click') map.fire('preclick', L.extend({}, data));  // popups close first
        (layers || []).forEach((layer) => {
          if (!e._stopped) layer.fire(kind, L.extend({}, data), true);
        });
        if (!HOVER[kind] && !e._stopped) map.fire(kind, L.extend({}, data));
      },
    });
  }

  // Nothing drawn, nothing to hit: a feature hidden by the legend.
  const HIDDEN = { stroke: false, fill: false, interactive: false, radius: 0 };

  /** The vector-tile layer of a catalog layer (state.spec.source.tiles). */
  function build(page, state) {
    patchEvents();
    const spec = state.spec;
    const point = spec.geometry === 'point';
    state.tiled = true;
    state.hiddenKinds = state.hiddenKinds || {};
    state.hiddenStatuses = state.hiddenStatuses || {};
    state.tileStats = { tiles: 0, features: 0 };
    if (spec.kindsShown) {
      // A provider layer on the coverage map shows the kinds the analysis used.
      Object.keys(spec.kinds || {}).forEach((k) => {
        if (spec.kindsShown.indexOf(k) < 0) state.hiddenKinds[k] = true;
      });
    }
    const look = (properties) => {
      if (point && properties.cluster_count !== undefined) {
        // A cluster made by the service (city-wide zooms): sized by its count, in the
        // colour of its most common kind.
        const kind = spec.kindColumn ? properties[spec.kindColumn] : null;
        if (kind !== null && state.hiddenKinds[kind]) return HIDDEN;
        const n = properties.cluster_count;
        return {
          radius: n > 1 ? Math.min(18, 4 + 2.2 * Math.log2(n)) : 5, fill: true,
          fillColor: page.kindStyle(spec, kind).color, fillOpacity: 0.8,
          stroke: true, color: '#ffffff', weight: 1.5, opacity: 1, interactive: true,
        };
      }
      if (point) {
        const kind = spec.kindColumn ? properties[spec.kindColumn] : null;
        const status = spec.statusColumn ? properties[spec.statusColumn] : null;
        if ((kind !== null && state.hiddenKinds[kind]) || (status !== null && state.hiddenStatuses[status])) return HIDDEN;
        const colour = page.kindStyle(spec, kind).color;
        const statuses = (spec.style && spec.style.statuses) || {};
        const opacity = statuses[status] && statuses[status].opacity !== undefined ? statuses[status].opacity : 1;
        const ring = statuses[status] && statuses[status].ring;
        return {
          radius: 5, fill: true, fillColor: colour, fillOpacity: opacity,
          stroke: true, color: ring || '#ffffff', weight: ring ? 2 : 1, opacity: opacity, interactive: true,
        };
      }
      // The page may colour the layer (the grids' choropleth): state.tileStyle.
      return state.tileStyle ? state.tileStyle(properties) : page.pathStyle(spec);
    };
    // The tiles' layer is the catalog layer (a provider layer has an id of its own).
    const name = spec.catalogId || spec.id;
    const styles = {};
    styles[name] = (properties) => {
      state.tileStats.features += 1;
      return look(properties);
    };
    const pane = point ? 'points' : page.paneOf(spec);
    const idField = spec.idField;
    // 512-pixel tiles, as the service makes them (geomap/analysis/tiles.py TILE_PX): at
    // map zoom z the tiles of zoom z - 1 (a quarter of the requests of 256-pixel tiles).
    const url = spec.source.tilesHref.replace('{z}', '{tileZoom}');
    const layer = L.vectorGrid.protobuf(url, {
      tileZoom: (data) => data.z - 1,
      pane: 'gm-' + pane,
      rendererFactory: L.canvas.tile,
      vectorTileLayerStyles: styles,
      interactive: point || page.paneInteractive(pane),
      // Feature ids: the MVT id (integer ids) or the id property (grid codes).
      getFeatureId: (feature) => (feature.id !== undefined && feature.id !== null ? feature.id : feature.properties[idField]),
      fetchOptions: { credentials: 'same-origin' },
      tileSize: 512,
      minZoom: spec.minZoom || 0,
      maxNativeZoom: 18,
    });
    layer.on('tileload', () => { state.tileStats.tiles += 1; });
    layer.on('tileerror', (e) => {
      page.say('tiles:' + spec.id, page.t.load_failed.replace('{layer}', spec.title).replace('{message}', String(e.error || 'tile')), 'error');
    });
    const tooltip = L.tooltip({ sticky: true, direction: 'top', opacity: 0.95 });
    layer.on('mouseover mousemove', (e) => {
      if (!e.layer || !e.layer.properties) return;
      const p = e.layer.properties;
      const html = p.cluster_count !== undefined ? page.clusterTooltip(spec, p) : page.tileTooltip(spec, p);
      tooltip.setLatLng(e.latlng).setContent(html);
      if (!page.map.hasLayer(tooltip)) tooltip.addTo(page.map);
    });
    layer.on('mouseout', () => tooltip.remove());
    layer.on('click', (e) => {
      if (!e.layer || !e.layer.properties) return;
      if (e.layer.properties.cluster_count !== undefined) {
        // A cluster opens up as a marker cluster does: zoom in on it.
        L.DomEvent.stopPropagation(e);
        page.map.setView(e.latlng, Math.min(page.map.getZoom() + 2, page.map.getMaxZoom()));
        return;
      }
      const html = page.tilePopup(spec, e.layer.properties);
      if (!html) return;
      // A point is what the click was for (as a marker): the map does not ask for the
      // nearest teams then.
      if (point) L.DomEvent.stopPropagation(e);
      L.popup().setLatLng(e.latlng).setContent(html).openOn(page.map);
    });
    return layer;
  }

  /** Style every drawn feature again (the grids' colours, the legend's hidden kinds). */
  function restyle(state) {
    const layer = state.main;
    if (!layer || !layer._vectorTiles) return;
    const style = layer.options.vectorTileLayerStyles[state.spec.catalogId || state.spec.id];
    Object.keys(layer._vectorTiles).forEach((key) => {
      const tile = layer._vectorTiles[key];
      Object.keys(tile._features || {}).forEach((id) => {
        const feature = tile._features[id].feature;
        layer._updateStyles(feature, tile, style(feature.properties));
      });
    });
  }

  /** Features drawn in the tiles now on the map. */
  function drawn(state) {
    const layer = state.main;
    if (!layer || !layer._vectorTiles) return 0;
    return Object.keys(layer._vectorTiles).reduce((n, key) => n + Object.keys(layer._vectorTiles[key]._features || {}).length, 0);
  }

  window.GeomapTiles = { build: build, restyle: restyle, drawn: drawn };
})();
