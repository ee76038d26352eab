/*
 * map/legend.js: the legend box: each shown layer's swatches and counts (compact on an
 * embed), its details per kind or class, and the choice of the grids' colouring.
 */
(function () {
  'use strict';
  const G = window.GeomapMap;
  const { esc, fmt, number, percent, applyStyles } = G.util;
  const { COVERED_COLORS, UNCOVERED_COLOR } = G.drawing;

  G.Page.include({
    /** Render the legend once, at the next frame, however many layers asked meanwhile. */
    renderLegend() {
      if (!this.legend || this.legendPending) return;
      this.legendPending = true;
      window.requestAnimationFrame(() => {
        this.legendPending = false;
        this.renderLegendNow();
      });
    },

    renderLegendNow() {
      if (!this.legend) return;
      if (this.compactLegend) {
        this.renderCompactLegend();
        return;
      }
      const parts = ['<h3>' + esc(this.t.legend) + '</h3>'];
      this.order.forEach((id) => {
        const state = this.states[id];
        const spec = state.spec;
        if (!this.map.hasLayer(state.gate)) return;
        const synthetic = (state.sources || []).some((s) => /^synthetic/.test(s));
        let head = '<div class="gm-legend-layer"><div class="gm-legend-title">' + this.swatch(spec) + ' ' + esc(spec.title);
        if (state.loaded) head += ' <span class="gm-count">' + number(state.count, 0) + '</span>';
        else if (state.waiting && !state.loading) head += ' <small class="gm-zoom-note">' + esc(fmt(this.t.zoom_in_to_see, { zoom: spec.minZoom })) + '</small>';
        else if (!state.error) head += ' <span class="gm-count">…</span>';
        if (state.matched && state.features && state.matched > state.features.length) {
          head += ' <small>' + esc(fmt(this.t.shown_of, { count: number(state.features.length, 0), matched: number(state.matched, 0) })) + '</small>';
        }
        if (synthetic) head += ' <small class="gm-synthetic">' + esc(this.t.synthetic) + '</small>';
        if (spec.id === 'circles' && spec.type === 'catalog' && state.loaded && !state.count) {
          head += '<br><small>' + esc(this.t.circles_none) + '</small>';
        }
        head += '</div>';
        parts.push(head + this.legendDetail(state) + '</div>');
      });
      this.legend.innerHTML = parts.join('');
      applyStyles(this.legend);
      this.bindLegend();
    },

    /** The embed's legend: one line per layer shown, its kinds inline, nothing to click. */
    renderCompactLegend() {
      const parts = [];
      this.order.forEach((id) => {
        const state = this.states[id];
        const spec = state.spec;
        if (!this.map.hasLayer(state.gate)) return;
        let line = '<div class="gm-legend-title">' + this.swatch(spec) + ' ' + esc(spec.title);
        if (state.loaded) line += ' <span class="gm-count">' + number(state.count, 0) + '</span>';
        line += '</div>';
        if (spec.geometry === 'point' && state.markers && spec.kindColumn) {
          const kinds = {};
          state.markers.forEach((m) => { kinds[m.feature.properties[spec.kindColumn]] = true; });
          line += '<div class="gm-kinds-inline">' + Object.keys(kinds).sort().map((k) => {
            const look = this.kindStyle(spec, k);
            return '<span><i class="fa-solid fa-' + esc(look.icon) + '" data-style="color:' + esc(look.color) + '"></i> ' +
              esc((spec.kinds && spec.kinds[k]) || k) + '</span>';
          }).join(' ') + '</div>';
        }
        parts.push(line);
      });
      this.legend.innerHTML = parts.join('');
      applyStyles(this.legend);
    },

    swatch(spec) {
      const style = spec.style || {};
      if (spec.geometry === 'point') {
        return '<i class="fa-solid fa-' + esc(style.icon || 'location-dot') + '" data-style="color:' + esc(style.color || '#334155') + '"></i>';
      }
      const border = (style.dash ? 'dashed ' : 'solid ') + esc(style.color || '#475569');
      const fill = style.fill ? esc(style.color || '#94a3b8') : 'transparent';
      return '<span class="gm-swatch" data-style="border:2px ' + border + ';background:' + fill + ';opacity:.8"></span>';
    },

    legendDetail(state) {
      const spec = state.spec;
      let html = '';
      if (spec.geometry === 'point' && (state.markers || state.tiled) && spec.kindColumn) {
        const counts = {};
        if (state.tiled) {
          // Not all in the browser: every kind of the catalog, without counts.
          Object.keys((spec.style && spec.style.kinds) || {}).forEach((k) => { counts[k] = ''; });
        } else {
          state.markers.forEach((m) => {
            const k = m.feature.properties[spec.kindColumn];
            counts[k] = (counts[k] || 0) + 1;
          });
        }
        html += '<ul class="gm-kinds">' + Object.keys(counts).sort((a, b) => counts[b] - counts[a]).map((k) => {
          const look = this.kindStyle(spec, k);
          const off = state.hiddenKinds[k] ? ' gm-off' : '';
          return '<li class="gm-toggle' + off + '" tabindex="0" role="button" aria-pressed="' + (off ? 'false' : 'true') + '" data-layer="' + esc(spec.id) + '" data-kind="' + esc(k) + '">' +
            '<i class="fa-solid fa-' + esc(look.icon) + '" data-style="color:' + esc(look.color) + '"></i> ' +
            esc((spec.kinds && spec.kinds[k]) || k) + ' <span class="gm-count">' + counts[k] + '</span></li>';
        }).join('') + '</ul>';
        if (spec.statusColumn) {
          const statuses = (spec.style && spec.style.statuses) || {};
          html += '<ul class="gm-kinds gm-statuses">' + Object.keys(statuses).map((s) => {
            const off = state.hiddenStatuses[s] ? ' gm-off' : '';
            const ring = statuses[s].ring ? 'background:#fff;box-shadow:0 0 0 3px ' + esc(statuses[s].ring) + ';' : '';
            const n = state.markers ? state.markers.filter((m) => m.feature.properties[spec.statusColumn] === s).length : '';
            return '<li class="gm-toggle' + off + '" tabindex="0" role="button" aria-pressed="' + (off ? 'false' : 'true') + '" data-layer="' + esc(spec.id) + '" data-status="' + esc(s) + '">' +
              '<span class="gm-dot" data-style="opacity:' + statuses[s].opacity + ';' + ring + '"></span> ' +
              esc(this.s.statuses[s] || s) + ' <span class="gm-count">' + n + '</span></li>';
          }).join('') + '</ul>';
          if (spec.id === 'teams' && state.markers) {
            const stale = state.markers.filter((m) => this.isStale(spec, m.feature.properties)).length;
            html += '<div class="gm-stale-note"><span class="gm-pin gm-stale gm-stale-swatch"><span class="gm-stale-badge"><i class="fa-solid fa-clock"></i></span></span> ' +
              esc(this.t.stale) + ' (&gt; ' + number(this.config.staleMinutes, 0) + ' ' + esc(this.t.min) + ') <span class="gm-count">' + stale + '</span></div>';
          }
        }
      }
      if (spec.geometry === 'line' && spec.kindColumn && state.features && spec.style && spec.style.kinds) {
        const counts = {};
        state.features.forEach((f) => {
          const k = f.properties[spec.kindColumn];
          counts[k] = (counts[k] || 0) + 1;
        });
        html += '<ul class="gm-kinds">' + Object.keys(counts).sort().map((k) => {
          const look = spec.style.kinds[k] || {};
          const line = (look.dash ? 'dashed ' : 'solid ') + esc(look.color || spec.style.color || '#475569');
          return '<li><span class="gm-line" data-style="border-top:3px ' + line + '"></span> ' +
            esc((spec.kinds && spec.kinds[k]) || k) + ' <span class="gm-count">' + counts[k] + '</span></li>';
        }).join('') + '</ul>';
      }
      if (spec.type === 'coverage') {
        const rows = [[UNCOVERED_COLOR, this.t.not_covered], [COVERED_COLORS[0], this.t.covered + ' < 80%'],
          [COVERED_COLORS[1], this.t.covered + ' 80–95%'], [COVERED_COLORS[2], this.t.covered + ' ≥ 95%']];
        html += '<ul class="gm-ramp">' + rows.map((r) => '<li><span class="gm-swatch" data-style="background:' + r[0] +
          '"></span> ' + esc(r[1]) + '</li>').join('') + '</ul>';
      }
      if (spec.id === 'grids' && state.main) {
        const options = this.colouringOptions();
        html += '<label class="gm-colouring">' + esc(this.t.colour_grids) + ' <select>' + options.map((o) =>
          '<option value="' + o + '"' + (o === this.gridColouring ? ' selected' : '') + '>' +
          esc(this.t['colour_' + o] || o) + '</option>').join('') + '</select></label>';
        const g = this.gridValues;
        if (g && g.breaks && g.mode === this.gridColouring && g.mode !== 'none') {
          const fmtBreak = (v) => (g.mode === 'coverage' ? percent(v) : number(v, 0));
          html += '<ul class="gm-ramp">' + g.colours.slice(0, g.breaks.length + 1).map((c, i) => {
            const lo = i === 0 ? null : g.breaks[i - 1];
            const hi = i < g.breaks.length ? g.breaks[i] : null;
            const label = lo === null ? '< ' + fmtBreak(hi) : hi === null ? '≥ ' + fmtBreak(lo) : fmtBreak(lo) + '–' + fmtBreak(hi);
            return '<li><span class="gm-swatch" data-style="background:' + esc(c) + '"></span> ' + esc(label) + '</li>';
          }).join('') + '</ul>';
        }
      }
      return html;
    },

    bindLegend() {
      Array.prototype.forEach.call(this.legend.querySelectorAll('.gm-toggle'), (li) => {
        li.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); li.click(); }
        });
        li.addEventListener('click', () => {
          // The legend is drawn again: the keyboard keeps its place on the same entry.
          this.legendFocus = document.activeElement === li ? li.getAttribute('data-layer') + '|' +
            li.getAttribute('data-kind') + '|' + li.getAttribute('data-status') : null;
          const state = this.states[li.getAttribute('data-layer')];
          const kind = li.getAttribute('data-kind');
          const status = li.getAttribute('data-status');
          const set = kind !== null ? state.hiddenKinds : state.hiddenStatuses;
          const key = kind !== null ? kind : status;
          if (set[key]) delete set[key];
          else set[key] = true;
          if (state.tiled) window.GeomapTiles.restyle(state);
          else this.applyMarkerFilter(state);
          this.renderLegend();
        });
      });
      const select = this.legend.querySelector('.gm-colouring select');
      if (select) select.addEventListener('change', () => this.colourGrids(select.value));
      if (this.legendFocus) {
        const again = Array.prototype.find.call(this.legend.querySelectorAll('.gm-toggle'), (li) =>
          li.getAttribute('data-layer') + '|' + li.getAttribute('data-kind') + '|' + li.getAttribute('data-status') === this.legendFocus);
        this.legendFocus = null;
        if (again) again.focus();
      }
    },
  });
})();
