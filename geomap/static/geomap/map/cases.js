/*
 * map/cases.js: the live battle map's cases: the case layer and the queue, a case's
 * detail with the teams recommended for it, dispatch and the case's steps from the map,
 * and the keyboard's way to the panels (skip links).
 */
(function () {
  'use strict';
  const G = window.GeomapMap;
  const { esc, fmt, number, applyStyles } = G.util;
  const { ROUTE_COLORS } = G.drawing;

  const CASE_ICONS = { incident: 'triangle-exclamation', hazard: 'circle-exclamation', request: 'bell' };
  const SEVERITY_RANK = { low: 0, medium: 1, high: 2, critical: 3 };
  const OPEN_CASES = ['reported', 'accepted', 'dispatched', 'on_scene', 'resolved'];
  const USER_ACTIONS = ['accept', 'resolve', 'close', 'reopen', 'cancel'];

  G.Page.include({
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
          this.floodTag(c) + '<br><small>' + esc(this.caseLine(c)) + '</small></button></li>';
      }).join('');
      list.innerHTML = '<h3>' + esc(t.queue) + ' <span class="gm-count gm-queue-count">' + cases.length + '</span></h3>' +
        (cases.length ? '<ol class="gm-queue-items">' + items + '</ol>' : '<p class="gm-queue-empty">' + esc(t.queue_empty) + '</p>');
      Array.prototype.forEach.call(list.querySelectorAll('.gm-case-open'), (button) => {
        button.addEventListener('click', () => this.selectCase(Number(button.getAttribute('data-case'))));
      });
    },

    /** A case that one-click calls flooded: its flag, in the page's language (else nothing). */
    floodText(c) {
      const flag = c.calls && c.calls.flag;
      return flag ? (this.config.lang === 'en' ? flag.en : flag.zh) : '';
    },

    floodTag(c) {
      const text = this.floodText(c);
      return text ? ' <span class="gm-flood-tag" title="' + esc(text) + '">' + esc(text) + '</span>' : '';
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
      if (this.floodText(c)) rows.push(['⚠', '<b class="gm-bad gm-flood">' + esc(this.floodText(c)) + '</b>']);
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
})();
