// Cohort admin UI: small progressive enhancements. Every page works without
// this script; it adds the organisation switcher on change, copy buttons,
// confirmations and the live event debugger (Server-Sent Events).
(function () {
  'use strict';

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  // The organisation switcher submits itself; its button is for no-JS.
  each('select[data-autosubmit]', function (select) {
    select.addEventListener('change', function () { select.form.submit(); });
  });
  each('[data-js-hide]', function (el) { el.hidden = true; });

  // Copy buttons: data-copy names the element whose text is copied.
  each('button[data-copy]', function (button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var source = document.getElementById(button.getAttribute('data-copy'));
      if (!source) return;
      var text = source.textContent;
      var label = button.textContent;
      var done = function (ok) {
        button.textContent = ok ? 'Copied' : 'Select and copy';
        setTimeout(function () { button.textContent = label; }, 2000);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(false); });
      } else {
        done(false);
      }
    });
  });

  // Forms that destroy something ask first.
  each('form[data-confirm]', function (form) {
    form.addEventListener('submit', function (event) {
      if (!window.confirm(form.getAttribute('data-confirm'))) event.preventDefault();
    });
  });

  // The event mapping editor: one more row per click.
  each('button[data-add-row]', function (button) {
    var rows = button.parentNode.querySelector('[data-map-rows]');
    if (!rows) return;
    button.hidden = false;
    button.addEventListener('click', function () {
      var last = rows.lastElementChild;
      if (!last) return;
      var copy = last.cloneNode(true);
      var n = rows.children.length + 1;
      Array.prototype.forEach.call(copy.querySelectorAll('input'), function (input) {
        input.value = '';
        input.id = input.id.replace(/-\d+$/, '-' + n);
      });
      Array.prototype.forEach.call(copy.querySelectorAll('label'), function (label) {
        label.htmlFor = label.htmlFor.replace(/-\d+$/, '-' + n);
        label.textContent = label.textContent.replace(/\d+$/, String(n));
      });
      rows.appendChild(copy);
      copy.querySelector('input').focus();
    });
  });

  // A store's sync runs: reloaded every 2 seconds while one runs or waits.
  function watchRuns() {
    var runs = document.getElementById('sync-runs');
    if (!runs || runs.getAttribute('data-live') !== 'true' || !window.fetch) return;
    setTimeout(function () {
      fetch(runs.getAttribute('data-runs-url'), { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (text) {
          var holder = document.createElement('div');
          holder.innerHTML = text;
          var fresh = holder.querySelector('#sync-runs');
          if (fresh) runs.parentNode.replaceChild(fresh, runs);
          watchRuns();
        }, function () { setTimeout(watchRuns, 5000); });
    }, 2000);
  }
  watchRuns();

  // Raw JSON is shown indented.
  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
  }
  each('pre[data-json]', function (pre) { pre.textContent = pretty(pre.textContent); });

  // The live event debugger.
  var live = document.getElementById('live-events');
  if (live && window.EventSource) {
    var list = live.querySelector('ol.events');
    var status = document.getElementById('live-status');
    var empty = document.getElementById('live-empty');
    var url = live.getAttribute('data-stream') + '?after=' + encodeURIComponent(live.getAttribute('data-after') || '0');
    var source = new EventSource(url);
    var setStatus = function (on, text) {
      if (!status) return;
      status.classList.toggle('on', on);
      status.textContent = text;
    };
    source.onopen = function () { setStatus(true, 'Live: new events appear here as they arrive'); };
    source.onerror = function () { setStatus(false, 'Reconnecting…'); };
    source.addEventListener('event', function (message) {
      var e;
      try { e = JSON.parse(message.data); } catch (err) { return; }
      if (empty) empty.hidden = true;
      list.insertBefore(row(e), list.firstChild);
      while (list.children.length > 200) list.removeChild(list.lastChild);
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function row(e) {
    var li = el('li', 'fresh');
    li.setAttribute('data-message-id', e.message_id);
    var details = el('details');
    var summary = el('summary');
    var type = el('span', 'type');
    type.appendChild(el('span', 'badge', e.type));
    summary.appendChild(type);
    var what = el('span', 'what', e.label);
    summary.appendChild(what);
    var who = el('span', 'who-id', e.who + ' · ' + e.received_at);
    summary.appendChild(who);
    details.appendChild(summary);
    var pre = el('pre', null, pretty(e.raw));
    pre.setAttribute('data-json', '');
    details.appendChild(pre);
    li.appendChild(details);
    return li;
  }
})();
