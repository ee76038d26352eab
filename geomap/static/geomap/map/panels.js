/*
 * map/panels.js: the page's controls: foldable boxes, the status line, the layer control
 * with its zoom notes, and the search (its index over the layers' features, and going to
 * a hit).
 */
(function () {
  'use strict';
  const G = window.GeomapMap;
  const { esc, fmt, polygonAnchor } = G.util;

  G.Page.include({
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
    },

    setFolded(panel, folded) {
      L.DomUtil[folded ? 'addClass' : 'removeClass'](panel, 'gm-folded');
      const button = panel.querySelector('.gm-fold');
      if (button) button.setAttribute('aria-expanded', folded ? 'false' : 'true');
    },

    /** Whether a map event began on a control (a panel, the legend): never a map query. */
    fromControl(e) {
      const target = e && e.originalEvent && e.originalEvent.target;
      if (!target || !target.closest) return false;
      // A target the panel re-drew meanwhile is no longer in the page: it was a control.
      if (!document.documentElement.contains(target)) return true;
      return !!target.closest('.leaflet-control, .gm-skip');
    },

    addStatusBox() {
      const box = this.addBox('bottomleft', 'gm-status');
      box.style.display = 'none';
      return box;
    },

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
    },

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
    },

    refreshZoomNotes() {
      // The map container says which layers the zoom hides; CSS greys their entries.
      const zoom = this.map.getZoom();
      const container = this.map.getContainer();
      this.order.forEach((id) => {
        const hidden = zoom < (this.states[id].spec.minZoom || 0);
        L.DomUtil[hidden ? 'addClass' : 'removeClass'](container, 'gm-below-' + id);
      });
    },

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
    },

    index() {
      if (this.searchDirty) {
        this.buildSearchIndex();
        this.searchDirty = false;
      }
      return this.searchIndex;
    },

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
    },

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
    },
  });
})();
