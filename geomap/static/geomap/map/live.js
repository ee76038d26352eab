/*
 * map/live.js: the live battle map, its session and stream: who is signed in (and what
 * they may do), the live status, the event stream (/api/events) and the teams moving and
 * changing on the map. Only on served battle pages (config.live); an embed is read-only.
 */
(function () {
  'use strict';
  const G = window.GeomapMap;
  const { esc, fmt, styledIcon } = G.util;
  const { ROUTE_COLORS } = G.drawing;

  const STREAM_KINDS = ['case.created', 'case.changed', 'case.escalated', 'dispatch.created',
    'dispatch.changed', 'team.changed', 'team.moved', 'reset'];

  G.Page.include({
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
      this.renderDemoLine(!signedIn && session && session.role === 'open');
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

    /** The local demo's line on the map: this browser reads without a key (open reads on). */
    renderDemoLine(shown) {
      const container = this.map && this.map.getContainer();
      if (!container) return;
      let line = container.querySelector('.gm-demo');
      if (!shown) {
        if (line) line.remove();
        return;
      }
      if (!line) {
        line = document.createElement('div');
        line.className = 'gm-demo';
        line.setAttribute('role', 'note');
        container.appendChild(line);
      }
      line.textContent = this.t.demo_open_read;
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
  });
})();
