/*
 * map/layers.js: the catalog's layers on the page: styles, icons, tooltips and popups
 * from the catalog (layers/*.toml); areas and lines as path sets, labels, point markers
 * (clustered where the catalog says so) and the filter of the markers shown.
 */
(function () {
  'use strict';
  const G = window.GeomapMap;
  const { esc, fmt, number, percent, styledIcon, polygonAnchor } = G.util;
  const { PathSet } = G;
  const { AREA_LAYERS } = G.drawing;

  G.Page.include({
    // -- styles
    kindStyle(spec, kind) {
      const style = spec.style || {};
      const kinds = style.kinds || {};
      const own = kinds[kind] || {};
      return { color: own.color || style.color || '#334155', icon: own.icon || style.icon || 'location-dot' };
    },

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
    },

    /** Whether a team's last position is older than the staleMinutes setting. */
    isStale(spec, properties) {
      if (spec.id !== 'teams' || !properties.position_at || !this.config.staleMinutes) return false;
      const at = Date.parse(properties.position_at);
      return isFinite(at) && Date.now() - at > this.config.staleMinutes * 60000;
    },

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
    },

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
    },

    // -- popups
    label(spec, properties) {
      if (spec.label) {
        if (this.config.lang === 'en' && properties[spec.label + '_en']) return properties[spec.label + '_en'];
        if (properties[spec.label] !== undefined && properties[spec.label] !== null) return properties[spec.label];
      }
      return properties.name || properties.code || '';
    },

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
    },

    table(rows) {
      return '<table class="gm-props">' + rows.map((r) =>
        '<tr><th>' + esc(r[0]) + '</th><td>' + r[1] + '</td></tr>').join('') + '</table>';
    },

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
    },

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
    },

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
    },

    /** The pane of a polygon or line layer: filled areas, circles or outlines. */
    paneOf(spec) {
      return AREA_LAYERS[spec.id] || (spec.style && spec.style.fill ? 'areas' : 'outlines');
    },

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
    },

    tileTooltip(spec, properties) {
      if (spec.id === 'grids') return this.tooltipHtml(spec, { properties: properties });
      return '<b>' + esc(this.label(spec, properties)) + '</b>';
    },

    clusterTooltip(spec, properties) {
      const kind = spec.kindColumn ? properties[spec.kindColumn] : null;
      const kindName = kind === null ? '' : ' · ' + esc((spec.kinds && spec.kinds[kind]) || kind);
      return '<b>' + number(properties.cluster_count, 0) + '</b> ' + esc(spec.title) + kindName;
    },

    tilePopup(spec, properties) {
      // On the battle map a click on an area asks for the nearest teams instead.
      if (spec.geometry !== 'point' && this.nearestOnClick) return null;
      return this.featureHtml(spec, properties, this.extraRows(spec, { properties: properties }));
    },

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
    },

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
    },

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
    },

    extraRows(spec, feature) {
      if (spec.id !== 'grids') return [];
      const teams = this.teamCounts && this.teamCounts[feature.properties[spec.idField]];
      const rows = [[this.t.teams_in_grid, (teams ? teams.all : 0) + ' (' + this.t.available_short + ' ' + (teams ? teams.available : 0) + ')']];
      if (this.coverageShares && feature.properties[spec.idField] in this.coverageShares) {
        rows.push([this.t.colour_coverage, percent(this.coverageShares[feature.properties[spec.idField]])]);
      }
      return rows;
    },

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
    },

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
    },

    /** Open a marker's popup, binding it on first use (thousands of markers, few clicked). */
    openMarkerPopup(marker) {
      if (!marker.getPopup()) {
        marker.bindPopup(() => this.markerHtml(marker));
        if (marker.spec.id === 'teams') marker.on('popupopen', () => this.teamPersonal(marker));
      }
      marker.openPopup();
    },

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
    },

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
    },

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
    },
  });
})();
