#!/usr/bin/env node
// Drive the real @segment/analytics-next (analytics.js 2.0) in Debian's Chromium
// against a Cohort server.
//
// Usage: node browser_client.mjs COHORT_BASE_URL WRITE_KEY
//   env CHROMIUM (default /usr/bin/chromium), BROWSER_CLIENT_TIMEOUT_MS (default 30000)
//
// A static server on 127.0.0.1:<random> serves a shop "thank you" page
// (/shop/thank-you.html?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale)
// and the UMD build of analytics-next (dist/umd/index.js, which exposes
// window.AnalyticsNext; any lazily loaded chunk is served by file name from dist/umd).
// The page calls AnalyticsBrowser.load({writeKey, cdnURL: COHORT_BASE_URL}) so the
// library fetches GET {cdnURL}/v1/projects/{writeKey}/settings from Cohort and sends to
// the apiHost/protocol found there (default "standard" delivery: POST /v1/i /v1/t
// /v1/p /v1/s /v1/g /v1/a, cross-origin, text/plain).
//
// stdout: exactly one JSON document
//   {"library":"analytics-next","version":"1.84.3","page":"<page url>",
//    "sent":[ctx.event, ...]}
// where ctx.event is the message as the library built it (messageId "ajs-next-…",
// anonymousId, timestamp, context.page/campaign/userAgent/library, …), serialised
// with JSON.stringify. Logs go to stderr.
// Exit 0 only when every message's request to Cohort was answered 200; non-zero
// with the reason on stderr otherwise (timeout, page error, launch failure).

import { createServer } from 'node:http'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { chromium } from 'playwright-core'

const log = (...a) => console.error('browser_client:', ...a)

const [cohortArg, writeKey, ...extra] = process.argv.slice(2)
if (!cohortArg || !writeKey || extra.length) {
  log('usage: browser_client.mjs COHORT_BASE_URL WRITE_KEY')
  process.exit(2)
}
const cohortBase = cohortArg.replace(/\/+$/, '')
const cohortOrigin = new URL(cohortBase).origin
const timeoutMs = Number(process.env.BROWSER_CLIENT_TIMEOUT_MS || 30000)
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'

const require = createRequire(import.meta.url)
const nextPkgJson = require.resolve('@segment/analytics-next/package.json')
const nextVersion = JSON.parse(await readFile(nextPkgJson, 'utf8')).version
const umdDir = path.join(path.dirname(nextPkgJson), 'dist', 'umd')

const PAGE_PATH = '/shop/thank-you.html'
const PAGE_QUERY = '?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale'

const pageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Thank you for your order</title>
<script src="/analytics-next/index.js"></script>
</head>
<body>
<h1>Thank you!</h1>
<p>Your order is confirmed.</p>
</body>
</html>
`

// ---------- static server ----------
const served = []
const staticServer = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x')
  served.push(url.pathname)
  try {
    if (url.pathname === PAGE_PATH) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      res.end(pageHtml)
      return
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204)
      res.end()
      return
    }
    // Anything whose file name is in dist/umd (the bundle and its lazily loaded
    // chunks, whatever directory the library resolves them against).
    const name = path.basename(url.pathname)
    if (/^[\w.-]+\.js(\.map)?$/.test(name)) {
      const body = await readFile(path.join(umdDir, name)).catch(() => null)
      if (body) {
        res.writeHead(200, { 'content-type': 'application/javascript; charset=utf-8', 'cache-control': 'no-store' })
        res.end(body)
        return
      }
    }
    log(`static 404: ${url.pathname}`)
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found')
  } catch (e) {
    res.writeHead(500)
    res.end(String(e))
  }
})
await new Promise((resolve) => staticServer.listen(0, '127.0.0.1', resolve))
const staticBase = `http://127.0.0.1:${staticServer.address().port}`
const pageUrl = staticBase + PAGE_PATH + PAGE_QUERY

// ---------- Cohort request bookkeeping ----------
// Every non-OPTIONS request the page makes to COHORT_BASE_URL/v1/…; CORS preflights
// are handled inside the network stack and are not reported as page requests.
const cohortRequests = [] // {method, path, status?, failure?, messageIds}
const inflight = new Set()
function isCohortV1(u) {
  try {
    const x = new URL(u)
    return x.origin === cohortOrigin && x.pathname.startsWith('/v1/')
  } catch {
    return false
  }
}
function messageIdsOf(request) {
  const body = request.postData()
  if (!body) return []
  try {
    const j = JSON.parse(body)
    if (Array.isArray(j.batch)) return j.batch.map((m) => m.messageId)
    return j.messageId ? [j.messageId] : []
  } catch {
    return []
  }
}

let browser
let exitCode = 1
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  log(`chromium ${browser.version()}, analytics-next ${nextVersion}, page ${pageUrl}`)
  const context = await browser.newContext()
  const page = await context.newPage()

  const pageErrors = []
  page.on('pageerror', (e) => {
    pageErrors.push(String(e))
    log(`page error: ${e}`)
  })
  page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`))
  page.on('request', (r) => {
    if (!isCohortV1(r.url()) || r.method() === 'OPTIONS') return
    const rec = { method: r.method(), path: new URL(r.url()).pathname, messageIds: messageIdsOf(r) }
    cohortRequests.push(rec)
    inflight.add(r)
    r.__rec = rec
  })
  page.on('response', (resp) => {
    const r = resp.request()
    if (!r.__rec) return
    r.__rec.status = resp.status()
    log(`${r.method()} ${r.__rec.path} -> ${resp.status()}`)
  })
  page.on('requestfinished', (r) => inflight.delete(r))
  page.on('requestfailed', (r) => {
    if (!r.__rec) return
    inflight.delete(r)
    r.__rec.failure = r.failure()?.errorText || 'failed'
    log(`${r.method()} ${r.__rec.path} failed: ${r.__rec.failure}`)
  })

  await page.goto(pageUrl, { waitUntil: 'load' })
  const hasLib = await page.evaluate(() => typeof window.AnalyticsNext?.AnalyticsBrowser?.load === 'function')
  if (!hasLib) throw new Error('window.AnalyticsNext.AnalyticsBrowser.load not found after loading dist/umd/index.js')

  const result = await page.evaluate(
    async ({ writeKey, cdnURL }) => {
      const notes = []
      const { AnalyticsBrowser } = window.AnalyticsNext
      const [analytics] = await AnalyticsBrowser.load({ writeKey, cdnURL })
      const ev = (ctx) => JSON.parse(JSON.stringify(ctx.event))
      const sent = []
      const run = Math.random().toString(16).slice(2, 14)
      const userId = `web-user-${run}`
      sent.push(
        ev(
          await analytics.identify(userId, {
            email: `jane.doe+web-${run}@example.com`,
            firstName: 'Jane',
            lastName: 'Doe',
            plan: 'pro',
          })
        )
      )
      sent.push(
        ev(
          await analytics.track(
            'Order Completed',
            {
              order_id: `ord-web-${run}`,
              total: 27.5,
              revenue: 22.5,
              shipping: 3,
              tax: 2,
              discount: 2.5,
              currency: 'USD',
              coupon: 'SPRING10',
              products: [
                { product_id: 'prod_1', sku: 'SKU-1', name: 'Blue T-Shirt', price: 19, quantity: 1 },
                { product_id: 'prod_2', sku: 'SKU-2', name: 'Sticker Pack', price: 1.75, quantity: 2 },
              ],
            },
            { context: { referrer: { type: 'everflow', id: 'a1b2c3d4e5f6' } } }
          )
        )
      )
      sent.push(ev(await analytics.page('Shop', 'Thank You', { order_id: `ord-web-${run}` })))
      if (typeof analytics.screen === 'function') {
        sent.push(ev(await analytics.screen('Order Confirmation', { variation: 'blue' })))
      } else {
        notes.push('analytics.screen is not available in this analytics-next build; skipped')
      }
      sent.push(
        ev(await analytics.group(`web-group-${run}`, { name: 'Example Inc', industry: 'Retail', employees: 42 }))
      )
      // alias(to, from): link the browser's anonymousId to the userId.
      sent.push(ev(await analytics.alias(userId, analytics.user().anonymousId())))
      return { sent, notes }
    },
    { writeKey, cdnURL: cohortBase }
  )
  for (const n of result.notes) log(`note: ${n}`)
  const sent = result.sent

  // Wait until every message has been answered 200 by Cohort and nothing is in flight.
  const wanted = new Set(sent.map((e) => e.messageId))
  const deadline = Date.now() + timeoutMs
  const delivered = () => {
    const ok = new Set()
    for (const r of cohortRequests) if (r.status === 200) for (const id of r.messageIds) ok.add(id)
    return ok
  }
  for (;;) {
    const ok = delivered()
    const missing = [...wanted].filter((id) => !ok.has(id))
    const settingsOk = cohortRequests.some((r) => r.method === 'GET' && r.path.endsWith('/settings') && r.status === 200)
    if (!missing.length && !inflight.size && settingsOk) break
    if (pageErrors.length) throw new Error(`page error(s): ${pageErrors.join(' | ')}`)
    if (Date.now() > deadline) {
      const seen = cohortRequests.map((r) => `${r.method} ${r.path} ${r.status ?? r.failure ?? 'pending'}`)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for Cohort to answer 200: ` +
          `${missing.length} message(s) not delivered [${missing.map((id) => {
            const e = sent.find((s) => s.messageId === id)
            return `${e.type}:${id}`
          }).join(', ')}], settings fetched: ${settingsOk}, in flight: ${inflight.size}; ` +
          `requests seen: ${seen.join('; ') || 'none'}`
      )
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const non200 = cohortRequests.filter((r) => r.status !== 200)
  if (non200.length) {
    log(`note: ${non200.length} request(s) to Cohort were not 200 before being retried: ` +
      non200.map((r) => `${r.method} ${r.path} ${r.status ?? r.failure}`).join('; '))
  }
  if (pageErrors.length) throw new Error(`page error(s): ${pageErrors.join(' | ')}`)

  process.stdout.write(
    JSON.stringify({ library: 'analytics-next', version: nextVersion, page: pageUrl, sent }) + '\n'
  )
  log(`all ${sent.length} messages delivered (${cohortRequests.length} request(s) to Cohort)`)
  exitCode = 0
} catch (e) {
  log(`FAILED: ${e?.stack || e}`)
  exitCode = 1
} finally {
  if (browser) await browser.close().catch((e) => log(`browser.close: ${e}`))
  await new Promise((resolve) => staticServer.close(resolve))
}
process.exit(exitCode)
