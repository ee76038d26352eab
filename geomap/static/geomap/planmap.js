/*
 * planmap.js: the planners' panel of /map/plan (geomap/maps/plan.py documents the page).
 *
 * The map module (map/*.js, battlemap.js) draws the page (outlines from the catalog); this
 * module wraps GeomapMap.start and, on the "plan" page, adds a panel: the question (venue
 * set, kinds, candidates, area, reach in minutes or metres, mode, model, number of sites),
 * a run (POST /api/plans, then GET /api/jobs/<id> until it ends, with a progress bar and a
 * cancel button: DELETE /api/jobs/<id>), the answer (sites in order of marginal gain,
 * their circles, the grids they newly cover, before/after, solver status and gap, the
 * greedy answer beside it), downloads (CSV with a BOM, GeoPackage, HTML in zh or en),
 * "save as scenario" and a scenario picker showing a scenario's coverage at a level.
 * Tests read window.geomapPlan.
 */
(function () {
  'use strict';
  if (!window.GeomapMap) return;
  const { esc, number, percent } = window.GeomapMap.util;

  // The panel shows a missing value as a dash, where the map's popups leave it empty.
  function num(value) { return value === null || value === undefined ? '–' : number(value, 0); }
  function pct(value) { return value === null || value === undefined ? '–' : percent(value); }
  function list(text) { return String(text || '').split(',').map((s) => s.trim()).filter(Boolean); }

  class PlanPanel {
    constructor(page, map, config) {
      this.page = page;
      this.map = map;
      this.config = config;
      this.s = config.plan.strings;
      this.gridFeatures = null;
      this.job = null;
      this.result = null;
      this.layers = { grids: L.layerGroup().addTo(map), circles: L.layerGroup().addTo(map), sites: L.layerGroup().addTo(map) };
      this.build();
      this.loadScenarios();
    }

    url(path, params) {
      const all = Object.assign({}, params || {});
      if (this.config.token) all.token = this.config.token;
      const q = Object.keys(all).map((k) => encodeURIComponent(k) + '=' + encodeURIComponent(all[k])).join('&');
      return (this.config.service || '') + path + (q ? '?' + q : '');
    }

    /** The sign-in session's CSRF token (null: no session), asked once. */
    async csrf() {
      if (this.csrfToken === undefined) {
        try {
          const r = await fetch(this.url('/api/session'), { credentials: 'same-origin', headers: { Accept: 'application/json' } });
          this.csrfToken = r.ok ? ((await r.json()).csrf_token || null) : null;
        } catch (error) {
          this.csrfToken = null;
        }
      }
      return this.csrfToken;
    }

    async fetchJson(path, options) {
      const init = Object.assign({ credentials: 'same-origin', headers: { Accept: 'application/json', 'Content-Type': 'application/json' } }, options || {});
      if (init.method && init.method !== 'GET') {
        // A signed-in planner's writes carry the session's CSRF token (geomap.auth).
        const token = await this.csrf();
        if (token) init.headers['X-CSRF-Token'] = token;
      }
      const response = await fetch(this.url(path), init);
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new Error(body && body.error ? body.error.message : response.status + ' ' + response.statusText);
      return body;
    }

    build() {
      const s = this.s;
      const d = this.config.plan.defaults;
      const Box = L.Control.extend({ onAdd: () => { const div = L.DomUtil.create('div', 'gm-box gm-plan'); L.DomEvent.disableClickPropagation(div); L.DomEvent.disableScrollPropagation(div); return div; } });
      const control = new Box({ position: 'topleft' });
      control.addTo(this.map);
      const box = control.getContainer();
      box.style.maxWidth = '340px';
      box.style.maxHeight = '80vh';
      box.style.overflow = 'auto';
      box.style.background = '#fff';
      box.style.padding = '8px';
      const opt = (v, t, sel) => '<option value="' + esc(v) + '"' + (sel ? ' selected' : '') + '>' + esc(t) + '</option>';
      const areas = this.config.plan.districts.map((r) => opt(r.code, r.name + ' ' + r.code, r.code === d.area)).join('');
      box.innerHTML = '<h3>' + esc(s.title) + '</h3><form class="gm-plan-form">' +
        '<label>' + esc(s.of) + ' <select name="of">' + ['red', 'sites', 'stations'].map((v) => opt(v, s[v], v === d.of)).join('') + '</select></label><br>' +
        '<label>' + esc(s.kind) + ' <input name="kind" size="14"></label><br>' +
        '<label>' + esc(s.candidate_kind) + ' <input name="candidate_kind" size="14"></label><br>' +
        '<label>' + esc(s.area) + ' <select name="area">' + opt('', s.all_city, !d.area) + areas + '</select></label><br>' +
        '<label>' + esc(s.reach) + ' <input name="reach" type="number" min="1" step="any" class="gm-w5" value="' + esc(d.distance_m || d.minutes || 15) + '"></label>' +
        '<select name="unit">' + opt('minutes', s.minutes, !d.distance_m) + opt('metres', s.metres, !!d.distance_m) + '</select><br>' +
        '<label>' + esc(s.mode) + ' <select name="mode">' + opt('walk', s.walk, d.mode === 'walk') + opt('drive', s.drive, d.mode === 'drive') + '</select></label><br>' +
        '<label>' + esc(s.model) + ' <select name="model">' + ['coverage', 'covering', 'median'].map((v) => opt(v, s[v], v === 'coverage')).join('') + '</select></label><br>' +
        '<label>' + esc(s.n) + ' <input name="n" type="number" min="1" max="200" class="gm-w4" value="' + esc(d.n || 5) + '"></label> ' +
        '<label>' + esc(s.target) + ' <input name="target" type="number" min="0.01" max="1" step="0.01" class="gm-w4" placeholder="1"></label><br>' +
        '<label>' + esc(s.level) + ' <select name="level">' + ['grid', 'community', 'township', 'district'].map((v) => opt(v, s[v], v === 'district')).join('') + '</select></label><br>' +
        '<button type="submit" class="gm-plan-run">' + esc(s.run) + '</button> <button type="button" class="gm-plan-cancel" disabled>' + esc(s.cancel) + '</button>' +
        '</form><div class="gm-plan-progress gm-hidden"><progress class="gm-wfull" max="1" value="0"></progress><div class="gm-plan-message"></div></div>' +
        '<div class="gm-plan-result"></div>' +
        '<h4>' + esc(s.scenario) + '</h4><select class="gm-plan-scenarios"><option value="">' + esc(s.none) + '</option></select><div class="gm-plan-scenario"></div>' +
        '<p><small>' + esc(s.share_note) + '</small></p>';
      this.box = box;
      this.form = box.querySelector('form');
      this.form.addEventListener('submit', (e) => { e.preventDefault(); this.run(); });
      box.querySelector('.gm-plan-cancel').addEventListener('click', () => this.cancel());
      box.querySelector('.gm-plan-scenarios').addEventListener('change', (e) => this.showScenario(e.target.value));
    }

    question() {
      const f = this.form.elements;
      const body = { of: f.of.value, mode: f.mode.value, model: f.model.value, n: Number(f.n.value) || 5 };
      if (list(f.kind.value).length) body.kind = list(f.kind.value);
      if (list(f.candidate_kind.value).length) body.candidate_kind = list(f.candidate_kind.value);
      if (f.area.value) body.area = f.area.value;
      const reach = Number(f.reach.value) || 15;
      if (f.unit.value === 'metres') body.distance_m = reach; else body.minutes = reach;
      if (body.model === 'covering' && f.target.value) body.target_share = Number(f.target.value);
      if (body.model === 'covering') delete body.n;
      return body;
    }

    showProgress(job) {
      const bar = this.box.querySelector('.gm-plan-progress');
      bar.classList.remove('gm-hidden');
      bar.querySelector('progress').value = job.progress || 0;
      bar.querySelector('.gm-plan-message').textContent = (this.s[job.status] || job.status) + ' ' + Math.round((job.progress || 0) * 100) + '% ' + (job.message || '');
      this.box.setAttribute('data-job-status', job.status);
    }

    async run() {
      this.clear();
      this.box.querySelector('.gm-plan-run').disabled = true;
      this.box.querySelector('.gm-plan-cancel').disabled = false;
      try {
        let job = await this.fetchJson(this.config.urls.plans, { method: 'POST', body: JSON.stringify(this.question()) });
        this.job = job;
        this.showProgress(job);
        while (job.status === 'queued' || job.status === 'running' || job.status === 'cancelling') {
          await new Promise((resolve) => setTimeout(resolve, 400));
          job = await this.fetchJson(this.config.urls.jobs + '/' + encodeURIComponent(this.job.id));
          this.showProgress(job);
        }
        if (job.status === 'done') this.showResult(job);
        else if (job.status === 'failed') this.error(job.error ? job.error.message : job.message);
      } catch (error) {
        this.error(error.message);
      } finally {
        this.box.querySelector('.gm-plan-run').disabled = false;
        this.box.querySelector('.gm-plan-cancel').disabled = true;
      }
    }

    async cancel() {
      if (!this.job) return;
      const state = await this.fetchJson(this.config.urls.jobs + '/' + encodeURIComponent(this.job.id), { method: 'DELETE' });
      this.showProgress(state);
    }

    error(message) {
      this.box.querySelector('.gm-plan-result').innerHTML = '<p class="gm-bad">' + esc(message) + '</p>';
    }

    clear() {
      Object.values(this.layers).forEach((layer) => layer.clearLayers());
      this.box.querySelector('.gm-plan-result').innerHTML = '';
      this.result = null;
    }

    async grids() {
      if (!this.gridFeatures) {
        const doc = await this.fetchJson(this.config.urls.grids);
        const features = GeomapMap.decodeCompact(doc, 'code');
        this.gridFeatures = {};
        features.forEach((f) => { this.gridFeatures[f.properties.code] = f; });
      }
      return this.gridFeatures;
    }

    async drawGrids(rows, style) {
      const all = await this.grids();
      const features = rows.map((r) => all[r.code] && Object.assign({}, all[r.code], { properties: Object.assign({}, all[r.code].properties, r) })).filter((f) => f && f.geometry);
      const layer = L.geoJSON(features, this.page.geoJsonOptions ? this.page.geoJsonOptions({ style: style, onEachFeature: (f, p) => p.bindTooltip(esc(f.properties.name) + ' ' + pct(f.properties.share_before) + ' → ' + pct(f.properties.share_after)) }) : { style: style });
      this.layers.grids.addLayer(layer);
      return features.length;
    }

    async showResult(job) {
      const s = this.s;
      const r = job.result;
      this.result = r;
      const ll = (lon, lat) => (this.page.latLng ? this.page.latLng(lon, lat) : L.latLng(lat, lon));
      r.sites.forEach((site) => {
        if (site.circle) this.layers.circles.addLayer(L.geoJSON(site.circle, this.page.geoJsonOptions ? this.page.geoJsonOptions({ style: () => ({ color: '#1d4ed8', weight: 1.5, fillOpacity: 0.12 }) }) : {}));
        L.circleMarker(ll(site.lon, site.lat), { radius: 8, color: '#fff', weight: 2, fillColor: '#1d4ed8', fillOpacity: 1 })
          .bindTooltip(site.rank + '. ' + esc(site.name) + ' +' + num(site.gain)).addTo(this.layers.sites);
      });
      this.drawnNewly = await this.drawGrids(r.grids.filter((g) => g.newly_covered), () => ({ color: '#14532d', weight: 1, fillColor: '#16a34a', fillOpacity: 0.55 }));
      this.drawnGained = await this.drawGrids(r.grids.filter((g) => !g.newly_covered), () => ({ color: '#65a30d', weight: 0.5, fillColor: '#bbf7d0', fillOpacity: 0.45 }));
      const links = ['csv', 'gpkg', 'html'].map((fmt) => '<a class="gm-plan-download" data-format="' + fmt + '" href="' + esc(this.url(this.config.urls.jobs + '/' + encodeURIComponent(job.id) + '/report', { format: fmt, lang: this.config.lang })) + '" download>' + fmt.toUpperCase() + '</a>').join(' · ');
      const rows = r.sites.map((site) => '<tr><td>' + site.rank + '</td><td>' + esc(site.name) + '</td><td class="gm-num">+' + num(site.gain) + '</td><td class="gm-num">' + site.newly_covered_grids.length + '</td></tr>').join('');
      this.box.querySelector('.gm-plan-result').innerHTML = '<h4>' + esc(s.result) + '</h4>' +
        '<p>' + esc(s.status) + ': <b class="gm-plan-status">' + esc(r.status) + '</b>, ' + esc(s.gap) + ' ' + (r.gap * 100).toFixed(2) + '%<br>' +
        esc(s.before) + ' ' + pct(r.before.covered_share) + ' → ' + esc(s.after) + ' <b>' + pct(r.after.covered_share) + '</b> (+' + num(r.gained) + ' ' + esc(s.residents) + ')<br>' +
        esc(s.greedy) + ': +' + num(r.greedy.gained) + '<br>' + esc(s.newly) + ': <b class="gm-plan-newly">' + num(r.newly_covered_grids) + '</b></p>' +
        '<table class="gm-plan-sites"><thead><tr><th>#</th><th></th><th>' + esc(s.gain) + '</th><th>' + esc(s.newly) + '</th></tr></thead><tbody>' + rows + '</tbody></table>' +
        '<p>' + esc(s.download) + ': ' + links + '</p><button type="button" class="gm-plan-save">' + esc(s.save) + '</button>';
      this.box.querySelector('.gm-plan-save').addEventListener('click', () => this.save(job));
      const bounds = L.latLngBounds([]);
      this.layers.sites.eachLayer((marker) => bounds.extend(marker.getLatLng()));
      this.layers.circles.eachLayer((circle) => bounds.extend(circle.getBounds()));
      if (bounds.isValid()) this.map.fitBounds(bounds.pad(0.2), { maxZoom: 14 });
      this.box.setAttribute('data-plan-ready', 'true');
    }

    async save(job) {
      const name = window.prompt(this.s.name_prompt, 'plan ' + new Date().toISOString().slice(0, 16));
      if (!name) return;
      try {
        const created = await this.fetchJson(this.config.urls.scenarios, { method: 'POST', body: JSON.stringify({ from_job: job.id, name: name }) });
        await this.loadScenarios(created.id);
      } catch (error) {
        this.error(error.message);
      }
    }

    async loadScenarios(selected) {
      try {
        const answer = await this.fetchJson(this.config.urls.scenarios);
        const select = this.box.querySelector('.gm-plan-scenarios');
        select.innerHTML = '<option value="">' + esc(this.s.none) + '</option>' + answer.scenarios.map((sc) =>
          '<option value="' + sc.id + '"' + (sc.id === selected ? ' selected' : '') + '>' + esc(sc.name) + '</option>').join('');
        if (selected) this.showScenario(String(selected));
      } catch (error) { /* no scenarios for this caller */ }
    }

    async showScenario(id) {
      const out = this.box.querySelector('.gm-plan-scenario');
      this.layers.grids.clearLayers();
      if (!id) { out.innerHTML = ''; return; }
      const level = this.form.elements.level.value;
      const f = this.form.elements;
      const params = { level: level, mode: f.mode.value };
      if (f.unit.value === 'metres') params.distance_m = f.reach.value; else params.minutes = f.reach.value;
      const query = Object.keys(params).map((k) => k + '=' + encodeURIComponent(params[k])).join('&');
      const answer = await this.fetchJson(this.config.urls.scenarios + '/' + id + '/coverage?' + query);
      const units = answer.units.filter((u) => u.gained > 0).sort((a, b) => b.gained - a.gained);
      out.innerHTML = '<p>' + esc(this.s.baseline) + ' ' + pct(answer.baseline.covered_share) + ' → <b>' + pct(answer.summary.covered_share) + '</b></p>' +
        '<table class="gm-plan-scenario-units"><tbody>' + units.slice(0, 15).map((u) => '<tr><td>' + esc(u.name) + '</td><td class="gm-num">' + pct(u.baseline_covered_share_population) + ' → ' + pct(u.covered_share_population) + '</td><td class="gm-num">+' + num(u.gained) + '</td></tr>').join('') + '</tbody></table>';
      if (level === 'grid') {
        await this.drawGrids(units.map((u) => ({ code: u.code, name: u.name, share_before: u.baseline_covered_share_population, share_after: u.covered_share_population })), () => ({ color: '#65a30d', weight: 0.5, fillColor: '#86efac', fillOpacity: 0.5 }));
      }
      this.box.setAttribute('data-scenario-ready', id);
    }

    api() {
      return {
        run: () => this.run(),
        get result() { return null; },
        state: () => ({ result: this.result, job: this.job, newlyDrawn: this.drawnNewly || 0, gainedDrawn: this.drawnGained || 0, circles: this.layers.circles.getLayers().length, sites: this.layers.sites.getLayers().length }),
      };
    }
  }

  const start = window.GeomapMap.start;
  window.GeomapMap.start = function (map, config) {
    const page = start(map, config);
    if (config.page === 'plan' && !config.embed) {
      const panel = new PlanPanel(page, map, config);
      window.geomapPlan = panel.api();
    }
    return page;
  };
})();
