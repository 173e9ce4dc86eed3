/*! Cohort JS SDK __COHORT_VERSION__ | first-party, consent-aware tracking | AGPL-3.0-only */
// The source of /sdk/v1/cohort.js. Plain modern JavaScript with no runtime
// dependencies; crates/cohort-api/build.rs strips comments and indentation
// and embeds the result in the binary. Read docs/SDK.md for the API, the
// snippet and the storage and consent rules; the notes here are about how.
//
// Keep the source friendly to that stripper: no `<!--` or `-->` anywhere, and
// a regular expression literal only where an expression starts (after
// `( , = : [ ! & | ? { } ;` or `return`), which is where one is written anyway.
;(function (w, d, nav) {
  'use strict'
  var pre = w.cohort
  if (pre && pre.loaded) return
  var VERSION = '__COHORT_VERSION__'
  var P = 'cohort_' // prefix of every cookie and localStorage key
  var YEAR = 31536000 // seconds the anonymous id cookie lives
  var MAX_QUEUE = 200 // messages kept for delivery, oldest dropped first
  var MAX_BODY = 60000 // bytes per request (keepalive and beacons cap at 64 KiB)
  var log = function () {}
  var warn = function (m) { console.warn('[cohort] ' + m) }

  // Configuration: the snippet's `cohort.config`, or `window.cohortConfig`
  // set by an inline script (what the WordPress plugin prints).
  var cfg = Object.assign({}, w.cohortConfig, pre && pre.config)
  var writeKey = cfg.writeKey
  if (!writeKey) return warn('no writeKey in the configuration: nothing will be sent')
  var script = d.currentScript
  var host = String(cfg.apiHost || (script && script.src ? new URL(script.src).origin : location.origin))
  if (!/^https?:\/\//.test(host)) host = 'https://' + host
  host = host.replace(/\/+$/, '').replace(/\/v1$/, '')
  var required = !!cfg.consentRequired
  var category = cfg.consentCategory || 'marketing' // the WordPress Consent API category
  var search = new URLSearchParams(location.search)

  // ---- storage: the anonymous id in a first-party cookie mirrored in
  // localStorage (either one survives the loss of the other); everything
  // else in localStorage. Every access tolerates a browser that refuses.
  function lsGet(k) {
    try { return w.localStorage.getItem(P + k) } catch (e) { return null }
  }
  function lsSet(k, v) {
    try { v == null ? w.localStorage.removeItem(P + k) : w.localStorage.setItem(P + k, v) } catch (e) {}
  }
  function cookieGet(k) {
    var m = d.cookie.match(new RegExp('(?:^|; )' + P + k + '=([^;]*)'))
    return m ? decodeURIComponent(m[1]) : null
  }
  function cookieSet(k, v) {
    try {
      d.cookie = P + k + '=' + (v == null ? '' : encodeURIComponent(v)) + '; path=/; SameSite=Lax; max-age=' +
        (v == null ? 0 : YEAR) + (location.protocol == 'https:' ? '; Secure' : '')
    } catch (e) {}
  }
  function uuid() {
    var b = crypto.getRandomValues(new Uint8Array(16)), h = ''
    b[6] = b[6] & 15 | 64
    b[8] = b[8] & 63 | 128
    for (var i = 0; i < 16; i++) h += (i == 4 || i == 6 || i == 8 || i == 10 ? '-' : '') + (b[i] + 256).toString(16).slice(1)
    return h
  }
  function parse(s) {
    try { return JSON.parse(s) } catch (e) { return null }
  }

  // ---- identity and consent. `ids` lives in memory and reaches the
  // browser's storage only while consent allows it (see persist()).
  //   aid: anonymous id, uid: user id, ef: Everflow transaction id,
  //   seen: what the configured user was last identified with.
  var ids = {}
  var consent // 'granted' | 'pending' (held in memory) | 'denied' (dropped)
  var categories = null // categories given to consent.grant(), sent as context.consent
  var record = parse(lsGet('consent')) // {s: 'granted'|'denied', c: [...]}
  var wpConsent = function () { return typeof w.wp_has_consent == 'function' }
  function load() {
    ids = { aid: cookieGet('aid') || lsGet('aid'), uid: lsGet('uid'), ef: lsGet('ef'), seen: lsGet('seen') }
    if (!ids.aid) ids.aid = uuid()
  }
  function persist() {
    if (consent != 'granted') return
    cookieSet('aid', ids.aid)
    for (var k in ids) lsSet(k, ids[k])
  }
  function forget() {
    cookieSet('aid', null)
    ;['aid', 'uid', 'ef', 'seen', 'queue', 'consent'].forEach(function (k) { lsSet(k, null) })
  }
  if (record && record.s == 'denied') consent = 'denied'
  else if (record && record.s == 'granted') { consent = 'granted'; categories = record.c || null }
  else consent = required ? 'pending' : 'granted'
  if (required && wpConsent()) {
    // The Consent API, when the page has it, is the authority.
    if (w.wp_has_consent(category)) consent = 'granted'
    else {
      forget()
      consent = 'pending'
    }
  }
  load()

  // ---- messages (Segment spec), built at call time with the page's context
  function context(options) {
    var c = {
      page: page(),
      userAgent: nav.userAgent,
      locale: nav.language,
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      library: { name: 'cohort.js', version: VERSION }
    }
    var campaign = {}, any = false
    search.forEach(function (v, k) {
      if (k.indexOf('utm_') == 0) {
        campaign[k == 'utm_campaign' ? 'name' : k.slice(4)] = v
        any = true
      }
    })
    if (any) c.campaign = campaign
    if (ids.ef) c.referrer = { type: 'everflow', id: ids.ef }
    if (cfg.woocommerce) c.woocommerce = cfg.woocommerce
    if (categories) c.consent = consentContext()
    return Object.assign(c, options && options.context)
  }
  function consentContext() {
    var c = { categoryPreferences: {} }
    categories.forEach(function (k) { c.categoryPreferences[k] = true })
    return c
  }
  function page() {
    return {
      path: location.pathname,
      referrer: d.referrer,
      search: location.search,
      title: d.title,
      url: location.href.split('#')[0]
    }
  }
  function message(type, fields, options) {
    var m = {
      type: type,
      messageId: uuid(),
      anonymousId: ids.aid,
      timestamp: new Date().toISOString(),
      context: context(options)
    }
    if (ids.uid) m.userId = ids.uid
    m = Object.assign(m, fields)
    log(type, m)
    if (consent == 'pending') {
      if (held.push(m) > MAX_QUEUE) held.shift()
    }
    else if (consent == 'granted') {
      outbox.push(m)
      save()
      schedule(250)
    }
  }
  function obj(v) {
    return v && typeof v == 'object' && !Array.isArray(v) ? v : {}
  }

  // ---- delivery: POST /v1/batch as text/plain (no CORS preflight) with the
  // write key in the body; one request at a time so that no message is ever
  // in two requests at once. Everything not yet acknowledged is mirrored in
  // localStorage (bounded) and retried with backoff, when the browser comes
  // back online, and on the next page; the server drops a messageId it has
  // already stored, so a retry never duplicates.
  var held = [] // built while consent is pending: memory only
  var stored = parse(lsGet('queue'))
  var outbox = consent == 'granted' && Array.isArray(stored) ? stored.filter(function (m) { return m && m.messageId }) : []
  var done = {} // messageIds acknowledged (or refused for good) on this page
  var inflight = {}
  var sending = false, timer = 0, failures = 0, solo = 0
  function save() {
    if (outbox.length > MAX_QUEUE) {
      warn('delivery queue full: dropping ' + (outbox.length - MAX_QUEUE) + ' oldest message(s)')
      outbox = outbox.slice(-MAX_QUEUE)
    }
    if (consent != 'granted') return
    // Merge with what other tabs keep there: theirs stay until they (or the
    // next page) deliver them.
    var have = {}, all = outbox.slice()
    all.forEach(function (m) { have[m.messageId] = 1 })
    var other = parse(lsGet('queue'))
    if (Array.isArray(other)) other.forEach(function (m) {
      if (m && !have[m.messageId] && !done[m.messageId]) all.push(m)
    })
    all = all.slice(-MAX_QUEUE)
    lsSet('queue', all.length ? JSON.stringify(all) : null)
  }
  function schedule(delay) {
    if (!timer) timer = setTimeout(flush, delay)
  }
  function take() {
    var batch = [], size = 0
    for (var i = 0; i < outbox.length; i++) {
      var m = outbox[i]
      if (inflight[m.messageId]) continue
      var n = JSON.stringify(m).length
      if (batch.length && (size + n > MAX_BODY || batch.length >= (solo ? 1 : 100))) break
      batch.push(m)
      size += n
    }
    return batch
  }
  function body(batch) {
    var sentAt = new Date().toISOString()
    batch.forEach(function (m) { m.sentAt = sentAt })
    return JSON.stringify({ batch: batch, sentAt: sentAt, writeKey: writeKey })
  }
  function settle(batch) {
    batch.forEach(function (m) { done[m.messageId] = 1 })
    outbox = outbox.filter(function (m) { return !done[m.messageId] })
    save()
  }
  function flush() {
    clearTimeout(timer)
    timer = 0
    if (sending || consent != 'granted') return
    var batch = take()
    if (!batch.length) return
    sending = true
    batch.forEach(function (m) { inflight[m.messageId] = 1 })
    var text = body(batch)
    var release = function () {
      sending = false
      batch.forEach(function (m) { delete inflight[m.messageId] })
    }
    new Promise(function (ok) {
      ok(fetch(host + '/v1/batch', {
        method: 'POST',
        body: text,
        headers: { 'Content-Type': 'text/plain' },
        credentials: 'omit',
        keepalive: new Blob([text]).size < MAX_BODY
      }))
    }).then(function (r) {
      release()
      var s = r.status
      if (s >= 500 || s == 429 || s == 408) throw new Error('HTTP ' + s)
      if (s == 400 && batch.length > 1) {
        // One bad message refuses the whole batch: resend one by one so
        // only the bad one is dropped.
        solo = batch.length
        return schedule(0)
      }
      if (solo) solo--
      if (!r.ok) warn('Cohort refused ' + batch.length + ' message(s): HTTP ' + s + '; dropped')
      log('sent', batch.length, s)
      failures = 0
      settle(batch)
      if (outbox.length) schedule(0)
    }).catch(function (e) {
      if (sending) release()
      failures++
      var delay = Math.min(1000 * Math.pow(2, failures), 60000) * (0.5 + Math.random() / 2)
      log('send failed (' + e.message + '), retrying in ' + Math.round(delay) + ' ms')
      schedule(delay)
    })
  }
  // On page hide, whatever is not in flight goes with sendBeacon; it stays
  // in localStorage for the next page in case the beacon is lost.
  function beacon() {
    if (consent != 'granted' || !nav.sendBeacon) return
    for (var batch; (batch = take()).length;) {
      if (!nav.sendBeacon(host + '/v1/batch', new Blob([body(batch)], { type: 'text/plain' }))) return
      batch.forEach(function (m) { inflight[m.messageId] = 1 })
      log('beacon', batch.length)
    }
  }
  w.addEventListener('pagehide', beacon)
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState == 'hidden') flush()
  })
  w.addEventListener('online', function () {
    failures = 0
    flush()
  })

  // ---- consent
  function grant(list) {
    categories = Array.isArray(list) ? list : null
    consent = 'granted'
    held.forEach(function (m) {
      if (categories && !m.context.consent) m.context.consent = consentContext()
    })
    outbox = outbox.concat(held)
    held = []
    lsSet('consent', JSON.stringify({ s: 'granted', c: categories }))
    persist()
    save()
    schedule(0)
    log('consent granted', categories)
  }
  function revoke() {
    consent = 'denied'
    held = []
    outbox = []
    categories = null
    forget()
    if (!required) lsSet('consent', JSON.stringify({ s: 'denied' }))
    ids = { aid: uuid(), ef: ids.ef, uid: ids.uid }
    log('consent revoked')
  }
  d.addEventListener('wp_listen_for_consent_change', function (e) {
    var v = e.detail && e.detail[category]
    if (v == 'allow') grant()
    else if (v == 'deny') revoke()
  })

  // ---- the public API
  var readyQueue = []
  var api = {
    loaded: true,
    VERSION: VERSION,
    page: function (cat, name, properties, options) {
      if (cat && typeof cat == 'object') { options = name; properties = cat; name = cat = null }
      else if (name && typeof name == 'object') { options = properties; properties = name; name = cat; cat = null }
      else if (name == null) { name = cat; cat = null }
      var p = page(), f = { properties: Object.assign(p, obj(properties)) }
      if (name != null) f.name = String(name)
      if (cat != null) f.category = f.properties.category = String(cat)
      message('page', f, options)
    },
    track: function (event, properties, options) {
      if (!event || typeof event != 'string') return warn('track needs an event name')
      message('track', { event: event, properties: obj(properties) }, options)
    },
    identify: function (userId, traits, options) {
      if (userId && typeof userId == 'object') { options = traits; traits = userId; userId = null }
      if (userId != null && userId !== '') {
        ids.uid = String(userId)
        persist()
      }
      traits = Object.assign({}, obj(traits))
      if (ids.ef) traits.ef_transaction_id = ids.ef
      message('identify', { traits: traits }, options)
    },
    alias: function (userId, previousId, options) {
      if (userId == null || userId === '') return warn('alias needs a userId')
      message('alias', { userId: String(userId), previousId: String(previousId || ids.uid || ids.aid) }, options)
    },
    group: function (groupId, traits, options) {
      if (groupId == null || groupId === '') return warn('group needs a groupId')
      message('group', { groupId: String(groupId), traits: obj(traits) }, options)
    },
    reset: function () {
      ids = { aid: uuid() }
      persist()
      log('reset')
    },
    ready: function (cb) {
      if (typeof cb != 'function') return
      if (readyQueue) readyQueue.push(cb)
      else setTimeout(function () { cb(api) })
    },
    debug: function (on) {
      log = on === false ? function () {} : console.log.bind(console, '[cohort]')
    },
    push: function (call) {
      var name = call && call[0], fn = name == 'consent.grant' ? grant : name == 'consent.revoke' ? revoke : api[name]
      if (typeof fn != 'function' || name == 'push') return warn('unknown call ' + name)
      fn.apply(api, [].slice.call(call, 1))
    }
  }
  // A failure inside the SDK must never break the page that calls it.
  function safe(k, f) {
    return function () {
      try { f.apply(api, arguments) } catch (e) { warn(k + ' failed: ' + e) }
      return api
    }
  }
  ;['page', 'track', 'identify', 'alias', 'group', 'reset', 'ready', 'debug', 'push'].forEach(function (k) {
    api[k] = safe(k, api[k])
  })
  api.consent = { grant: safe('consent.grant', grant), revoke: safe('consent.revoke', revoke) }
  if (cfg.debug) api.debug(true)

  // ---- start: Everflow capture, the configured user, the page view, then
  // the calls queued before this script arrived, in the order they were made.
  var ef = search.get('_ef_transaction_id')
  if (ef) ids.ef = ef
  persist()
  var user = cfg.user
  if (user && user.id != null && user.id !== '') {
    var seen = [user.id, user.email, ids.ef].join('|')
    if (seen != ids.seen || String(user.id) != ids.uid) {
      api.identify(user.id, user.email ? { email: user.email } : {})
      ids.seen = seen
      persist()
    }
  } else if (user === null && ids.seen) {
    // The site says nobody is signed in (null, not absent) but this browser
    // was identified as its signed-in user: they signed out. Forget them, so
    // the next visitor on this device is not taken for them.
    api.reset()
  }
  if (cfg.page !== false) api.page()
  w.cohort = api
  if (Array.isArray(pre)) {
    pre.forEach(api.push)
    pre.push = api.push // for code that kept a reference to the stub
  }
  var ready = readyQueue
  readyQueue = null
  ready.forEach(function (cb) {
    try { cb(api) } catch (e) { warn('ready callback failed: ' + e) }
  })
  if (consent == 'pending' && required && !wpConsent()) {
    // The Consent API may arrive after this script: ask it again once the page has loaded.
    w.addEventListener('load', function () {
      if (consent == 'pending' && wpConsent() && w.wp_has_consent(category)) grant()
    })
  }
  if (outbox.length) schedule(0)
})(window, document, navigator)
