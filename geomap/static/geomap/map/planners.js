/*
 * map/planners.js: what the planners' pages draw: the grids' colouring (population,
 * coverage, teams per grid), the circles page (reach circles of the venues and their
 * union) and the coverage page (covered and uncovered areas), with their summaries.
 */
(function () {
  'use strict';
  const G = window.GeomapMap;
  const { esc, fmt, number, percent, mark, quantileBreaks, classOf } = G.util;
  const { decodeCompact } = G;
  const { COVERED_COLORS, UNCOVERED_COLOR } = G.drawing;

  G.Page.include({
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
    },

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
    },

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
    },

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
    },

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
    },

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
    },

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
    },

    bindTopLinks() {
      Array.prototype.forEach.call(this.summaryBox.querySelectorAll('a[data-top]'), (a) => {
        a.addEventListener('click', (e) => {
          e.preventDefault();
          const feature = this.summaryTop[Number(a.getAttribute('data-top'))];
          const layer = L.geoJSON(feature, this.geoJsonOptions({}));
          this.map.fitBounds(layer.getBounds(), { maxZoom: 15 });
        });
      });
    },

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
    },

    coverageStyle(p) {
      if (!p.covered) {
        // Gaps stand out: red fill and a heavier outline.
        return { color: '#7f1d1d', weight: 1.4, fill: true, fillColor: UNCOVERED_COLOR, fillOpacity: 0.6 };
      }
      const share = p.covered_share_population || 0;
      const colour = share >= 0.95 ? COVERED_COLORS[2] : share >= 0.8 ? COVERED_COLORS[1] : COVERED_COLORS[0];
      return { color: '#64748b', weight: 0.4, fill: true, fillColor: colour, fillOpacity: 0.45 };
    },

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
    },

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
    },

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
    },
  });
})();
