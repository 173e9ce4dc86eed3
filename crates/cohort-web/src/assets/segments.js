// Cohort segment editor: the live preview (count and sample members as the
// merchant types) and the builder (rows and groups editing the rule's JSON
// AST). The page saves without this script: the textarea holds the rule's
// text and the form posts it. Both faces go through the server: text → AST
// and AST → canonical text come from POST …/segments/preview, which also
// counts the members; nothing there is saved.
(function () {
  'use strict';

  var form = document.getElementById('segment-form');
  if (!form || !window.fetch || !window.JSON) return;
  var textarea = document.getElementById('seg-rule');
  var textPanel = form.querySelector('[data-face-panel="text"]');
  var builder = document.getElementById('rule-builder');
  var problem = document.getElementById('rule-problem');
  var aside = form.querySelector('.preview');
  var countEl = document.getElementById('preview-count');
  var labelEl = document.getElementById('preview-label');
  var sampleEl = document.getElementById('preview-sample');
  var csrf = form.querySelector('input[name=csrf]').value;
  var url = form.getAttribute('data-preview-url');
  var segmentNames = [];
  try { segmentNames = JSON.parse(form.getAttribute('data-segments') || '[]'); } catch (e) { segmentNames = []; }

  Array.prototype.forEach.call(form.querySelectorAll('[data-js-show]'), function (el) { el.hidden = false; });

  // ------------------------------------------------------------ the server

  var latest = 0;
  function ask(body) {
    var mine = ++latest;
    body.csrf = csrf;
    aside.classList.add('busy');
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (json) { return { ok: response.ok, body: json }; });
    }, function () {
      return { ok: false, body: { error: { message: 'Cohort did not answer. Check the connection; the rule is kept.' } } };
    }).then(function (answer) {
      if (mine !== latest) return null; // a newer request is on its way
      aside.classList.remove('busy');
      if (answer.ok) {
        showPreview(answer.body);
        showProblem(null);
      } else {
        countEl.textContent = '–';
        labelEl.textContent = 'no preview while the rule has an error';
        sampleEl.textContent = '';
        showProblem(answer.body.error || { message: 'The rule could not be previewed.' });
      }
      return answer;
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function showPreview(p) {
    countEl.textContent = Number(p.count).toLocaleString('en');
    labelEl.textContent = p.count === 1 ? 'person matches now' : 'people match now';
    sampleEl.textContent = '';
    (p.sample || []).forEach(function (m) {
      var li = el('li');
      var a = el('a', null, m.email || m.user_id || m.id);
      a.href = m.href;
      li.appendChild(a);
      sampleEl.appendChild(li);
    });
    if (p.count > (p.sample || []).length) {
      sampleEl.appendChild(el('li', 'muted small', 'and ' + (p.count - p.sample.length).toLocaleString('en') + ' more'));
    }
  }

  // Where a parse error is: the line with the character underlined, and a
  // button that puts the cursor there.
  function showProblem(error) {
    problem.textContent = '';
    textarea.removeAttribute('aria-invalid');
    if (!error) return;
    var box = el('div', 'rule-problem');
    box.appendChild(el('p', 'field-error', error.message));
    if (error.mark) {
      var m = error.mark;
      var pre = el('pre', 'rule-mark');
      pre.setAttribute('aria-label', 'Line ' + m.line + ', column ' + m.column);
      pre.appendChild(el('span', 'ln', String(m.line)));
      pre.appendChild(document.createTextNode(m.before));
      pre.appendChild(el('mark', m.at_end ? 'at-end' : '', m.at));
      pre.appendChild(document.createTextNode(m.after));
      box.appendChild(pre);
      if (face === 'text') {
        var go = el('button', 'secondary small', 'Go to the error');
        go.type = 'button';
        go.addEventListener('click', function () { selectAt(m.line, m.column); });
        box.appendChild(go);
      }
      textarea.setAttribute('aria-invalid', 'true');
    }
    problem.appendChild(box);
  }

  function selectAt(line, column) {
    var lines = textarea.value.split('\n');
    var offset = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    offset += column - 1;
    textarea.focus();
    textarea.setSelectionRange(offset, Math.min(offset + 1, textarea.value.length));
  }

  // ------------------------------------------------------------ the faces

  var face = 'text';
  var tree = null;
  var timer = null;
  var synced = true; // the textarea holds the builder's rule

  function later(fn) {
    clearTimeout(timer);
    timer = setTimeout(fn, 300);
  }

  textarea.addEventListener('input', function () {
    later(function () { ask({ text: textarea.value }); });
  });

  var faceButtons = form.querySelectorAll('[data-face]');
  function setFace(name) {
    face = name;
    textPanel.hidden = name !== 'text';
    builder.hidden = name !== 'builder';
    Array.prototype.forEach.call(faceButtons, function (b) {
      b.setAttribute('aria-pressed', String(b.getAttribute('data-face') === name));
    });
  }

  Array.prototype.forEach.call(faceButtons, function (button) {
    button.addEventListener('click', function () {
      var wanted = button.getAttribute('data-face');
      if (wanted === face) return;
      clearTimeout(timer);
      if (wanted === 'builder') {
        ask({ text: textarea.value }).then(function (answer) {
          if (!answer || !answer.ok) return;
          tree = rootOf(fromAst(answer.body.ast));
          setFace('builder');
          render();
          var first = builder.querySelector('select, input, button');
          if (first) first.focus();
        });
      } else {
        syncText().then(function (ok) {
          if (!ok) return;
          setFace('text');
          textarea.focus();
        });
      }
    });
  });

  // The builder's rule, previewed, its canonical text put in the textarea.
  function syncText() {
    var ast;
    try { ast = toAst(tree); } catch (e) {
      showProblem({ message: e.message });
      return Promise.resolve(false);
    }
    return ask({ ast: ast }).then(function (answer) {
      if (!answer) return false;
      if (answer.ok) {
        textarea.value = answer.body.text;
        synced = true;
      }
      return answer.ok;
    });
  }

  function changed() {
    synced = false;
    later(syncText);
  }

  form.addEventListener('submit', function (event) {
    if (face !== 'builder' || synced) return;
    event.preventDefault();
    clearTimeout(timer);
    syncText().then(function (ok) { if (ok) form.submit(); });
  });

  // ------------------------------------------------------------ the model
  // A group: {group: 'and'|'or', not, items}; a row: {not, rule} where
  // rule is a leaf of the AST (docs/SEGMENTS.md), edited in place.

  function fromAst(rule) {
    if (rule.kind === 'and' || rule.kind === 'or') {
      return { group: rule.kind, not: false, items: rule.rules.map(fromAst) };
    }
    if (rule.kind === 'not') {
      var inner = fromAst(rule.rule);
      if (inner.not) return { group: 'and', not: true, items: [inner] };
      inner.not = true;
      return inner;
    }
    return { not: false, rule: JSON.parse(JSON.stringify(rule)) };
  }

  function rootOf(node) {
    return node.group && !node.not ? node : { group: 'and', not: false, items: [node] };
  }

  function toAst(node) {
    var rule;
    if (node.group) {
      if (!node.items.length) throw new Error('A group needs at least one condition: add one or remove the group.');
      var rules = node.items.map(toAst);
      rule = rules.length === 1 ? rules[0] : { kind: node.group, rules: rules };
    } else {
      rule = clean(node.rule);
    }
    return node.not ? { kind: 'not', rule: rule } : rule;
  }

  // A leaf without the optional parts left empty.
  function clean(leaf) {
    var out = JSON.parse(JSON.stringify(leaf));
    ['count', 'window', 'campaign'].forEach(function (k) {
      if (out[k] === null || out[k] === '' || out[k] === undefined) delete out[k];
    });
    if (out.filters && !out.filters.length) delete out.filters;
    return out;
  }

  var KINDS = [
    ['trait', 'Trait'],
    ['tag', 'Has tag'],
    ['metric', 'Orders and activity'],
    ['performed', 'Performed event'],
    ['last_performed', 'Last performed event'],
    ['email', 'Email engagement'],
    ['bought', 'Bought'],
    ['in_segment', 'In segment'],
    ['subscribed', 'Is subscribed'],
    ['unsubscribed', 'Has unsubscribed'],
    ['bounced', 'Email bounced'],
    ['email_exists', 'Has an email'],
    ['rfm', 'RFM score']
  ];

  var WITHIN_30 = { relation: 'within', amount: 30, unit: 'days' };

  function defaultLeaf(kind) {
    switch (kind) {
      case 'trait': return { kind: kind, path: ['country'], test: { test: 'compare', op: '=', value: '' } };
      case 'tag': return { kind: kind, tag: '' };
      case 'metric': return { kind: kind, metric: 'orders_count', test: { test: 'compare', op: '>=', value: 1 } };
      case 'performed': return { kind: kind, event: '' };
      case 'last_performed': return { kind: kind, event: '', window: copy(WITHIN_30) };
      case 'email': return { kind: kind, action: 'opened', window: copy(WITHIN_30) };
      case 'bought': return { kind: kind, item: 'product', value: '' };
      case 'in_segment': return { kind: kind, segment: segmentNames[0] || '' };
      case 'rfm': return { kind: kind, field: 'recency', op: '>=', value: 2 };
      default: return { kind: kind };
    }
  }

  function copy(v) { return JSON.parse(JSON.stringify(v)); }

  var METRICS = [
    ['orders_count', 'orders.count'], ['orders_total_spent', 'orders.total_spent'],
    ['orders_average_value', 'orders.average_value'], ['orders_first_at', 'orders.first_at'],
    ['orders_last_at', 'orders.last_at'], ['last_seen', 'last_seen']
  ];
  var TIME_METRICS = ['orders_first_at', 'orders_last_at', 'last_seen'];
  var OPS = ['=', '!=', '<', '<=', '>', '>='];
  var UNITS = ['hours', 'days', 'weeks', 'months', 'years'];

  // A literal as typed: "quoted" is a string, 12.5 a number, true/false a
  // boolean, anything else a string.
  function literal(text) {
    var t = text.trim();
    if (/^".*"$/.test(t)) { try { return JSON.parse(t); } catch (e) { return t; } }
    if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
    if (t === 'true') return true;
    if (t === 'false') return false;
    return text;
  }
  function literalText(v) {
    if (typeof v === 'string') return /^(-?\d+(\.\d+)?|true|false)$/.test(v.trim()) ? JSON.stringify(v) : v;
    return v === undefined || v === null ? '' : String(v);
  }

  // ------------------------------------------------------------ the view

  var counter = 0;

  function select(options, value, name, onChange) {
    var s = el('select');
    s.setAttribute('aria-label', name);
    options.forEach(function (o) {
      var pair = Array.isArray(o) ? o : [o, o];
      var opt = el('option', null, pair[1]);
      opt.value = pair[0];
      if (String(pair[0]) === String(value)) opt.selected = true;
      s.appendChild(opt);
    });
    s.addEventListener('change', function () { onChange(s.value); });
    return s;
  }

  function input(type, value, name, onInput, placeholder) {
    var i = el('input');
    i.type = type;
    i.value = value === undefined || value === null ? '' : value;
    i.setAttribute('aria-label', name);
    if (placeholder) i.placeholder = placeholder;
    if (type === 'number') { i.min = '0'; i.step = '1'; i.inputMode = 'numeric'; }
    i.addEventListener('input', function () { onInput(i.value); changed(); });
    return i;
  }

  function button(text, className, onClick, name) {
    var b = el('button', className, text);
    b.type = 'button';
    if (name) b.setAttribute('aria-label', name);
    b.addEventListener('click', onClick);
    return b;
  }

  function check(text, checked, onChange) {
    var l = el('label', 'check');
    var c = el('input');
    c.type = 'checkbox';
    c.checked = checked;
    c.addEventListener('change', function () { onChange(c.checked); changed(); });
    l.appendChild(c);
    l.appendChild(document.createTextNode(' ' + text));
    return l;
  }

  // Re-draws the builder; `focus` is a function finding what gets focus.
  function render(focus) {
    builder.textContent = '';
    counter = 0;
    builder.appendChild(groupView(tree, null));
    if (focus) { var f = focus(); if (f) f.focus(); }
  }

  // After a change of shape: re-draw, then focus the first match of
  // `focusSelector`, or with `last`, the first control of its last match.
  function structural(focusSelector, last) {
    changed();
    render(function () {
      if (!focusSelector) return null;
      if (!last) return builder.querySelector(focusSelector);
      var all = builder.querySelectorAll(focusSelector);
      return all.length ? all[all.length - 1].querySelector('select') : null;
    });
  }

  function groupView(group, parent) {
    var box = el('div', 'b-group');
    box.setAttribute('role', 'group');
    var id = 'g' + (++counter);
    box.setAttribute('data-node', id);
    var head = el('div', 'b-group-head');
    head.appendChild(select([['and', 'All of these'], ['or', 'Any of these']], group.group, 'Match', function (v) {
      group.group = v;
      structural('[data-node="' + id + '"] > .b-group-head select');
    }));
    head.appendChild(check('not (exclude who matches)', group.not, function (v) { group.not = v; }));
    if (parent) {
      head.appendChild(button('Remove group', 'secondary small b-remove', function () {
        parent.items.splice(parent.items.indexOf(group), 1);
        structural('[data-add-row]');
      }));
    }
    box.setAttribute('aria-label', group.group === 'and' ? 'All of these conditions' : 'Any of these conditions');
    box.appendChild(head);
    group.items.forEach(function (item, i) {
      if (i > 0) box.appendChild(el('div', 'b-join', group.group));
      box.appendChild(item.group ? groupView(item, group) : rowView(item, group, i));
    });
    var actions = el('div', 'b-actions');
    var add = button('+ Condition', 'secondary small', function () {
      group.items.push({ not: false, rule: defaultLeaf('tag') });
      structural('[data-node="' + id + '"] > .b-row', true);
    });
    add.setAttribute('data-add-row', '');
    actions.appendChild(add);
    actions.appendChild(button('+ Group', 'secondary small', function () {
      group.items.push({ group: group.group === 'and' ? 'or' : 'and', not: false, items: [{ not: false, rule: defaultLeaf('tag') }] });
      structural('[data-node="' + id + '"] > .b-group', true);
    }));
    box.appendChild(actions);
    return box;
  }

  function rowView(row, group, index) {
    var r = el('div', 'b-row');
    var n = index + 1;
    var name = function (what) { return 'Condition ' + n + ': ' + what; };
    var leaf = row.rule;
    r.appendChild(check('not', row.not, function (v) { row.not = v; }));
    var known = KINDS.some(function (k) { return k[0] === leaf.kind; });
    r.appendChild(select(known ? KINDS : KINDS.concat([[leaf.kind, leaf.kind]]), leaf.kind, name('kind'), function (v) {
      row.rule = defaultLeaf(v);
      structural('[data-row="' + id + '"] select');
    }));
    var id = 'r' + (++counter);
    r.setAttribute('data-row', id);
    fields(r, leaf, name);
    r.appendChild(button('Remove', 'secondary small b-remove', function () {
      group.items.splice(group.items.indexOf(row), 1);
      structural('[data-add-row]');
    }, name('remove')));
    return r;
  }

  function fields(r, leaf, name) {
    switch (leaf.kind) {
      case 'trait':
        r.appendChild(input('text', leaf.path.join('.'), name('trait name'), function (v) { leaf.path = v.split('.'); }, 'country'));
        valueTest(r, leaf, 'test', name);
        break;
      case 'tag':
        r.appendChild(input('text', leaf.tag, name('tag'), function (v) { leaf.tag = v; }, 'vip'));
        break;
      case 'metric':
        r.appendChild(select(METRICS, leaf.metric, name('metric'), function (v) {
          var time = TIME_METRICS.indexOf(v) >= 0;
          var wasTime = TIME_METRICS.indexOf(leaf.metric) >= 0;
          leaf.metric = v;
          if (time !== wasTime) {
            leaf.test = time ? { test: 'window', window: copy(WITHIN_30) } : { test: 'compare', op: '>=', value: 1 };
          }
          structural();
        }));
        if (leaf.test.test === 'window') {
          windowFields(r, leaf.test, false, name);
        } else {
          r.appendChild(select(OPS, leaf.test.op, name('comparison'), function (v) { leaf.test.op = v; changed(); }));
          r.appendChild(input('text', String(leaf.test.value), name('number'), function (v) { leaf.test.value = v.trim(); }, '2'));
        }
        break;
      case 'performed':
      case 'last_performed':
        r.appendChild(input('text', leaf.event, name('event name'), function (v) { leaf.event = v; }, 'Order Completed'));
        if (leaf.kind === 'performed') countFields(r, leaf, name);
        windowFields(r, leaf, leaf.kind === 'performed', name);
        filterFields(r, leaf, name);
        break;
      case 'email':
        r.appendChild(select([['received', 'received'], ['opened', 'opened'], ['clicked', 'clicked']], leaf.action, name('email action'), function (v) { leaf.action = v; changed(); }));
        r.appendChild(input('text', leaf.campaign || '', name('campaign (optional)'), function (v) { leaf.campaign = v; }, 'any campaign'));
        countFields(r, leaf, name);
        windowFields(r, leaf, true, name);
        break;
      case 'bought':
        r.appendChild(select([['product', 'product (id or SKU)'], ['category', 'category']], leaf.item, name('product or category'), function (v) { leaf.item = v; changed(); }));
        r.appendChild(input('text', leaf.value, name('product or category'), function (v) { leaf.value = v; }, 'SKU-123'));
        windowFields(r, leaf, true, name);
        break;
      case 'in_segment':
        if (segmentNames.length) {
          var names = segmentNames.indexOf(leaf.segment) >= 0 || !leaf.segment ? segmentNames : segmentNames.concat([leaf.segment]);
          r.appendChild(select(names, leaf.segment, name('segment'), function (v) { leaf.segment = v; changed(); }));
        } else {
          r.appendChild(input('text', leaf.segment, name('segment name'), function (v) { leaf.segment = v; }, 'VIP'));
        }
        break;
      case 'rfm':
        r.appendChild(select([['group', 'group'], ['recency', 'recency'], ['frequency', 'frequency'], ['monetary', 'monetary']], leaf.field, name('RFM field'), function (v) {
          leaf.field = v;
          if (v === 'group') { leaf.op = '='; leaf.value = ''; } else if (typeof leaf.value !== 'number') { leaf.value = 2; }
          structural();
        }));
        r.appendChild(select(leaf.field === 'group' ? ['=', '!='] : OPS, leaf.op, name('comparison'), function (v) { leaf.op = v; changed(); }));
        r.appendChild(input('text', literalText(leaf.value), name('value'), function (v) { leaf.value = leaf.field === 'group' ? v : literal(v); }, leaf.field === 'group' ? 'At Risk' : '2'));
        break;
      default:
        break;
    }
  }

  // A trait's or a property's test: a comparison, in a list, contains, exists.
  function valueTest(r, owner, key, name) {
    var t = owner[key];
    var mode = t.test === 'compare' ? t.op : t.test;
    r.appendChild(select(OPS.concat([['in', 'in (comma-separated)'], ['contains', 'contains'], ['exists', 'exists']]), mode, name('test'), function (v) {
      var old = owner[key];
      var text = old.test === 'compare' ? literalText(old.value) : old.test === 'in' ? old.values.map(literalText).join(', ') : old.test === 'contains' ? old.text : '';
      if (v === 'exists') owner[key] = { test: 'exists' };
      else if (v === 'contains') owner[key] = { test: 'contains', text: text };
      else if (v === 'in') owner[key] = { test: 'in', values: text ? text.split(',').map(literal) : [] };
      else owner[key] = { test: 'compare', op: v, value: literal(text) };
      structural();
    }));
    if (t.test === 'exists') return;
    var shown = t.test === 'compare' ? literalText(t.value) : t.test === 'in' ? t.values.map(literalText).join(', ') : t.text;
    r.appendChild(input('text', shown, name('value'), function (v) {
      var now = owner[key];
      if (now.test === 'compare') now.value = literal(v);
      else if (now.test === 'in') now.values = v.trim() ? v.split(',').map(function (x) { return literal(x.trim()); }) : [];
      else now.text = v;
    }, t.test === 'in' ? 'gold, silver' : 'DE'));
  }

  function countFields(r, leaf, name) {
    var c = leaf.count;
    r.appendChild(select([['', 'any number of times'], ['>=', 'at least'], ['<=', 'at most'], ['=', 'exactly'], ['<', 'fewer than'], ['>', 'more than']], c ? c.op : '', name('how often'), function (v) {
      leaf.count = v ? { op: v, times: c ? c.times : 1 } : null;
      structural();
    }));
    if (c) {
      r.appendChild(input('number', c.times, name('times'), function (v) { leaf.count.times = parseInt(v, 10) || 0; }));
      r.appendChild(el('span', 'small', 'times'));
    }
  }

  // A window: within N units, before N units ago; optional where `optional`.
  function windowFields(r, owner, optional, name) {
    var w = owner.window;
    var options = [['within', 'within'], ['before', 'before (… ago)']];
    if (optional) options.unshift(['', 'at any time']);
    r.appendChild(select(options, w ? w.relation : '', name('when'), function (v) {
      owner.window = v ? { relation: v, amount: w ? w.amount : 30, unit: w ? w.unit : 'days' } : null;
      structural();
    }));
    if (w) {
      r.appendChild(input('number', w.amount, name('how long'), function (v) { owner.window.amount = parseInt(v, 10) || 0; }));
      r.appendChild(select(UNITS, w.unit, name('unit'), function (v) { owner.window.unit = v; changed(); }));
      if (w.relation === 'before') r.appendChild(el('span', 'small', 'ago'));
    }
  }

  function filterFields(r, leaf, name) {
    var box = el('div', 'b-filters');
    (leaf.filters || []).forEach(function (f, i) {
      var line = el('div', 'b-filter');
      line.appendChild(el('span', 'small', i === 0 ? 'where properties.' : 'and properties.'));
      line.appendChild(input('text', f.path.join('.'), name('property ' + (i + 1)), function (v) { f.path = v.split('.'); }, 'total'));
      valueTest(line, f, 'test', function (what) { return name('property ' + (i + 1) + ' ' + what); });
      line.appendChild(button('Remove', 'secondary small', function () {
        leaf.filters.splice(i, 1);
        structural();
      }, name('remove property ' + (i + 1))));
      box.appendChild(line);
    });
    box.appendChild(button('+ where', 'secondary small', function () {
      leaf.filters = leaf.filters || [];
      leaf.filters.push({ path: [''], test: { test: 'compare', op: '=', value: '' } });
      structural();
    }, name('add a property filter')));
    r.appendChild(box);
  }

  // The count of the rule as the page shows it.
  if (textarea.value.trim()) ask({ text: textarea.value });
})();
