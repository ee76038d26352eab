// The one-click call page (一键呼叫): send the call with fetch and show its number.
// Without this script the form still posts and the server answers a page; with it the
// answer shows in place. Every word comes from the form's data-* attributes (the page's
// language); nothing is inline, so the page runs under the strict CSP.
(function () {
  'use strict';
  var form = document.getElementById('call-form');
  var result = document.getElementById('call-result');
  if (!form || !result || !window.fetch) return;
  var button = document.getElementById('call-button');
  var text = document.getElementById('call-text');
  var phone = document.getElementById('call-phone');
  var words = form.dataset;
  // One Idempotency-Key per call: a press sent again after a lost answer (no connection,
  // a server error) carries the same key, so the service answers the first answer and
  // makes no second call. A changed text is a new call with a new key.
  var pending = null;

  function newKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }

  function keyFor(payload) {
    if (!pending || pending.payload !== payload) pending = { payload: payload, key: newKey() };
    return pending.key;
  }

  function show(kind, lines) {
    result.className = 'result' + (kind ? ' ' + kind : '');
    result.textContent = '';
    lines.forEach(function (line) {
      var p = document.createElement('p');
      p.className = line[0];
      p.textContent = line[1];
      if (line[2]) p.id = line[2];
      result.appendChild(p);
    });
    result.hidden = false;
  }

  function fieldLabel(field) {
    var label = field && words['field' + field.charAt(0).toUpperCase() + field.slice(1)];
    return label ? label.replace(/[（(].*$/, '') + '：' : '';
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    show('', [['message', words.sending]]);
    var body = {};
    if (text.value.trim()) body.text = text.value;
    if (phone.value.trim()) body.phone = phone.value;
    var payload = JSON.stringify(body);
    var headers = { 'Content-Type': 'application/json', 'Accept': 'application/json' };
    if (window.crypto && window.crypto.getRandomValues) headers['Idempotency-Key'] = keyFor(payload);
    fetch(form.action, {
      method: 'POST',
      credentials: 'same-origin',
      headers: headers,
      body: payload
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data, retry: response.headers.get('Retry-After') };
      });
    }).then(function (answer) {
      if (answer.status === 201) {
        pending = null;
        form.hidden = true;
        show('done', [
          ['message', answer.data.message || words.done],
          ['number-label', words.number],
          ['number', answer.data.number, 'call-number'],
          ['', words.keep]
        ]);
        return;
      }
      var error = (answer.data && answer.data.error) || {};
      if (answer.status === 429) {
        var minutes = Math.max(1, Math.round((parseFloat(answer.retry) || 60) / 60));
        show('failed', [['message', words.limited.replace('{minutes}', minutes), 'call-error']]);
      } else {
        var message = fieldLabel(error.field) + (error.message || ('HTTP ' + answer.status));
        show('failed', [['message', words.failed.replace('{message}', message), 'call-error']]);
      }
      button.disabled = false;
    }, function () {
      show('failed', [['message', words.offline, 'call-error']]);
      button.disabled = false;
    });
  });
})();
