/*
 * map/nearest.js: the battle map's nearest-teams panel: a point from a click, a place
 * name or coordinates; the service's answer (/api/nearest) as a list and as routes.
 */
(function () {
  'use strict';
  const G = window.GeomapMap;
  const { esc, fmt, number, applyStyles, polygonAnchor } = G.util;
  const { ROUTE_COLORS } = G.drawing;

  G.Page.include({
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
    },

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
    },

    nearestMessage(text, kind) {
      const box = this.nearestBox && this.nearestBox.querySelector('.gm-nearest-msg');
      if (!box) return;
      box.className = 'gm-nearest-msg' + (kind ? ' gm-msg-' + kind : '');
      box.textContent = text || '';
    },

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
    },

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
    },

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
    },
  });
})();
