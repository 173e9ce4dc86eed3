#!/usr/bin/env node
// Drive Cohort's own JS SDK (served by Cohort at /sdk/v1/cohort.js) in Debian's
// Chromium, on a page of another origin, and report what happened.
//
// Usage: node sdk_browser.mjs COHORT_BASE_URL WRITE_KEY SCENARIO
//   SCENARIO: basics | consent | wp-consent | offline
//   env CHROMIUM (default /usr/bin/chromium), SDK_BROWSER_TIMEOUT_MS (default 60000)
//
// A static server on 127.0.0.1:<random> serves the test pages. The "basics" and
// "offline" pages embed the snippet exactly as docs/SDK.md gives it (between its
// cohort-snippet markers, with this run's config); the consent pages use the
// WordPress plugin's form: an inline `window.cohortConfig = {…}` and an async
// <script src="{cohort}/sdk/v1/cohort.js">.
//
// Every request from the browser to COHORT_BASE_URL/v1/… is recorded from the
// network (playwright's request/response/requestfailed events): its page, the
// messages in its body, and its outcome. Cookies come from the browser context,
// storage from the page.
//
// stdout: exactly one JSON document
//   {"scenario", "page": <url>, "expected": {…what the page passed…},
//    "requests": [{"page": n, "path", "status"|"failure", "messageIds": [...]}],
//    "sent": [message as in the last body Cohort answered 200, one per messageId],
//    "observations": {…scenario-specific facts…}}
// Logs go to stderr. The program judges nothing beyond waiting for the
// deliveries it expects (failing after the timeout): the cargo test asserts.

import { createServer } from 'node:http'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { chromium } from 'playwright-core'

const log = (...a) => console.error('sdk_browser:', ...a)

const [cohortArg, writeKey, scenario, ...extra] = process.argv.slice(2)
const SCENARIOS = ['basics', 'consent', 'wp-consent', 'offline']
if (!cohortArg || !writeKey || !SCENARIOS.includes(scenario) || extra.length) {
  log(`usage: sdk_browser.mjs COHORT_BASE_URL WRITE_KEY ${SCENARIOS.join('|')}`)
  process.exit(2)
}
const cohortBase = cohortArg.replace(/\/+$/, '')
const cohortOrigin = new URL(cohortBase).origin
const timeoutMs = Number(process.env.SDK_BROWSER_TIMEOUT_MS || 60000)
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'
// How long "nothing happens" is watched for (consent gating). Not a speed
// assertion: the SDK sends within 250 ms when it may, so this is generous.
const QUIET_MS = 2500

const here = path.dirname(fileURLToPath(import.meta.url))
const docs = await readFile(path.join(here, '..', '..', 'docs', 'SDK.md'), 'utf8')
const snippetBlock = docs.match(/<!-- cohort-snippet:begin -->\s*```html\n([\s\S]*?)```\s*<!-- cohort-snippet:end -->/)
if (!snippetBlock) throw new Error('docs/SDK.md has no cohort-snippet block')
const configInSnippet = /window\.cohortConfig = \{[\s\S]*?\n\};?\n/
if (!configInSnippet.test(snippetBlock[1])) throw new Error('the snippet in docs/SDK.md does not set window.cohortConfig = {…}')

const run = Math.random().toString(16).slice(2, 12)
const json = (v) => JSON.stringify(v).replace(/</g, '\\u003c')

// The documented snippet with this run's configuration in place of the example's.
const snippetPage = (title, config, after = '') => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
${snippetBlock[1].replace(configInSnippet, `window.cohortConfig = ${json(config)};\n`)}
${after}
</head><body><h1>${title}</h1></body></html>
`
// What the WordPress plugin prints: inline config, then the SDK, async.
const pluginPage = (title, config, before = '') => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
${before}
<script>window.cohortConfig = ${json(config)};</script>
<script>(window.cohort = window.cohort || []).push(['track', 'Before Load', {step: 1}]);</script>
<script async src="${cohortBase}/sdk/v1/cohort.js"></script>
</head><body><h1>${title}</h1></body></html>
`
// A stand-in for the WP Consent API plugin's script in the page: the same
// globals (wp_consent_type, wp_has_consent, wp_set_consent), its cookie per
// category and its document event with {category: 'allow'|'deny'} as detail.
const wpConsentApi = `<script>
window.wp_consent_type = 'optin';
window.wp_has_consent = function (category) {
  return document.cookie.split('; ').indexOf('wp_consent_' + category + '=allow') >= 0;
};
window.wp_set_consent = function (category, value) {
  document.cookie = 'wp_consent_' + category + '=' + value + '; path=/';
  var detail = {}; detail[category] = value;
  document.dispatchEvent(new CustomEvent('wp_listen_for_consent_change', { detail: detail }));
};
</script>`

// ---------- scenario pages ----------
const user = { id: 4242, email: `Jane.Doe+${run}@Example.com` }
const woocommerce = { customer_id: 4242, cart_hash: `cart-${run}`, currency: 'EUR' }
const efId = `ef${run}`
const productProps = { product_id: 'prod_1', sku: 'SKU-1', name: 'Blue T-Shirt', price: 19, currency: 'EUR' }
const orderProps = {
  order_id: `ord-${run}`,
  total: 27.5,
  revenue: 22.5,
  shipping: 3,
  tax: 2,
  discount: 2.5,
  coupon: 'SPRING10',
  currency: 'EUR',
  products: [
    { product_id: 'prod_1', sku: 'SKU-1', name: 'Blue T-Shirt', price: 19, quantity: 1 },
    { product_id: 'prod_2', sku: 'SKU-2', name: 'Sticker Pack', price: 1.75, quantity: 2 },
  ],
}
const pages = {
  basics: {
    path: '/shop/product.html',
    query: `?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale&utm_content=hero&_ef_transaction_id=${efId}`,
    html: () =>
      snippetPage(
        'Blue T-Shirt',
        { writeKey, apiHost: cohortBase, consentRequired: false, debug: true, user, woocommerce },
        `<script>cohort.track('Product Viewed', ${json(productProps)});</script>`
      ),
  },
  consent: {
    path: '/shop/consent.html',
    query: '',
    html: () => pluginPage('Consent', { writeKey, apiHost: cohortBase, consentRequired: true, debug: true, user, woocommerce: null }),
  },
  'wp-consent': {
    path: '/shop/wp-consent.html',
    query: '',
    html: () =>
      pluginPage('WP Consent API', { writeKey, apiHost: cohortBase, consentRequired: true, debug: true, user: null, woocommerce: null }, wpConsentApi),
  },
  offline: {
    path: '/shop/offline.html',
    query: '',
    html: () => snippetPage('Offline', { writeKey, apiHost: cohortBase, consentRequired: false, debug: true, user: null, woocommerce: null }),
  },
}
const current = pages[scenario]

// ---------- static server ----------
const staticServer = createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === current.path) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
    res.end(current.html())
    return
  }
  res.writeHead(url.pathname === '/favicon.ico' ? 204 : 404)
  res.end()
})
await new Promise((resolve) => staticServer.listen(0, '127.0.0.1', resolve))
const pageUrl = `http://127.0.0.1:${staticServer.address().port}${current.path}${current.query}`

// ---------- network bookkeeping ----------
const requests = [] // every request to Cohort's /v1/: {page, path, messages, status?, failure?}
const sdkLoads = [] // requests for the SDK file itself
const pageIndex = new Map()
const pageErrors = []
function bodyMessages(r) {
  try {
    const body = JSON.parse(r.postData() || 'null')
    return Array.isArray(body?.batch) ? body.batch : body?.messageId ? [body] : []
  } catch {
    return []
  }
}
function watch(context) {
  context.on('request', (r) => {
    const u = new URL(r.url())
    if (u.origin !== cohortOrigin || r.method() === 'OPTIONS') return
    let page = -1
    try {
      page = pageIndex.get(r.frame().page()) ?? -1
    } catch {}
    if (u.pathname.startsWith('/sdk/')) {
      sdkLoads.push({ page, path: u.pathname })
      return
    }
    const rec = { page, path: u.pathname, method: r.method(), messages: bodyMessages(r) }
    requests.push(rec)
    r.__rec = rec
  })
  context.on('response', (resp) => {
    const rec = resp.request().__rec
    if (rec) rec.status = resp.status()
  })
  context.on('requestfailed', (r) => {
    const rec = r.__rec
    if (rec) rec.failure = r.failure()?.errorText || 'failed'
  })
}
async function open(context) {
  const page = await context.newPage()
  pageIndex.set(page, pageIndex.size)
  page.on('pageerror', (e) => {
    pageErrors.push(String(e))
    log(`page error: ${e}`)
  })
  page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`))
  return page
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function waitFor(what, predicate) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await predicate()) return
    if (pageErrors.length) throw new Error(`page error(s) while waiting for ${what}: ${pageErrors.join(' | ')}`)
    if (Date.now() > deadline) {
      const seen = requests.map((r) => `${r.path} [${r.messages.map(describe).join(', ')}] ${r.status ?? r.failure ?? 'pending'}`)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; requests seen: ${seen.join('; ') || 'none'}`)
    }
    await sleep(100)
  }
}
const describe = (m) => (m.type === 'track' ? `track:${m.event}` : m.type)
// Messages Cohort answered 200 for, by messageId (the last such body).
function delivered() {
  const out = new Map()
  for (const r of requests) if (r.status === 200) for (const m of r.messages) out.set(m.messageId, m)
  return [...out.values()]
}
const deliveredWhere = (test) => delivered().filter(test)
const has = (test, n = 1) => () => deliveredWhere(test).length >= n
const isEvent = (name) => (m) => m.type === 'track' && m.event === name
const sdkLoaded = (page) => waitFor('the SDK to load', () => page.evaluate(() => !!(window.cohort && window.cohort.loaded)))
async function storage(page) {
  return page.evaluate(() => {
    const all = {}
    for (let i = 0; i < localStorage.length; i++) all[localStorage.key(i)] = localStorage.getItem(localStorage.key(i))
    return { localStorage: all, sessionStorageKeys: Object.keys(sessionStorage), documentCookie: document.cookie }
  })
}
const cookies = async (context) => (await context.cookies()).map((c) => ({ name: c.name, value: c.value, domain: c.domain }))
const requestCount = () => requests.length

// ---------- scenarios ----------
const observations = {}
let expected = {}

async function basics(context) {
  expected = { user, woocommerce, efId, productProps, orderProps, referrer: 'https://www.example.org/newsletter', groupId: `grp-${run}`, aliasId: `alias-${run}` }
  const page = await open(context)
  await page.goto(pageUrl, { waitUntil: 'load', referer: expected.referrer })
  await waitFor('identify, page view and the queued track', async () =>
    has((m) => m.type === 'identify')() && has((m) => m.type === 'page')() && has(isEvent('Product Viewed'))()
  )
  await page.evaluate(
    ({ orderProps, groupId, aliasId }) => {
      cohort.track('Order Completed', orderProps)
      cohort.identify({ plan: 'pro' })
      cohort.group(groupId, { name: 'Example Inc', employees: 42 })
      cohort.page('Shop', 'Thank You', { order_id: orderProps.order_id })
      cohort.alias(aliasId)
    },
    expected
  )
  await waitFor('the calls made after load', async () =>
    has(isEvent('Order Completed'))() && has((m) => m.type === 'identify', 2)() && has((m) => m.type === 'group')() &&
    has((m) => m.type === 'page' && m.name === 'Thank You')() && has((m) => m.type === 'alias')()
  )
  observations.beforeReload = { cookies: await cookies(context), storage: await storage(page) }
  await page.reload({ waitUntil: 'load' })
  await waitFor('the page view after the reload', has((m) => m.type === 'page' && !m.name, 2))
  // Give a repeated identify every chance to show up (there should be none).
  await sleep(QUIET_MS)
  observations.afterReload = { cookies: await cookies(context), storage: await storage(page) }
}

async function consent(context) {
  expected = { user }
  const page = await open(context)
  await page.goto(pageUrl, { waitUntil: 'load' })
  await sdkLoaded(page)
  await page.evaluate(() => cohort.track('Before Consent', { step: 2 }))
  await sleep(QUIET_MS)
  observations.beforeGrant = { requests: requestCount(), cookies: await cookies(context), storage: await storage(page) }

  await page.evaluate(() => {
    cohort.consent.grant()
    cohort.track('After Consent', { step: 3 })
  })
  await waitFor('everything held until consent, then the call after it', async () =>
    ['Before Load', 'Before Consent', 'After Consent'].every((e) => has(isEvent(e))()) &&
    has((m) => m.type === 'identify')() && has((m) => m.type === 'page')()
  )
  observations.afterGrant = { cookies: await cookies(context), storage: await storage(page) }

  const mark = requestCount()
  await page.evaluate(() => {
    cohort.consent.revoke()
    cohort.track('After Revoke', { step: 4 })
  })
  await sleep(QUIET_MS)
  observations.afterRevoke = { requestsSinceRevoke: requestCount() - mark, cookies: await cookies(context), storage: await storage(page) }

  // Next page: consent was revoked, so it is asked for again. Calls made
  // while it is pending are dropped by a revoke, even if consent follows.
  await page.reload({ waitUntil: 'load' })
  await sdkLoaded(page)
  await page.evaluate(() => {
    cohort.track('Dropped On Revoke', { step: 5 })
    cohort.consent.revoke()
    cohort.consent.grant(['marketing', 'statistics'])
    cohort.track('After Regrant', { step: 6 })
  })
  await waitFor('the call after consent is granted again', has(isEvent('After Regrant')))
  await sleep(QUIET_MS)
  observations.afterRegrant = { cookies: await cookies(context), storage: await storage(page) }
}

async function wpConsent(context) {
  const page = await open(context)
  await page.goto(pageUrl, { waitUntil: 'load' })
  await sdkLoaded(page)
  // Consent to another category is not consent to Cohort's ("marketing").
  await page.evaluate(() => window.wp_set_consent('statistics', 'allow'))
  await sleep(QUIET_MS)
  observations.beforeAllow = { requests: requestCount(), cookies: await cookies(context), storage: await storage(page) }

  await page.evaluate(() => window.wp_set_consent('marketing', 'allow'))
  await waitFor('the page view and the queued track once the Consent API allows marketing', async () =>
    has((m) => m.type === 'page')() && has(isEvent('Before Load'))()
  )
  observations.afterAllow = { cookies: await cookies(context), storage: await storage(page) }

  await page.reload({ waitUntil: 'load' })
  await waitFor('the page view on the next page, with consent read from the Consent API', has((m) => m.type === 'page', 2))

  const mark = requestCount()
  await page.evaluate(() => {
    window.wp_set_consent('marketing', 'deny')
    cohort.track('After Deny')
  })
  await sleep(QUIET_MS)
  observations.afterDeny = { requestsSinceDeny: requestCount() - mark, cookies: await cookies(context), storage: await storage(page) }
}

async function offline(context) {
  const queued = (page) => page.evaluate(() => (JSON.parse(localStorage.getItem('cohort_queue') || '[]') || []).map((m) => m.event || m.type))
  const page = await open(context)
  await page.goto(pageUrl, { waitUntil: 'load' })
  await waitFor('the page view', has((m) => m.type === 'page'))

  // Offline on this page, then back online.
  await context.setOffline(true)
  const mark = requestCount()
  await page.evaluate(() => ['Offline 1', 'Offline 2', 'Offline 3'].forEach((e, i) => cohort.track(e, { n: i + 1 })))
  const failedSince = (n) => requests.slice(n).filter((r) => r.failure && r.messages.some((m) => /^Offline /.test(m.event || ''))).length
  await waitFor('two failed attempts while offline', () => failedSince(mark) >= 2)
  observations.whileOffline = { failedAttempts: failedSince(mark), queued: await queued(page) }
  await context.setOffline(false)
  await waitFor('the offline events after coming back online', async () => ['Offline 1', 'Offline 2', 'Offline 3'].every((e) => has(isEvent(e))()))

  // Offline again, the page is closed, and the next page delivers.
  await context.setOffline(true)
  const mark2 = requestCount()
  await page.evaluate(() => ['Next Page 1', 'Next Page 2'].forEach((e) => cohort.track(e)))
  await waitFor('a failed attempt to send them', () =>
    requests.slice(mark2).some((r) => r.failure && r.messages.some((m) => m.event === 'Next Page 1'))
  )
  observations.beforeClose = { queued: await queued(page) }
  await page.close()
  await context.setOffline(false)
  const next = await open(context)
  await next.goto(pageUrl, { waitUntil: 'load' })
  await waitFor('the next page to deliver what the closed one kept', async () =>
    has(isEvent('Next Page 1'))() && has(isEvent('Next Page 2'))() && has((m) => m.type === 'page', 2)()
  )
  await sleep(QUIET_MS)
  observations.afterNextPage = { queued: await queued(next) }
}

// ---------- run ----------
let browser
let exitCode = 1
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-component-update', '--disable-sync'],
  })
  log(`chromium ${browser.version()}, scenario ${scenario}, page ${pageUrl}`)
  // A fresh profile per run (newContext is an incognito-like context with empty storage).
  const context = await browser.newContext()
  watch(context)
  await { basics, consent, 'wp-consent': wpConsent, offline }[scenario](context)
  if (pageErrors.length) throw new Error(`page error(s): ${pageErrors.join(' | ')}`)
  process.stdout.write(
    JSON.stringify({
      scenario,
      page: pageUrl,
      expected,
      requests: requests.map((r) => ({ page: r.page, path: r.path, status: r.status, failure: r.failure, messageIds: r.messages.map((m) => m.messageId) })),
      sdkLoads,
      sent: delivered(),
      observations,
    }) + '\n'
  )
  log(`${scenario}: ${delivered().length} message(s) delivered in ${requests.length} request(s)`)
  exitCode = 0
} catch (e) {
  log(`FAILED: ${e?.stack || e}`)
} finally {
  if (browser) await browser.close().catch((e) => log(`browser.close: ${e}`))
  await new Promise((resolve) => staticServer.close(resolve))
}
process.exit(exitCode)
