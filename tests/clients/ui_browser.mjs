#!/usr/bin/env node
// Drive Cohort's admin web UI in Debian's Chromium against a real `cohort serve`,
// as a merchant would, and report what happened. The cargo test
// (crates/cohort/tests/it/ui_browser.rs) judges the report.
//
// Usage: node ui_browser.mjs COHORT_BASE_URL SETUP_URL SCREENSHOT_DIR
//   SETUP_URL: the one-time link `cohort serve` printed on its first start
//   env CHROMIUM (default /usr/bin/chromium), UI_BROWSER_TIMEOUT_MS (default 20000)
//
// The run: create the first owner through the setup link; sign in; create a
// source and copy its snippet with the Copy button (the clipboard is read
// back); a page of another origin pastes that snippet, identifies a shopper
// and tracks an event, which must appear in the source's live debugger, whose
// raw JSON is opened; search the shopper and open the profile; create an API
// token in the UI and use it to send a WooCommerce product and order; pair a
// store through the authorize page and heartbeat it; press *Sync store* and
// find it already queued (approval queued the first sync), run that sync as
// the plugin would and watch the store page follow it live, then queue a new
// one; create an Everflow destination with the form (the mapping editor's
// Add a row button included) pointing at a local receiver, send a test
// conversion and read the exact request shown; open the delivery log and a
// delivery; visit every page at 1280 px and at 360 px, saving screenshots
// and measuring horizontal overflow.
//
// stdout: one JSON document; logs on stderr.

import { readFile, mkdir } from 'node:fs/promises'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { chromium } from 'playwright-core'

const log = (...a) => console.error('ui_browser:', ...a)
const [baseArg, setupUrl, shotDir, ...extra] = process.argv.slice(2)
if (!baseArg || !setupUrl || !shotDir || extra.length) {
  log('usage: ui_browser.mjs COHORT_BASE_URL SETUP_URL SCREENSHOT_DIR')
  process.exit(2)
}
const base = baseArg.replace(/\/+$/, '')
const timeout = Number(process.env.UI_BROWSER_TIMEOUT_MS || 20000)
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'
const here = path.dirname(fileURLToPath(import.meta.url))
const fixture = async (name) => JSON.parse(await readFile(path.join(here, '..', '..', '..', 'shared', 'fixtures', `wc-rest-v3-${name}.docs-example.json`), 'utf8'))

const EMAIL = 'owner@shop.example'
const PASSWORD = 'a long enough passphrase'
const SMTP_PASSWORD = 'smtp-secret-0123456789'
const report = { screenshots: [], overflow: {}, consoleErrors: [], steps: [] }
const step = (name) => { report.steps.push(name); log(name) }

// A site of another origin where the merchant pastes the copied snippet.
let sitePage = ''
const site = createServer((req, res) => {
  res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
  res.end(req.url === '/' ? sitePage : '')
})
await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve))
const siteUrl = `http://127.0.0.1:${site.address().port}/`

async function shot(page, name) {
  const file = path.join(shotDir, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  report.screenshots.push(file)
  report.overflow[name] = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
}

async function nav(page, label) {
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: label, exact: true }).click()
  await page.waitForLoadState('load')
}

async function json(method, url, body, token) {
  const headers = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await r.text()
  if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${text}`)
  return text ? JSON.parse(text) : null
}

// Everflow's side: a local receiver that records every postback.
const VERIFICATION_TOKEN = 'vt-browser-secret-0123456789'
const received = []
const receiver = createServer((req, res) => {
  received.push(`${req.method} ${req.url}`)
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end('{"result":"ok","conversion_id":"c-1"}')
})
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve))
const receiverUrl = `http://127.0.0.1:${receiver.address().port}`

let browser
let exitCode = 1
try {
  await mkdir(shotDir, { recursive: true })
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-component-update', '--disable-sync'],
  })
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } })
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(base).origin })
  context.setDefaultTimeout(timeout)
  const page = await context.newPage()
  for (const p of [page]) {
    // The setup and authorize pages (outside the UI) name no icon, so the
    // browser asks for /favicon.ico there; anything else counts.
    p.on('console', (m) => {
      if (m.type() === 'error' && !m.location().url.endsWith('/favicon.ico')) report.consoleErrors.push(`${m.text()} (${m.location().url})`)
    })
    p.on('pageerror', (e) => report.consoleErrors.push(String(e)))
    p.on('dialog', (d) => d.accept())
  }

  step('create the first owner with the setup link')
  await page.goto(setupUrl)
  await page.getByLabel('Email').fill(EMAIL)
  await page.getByLabel(/^Password \(/).fill(PASSWORD)
  await page.getByLabel('Password again').fill(PASSWORD)
  await page.getByRole('button', { name: 'Create account' }).click()

  step('sign in')
  await page.waitForURL(/\/app\/sign-in/)
  await shot(page, 'sign-in')
  await page.getByLabel('Email').fill(EMAIL)
  await page.getByLabel('Password').fill(PASSWORD)
  // Keyboard only: Enter submits the form.
  await page.getByLabel('Password').press('Enter')
  await page.waitForURL(/\/app\/o\/org_[^/]+$/)
  const orgBase = page.url()

  step('create a source and copy its snippet')
  await nav(page, 'Sources')
  await page.getByLabel('Name').fill('Website')
  await page.getByRole('button', { name: 'Create source' }).click()
  await page.waitForURL(/\/sources\/src_/)
  report.sourceUrl = page.url()
  report.sourceId = page.url().match(/sources\/(src_[^/?]+)/)[1]
  await page.getByRole('button', { name: 'Copy snippet' }).click()
  await page.getByRole('button', { name: 'Copied' }).waitFor()
  report.snippet = await page.evaluate(() => navigator.clipboard.readText())
  await shot(page, 'source-empty')

  step('a real client sends events with the pasted snippet; they appear live')
  await page.locator('#live-status.on').waitFor()
  sitePage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>\n${report.snippet}\n</head><body><h1>Shop</h1></body></html>`
  const shopper = await context.newPage()
  shopper.on('pageerror', (e) => report.consoleErrors.push(`site: ${e}`))
  await shopper.goto(siteUrl)
  const sentAt = Date.now()
  await shopper.evaluate(() => {
    window.cohort.identify('shopper-1', { email: 'ada@example.com', name: 'Ada Shopper', plan: 'gold' })
    window.cohort.track('UI Test Event', { n: 1, product: 'Blue T-Shirt' })
  })
  const row = page.locator('#live-events li', { hasText: 'UI Test Event' })
  await row.waitFor()
  report.liveLatencyMs = Date.now() - sentAt
  await row.locator('summary').click()
  report.liveRaw = await row.locator('pre').innerText()
  report.liveRows = await page.locator('#live-events li').count()
  await shot(page, 'source-live')
  await shopper.close()

  step('create an API token in the UI and send a store product and order with it')
  await nav(page, 'API tokens')
  await page.getByLabel('Name').fill('Store import')
  await page.getByRole('button', { name: 'Create token' }).click()
  const token = (await page.locator('#new-token').innerText()).trim()
  report.tokenShown = token.startsWith('cht_')
  await shot(page, 'tokens')
  for (const [topic, name] of [['product.updated', 'product'], ['order.updated', 'order']]) {
    await json('POST', `${base}/api/v1/sources/${report.sourceId}/woocommerce`, { topic, resource: await fixture(name), currency: 'EUR' }, token)
  }

  step('pair a store through the authorize page and heartbeat it')
  const pairing = await json('POST', `${base}/connect/v1/pairings`, {
    store_url: 'https://shop.example', site_name: "Ada's Boutique", platform: 'woocommerce', plugin_version: '0.1.0',
    wp_version: '6.6.2', wc_version: '9.3.3', php_version: '8.2.24', currency: 'EUR', timezone: 'Europe/Paris',
    return_url: 'https://shop.example/wp-admin/admin.php?page=cohort',
  })
  await page.route('https://shop.example/**', (r) => r.fulfill({ status: 200, contentType: 'text/html', body: '<p>WordPress</p>' }))
  await page.goto(pairing.authorize_url || `${base}/setup/woocommerce?pairing=${pairing.pairing_id}`)
  await page.getByRole('button', { name: 'Approve' }).click()
  await page.waitForURL(/shop\.example/)
  const claimed = await json('POST', `${base}/connect/v1/pairings/${pairing.pairing_id}/poll`, undefined, pairing.poll_secret)
  const installToken = claimed.installation_token
  await json('POST', `${base}/connect/v1/heartbeat`, {
    plugin_version: '0.1.1', wp_version: '6.7', wc_version: '9.4.0', php_version: '8.3.1', store_url: 'https://shop.example',
    site_name: "Ada's Boutique", currency: 'EUR', timezone: 'Europe/Paris', outbox_depth: 0, failures_24h: 0,
  }, installToken)

  step('Sync store: at most one pending sync; a run shows its progress live')
  await page.goto(orgBase)
  await nav(page, 'Stores')
  // Approving a WooCommerce store already queued its first sync: the
  // button finds it waiting and queues nothing more.
  report.commandsBefore = (await json('GET', `${base}/connect/v1/commands`, undefined, installToken)).commands ?? null
  await page.getByRole('button', { name: 'Sync store' }).click()
  await page.getByText('A sync is already queued').waitFor()
  report.alreadyQueued = (await json('GET', `${base}/connect/v1/commands`, undefined, installToken)).commands ?? null
  // The plugin runs that sync; the store page (not reloaded) follows it.
  const initial = report.commandsBefore.find((c) => c.kind === 'sync_store')
  const run = await json('POST', `${base}/connect/v1/sync/runs`, { command_id: initial.id, resources: ['products'] }, installToken)
  await json('POST', `${base}/connect/v1/sync/runs/${run.run_id}/batches`, { resource: 'products', seq: 0, items: [await fixture('product')] }, installToken)
  const runs = page.locator('#sync-runs', { hasText: '1 batch' })
  await runs.waitFor()
  report.liveRun = await runs.innerText()
  report.storeUrl = page.url().replace(/\?.*$/, '')
  await shot(page, 'store')
  await json('POST', `${base}/connect/v1/sync/runs/${run.run_id}/complete`, { counts: { products: 1 } }, installToken)
  await json('POST', `${base}/connect/v1/commands/${initial.id}/ack`, { status: 'done', counts: { products: 1 } }, installToken)
  await page.locator('#sync-runs[data-live="false"]').waitFor()
  report.runDone = await page.locator('#sync-runs').innerText()
  // Now the button queues a new sync.
  await page.getByRole('button', { name: 'Sync store' }).click()
  await page.getByText('Sync queued').waitFor()
  report.commands = (await json('GET', `${base}/connect/v1/commands`, undefined, installToken)).commands ?? null
  await nav(page, 'Stores')
  await shot(page, 'stores')

  step('an Everflow destination created through the form sends a test conversion to a local receiver')
  const writeKey = report.snippet.match(/writeKey: '([^']+)'/)[1]
    const trackOrder = async (messageId, tid) => {
    const r = await fetch(`${base}/v1/track`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}` },
      body: JSON.stringify({ userId: 'shopper-1', event: 'Order Completed', messageId,
        context: { referrer: { type: 'everflow', id: tid }, ip: '203.0.113.9' },
        properties: { orderId: 'B-1001', total: 129.95, currency: 'EUR', coupon: 'WELCOME10', products: [{ sku: 'TS-BLUE-M', name: 'Blue T-Shirt', quantity: 2 }] } }),
    })
    if (!r.ok) throw new Error(`track: ${r.status} ${await r.text()}`)
  }
  // An order from before the destination: the field mapping shows its values.
  await trackOrder('browser-order-1', 'tid-browser-7')
  await nav(page, 'Destinations')
  await shot(page, 'destinations-empty')
  await page.getByRole('link', { name: 'New Everflow destination' }).first().click()
  await page.getByLabel('Name').fill('Everflow')
  await page.getByLabel('Tracking domain').fill(receiverUrl)
  await page.getByLabel('Network id').fill('115')
  await page.getByLabel('Advertiser id').fill('7')
  await page.getByLabel('Verification token').fill(VERIFICATION_TOKEN)
  await page.getByRole('button', { name: 'Add a row' }).click()
  await page.getByLabel('Cohort event 4').fill('Purchase')
  await page.getByLabel('Everflow event id 4').fill('24')
  await shot(page, 'destination-new')
  await page.getByRole('button', { name: 'Create destination' }).click()
  await page.waitForURL(/\/destinations\/dst_/)
  report.destinationUrl = page.url().replace(/\?.*$/, '')
  report.fieldMapping = await page.locator('table.fields').innerText()
  await page.getByRole('button', { name: 'Send test conversion' }).click()
  await page.locator('#test-result').waitFor()
  report.testRequest = await page.locator('#test-request').innerText()
  report.testResult = await page.locator('#test-result').innerText()
  report.received = received.slice()
  await shot(page, 'destination-test')
  // An order from now on is delivered by the worker: the delivery log and one delivery.
  await trackOrder('browser-order-2', 'tid-browser-8')
  await page.getByRole('link', { name: 'Delivery log' }).first().click()
  for (const started = Date.now(); ; ) {
    if (await page.getByRole('link', { name: 'Order Completed' }).count()) break
    if (Date.now() - started > timeout) throw new Error('the order never reached the delivery log')
    await page.waitForTimeout(250)
    await page.reload()
  }
  await shot(page, 'deliveries')
  await page.getByRole('link', { name: 'Order Completed' }).first().click()
  await page.getByRole('heading', { name: /Last request/ }).waitFor()
  report.deliveryText = await page.locator('main').innerText()
  await shot(page, 'delivery')
  await nav(page, 'Destinations')
  await shot(page, 'destinations')

  step('search the shopper and open the profile')
  await nav(page, 'Profiles')
  // The profile exists once the projection has read the events: search
  // again until it has (bounded by the timeout).
  for (const started = Date.now(); ; ) {
    await page.getByLabel('Find a person').fill('ada@example.com')
    await page.getByLabel('Find a person').press('Enter')
    await page.waitForLoadState('load')
    if (await page.getByRole('link', { name: 'ada@example.com' }).count()) break
    if (Date.now() - started > timeout) throw new Error('the shopper never appeared in the profile search')
    await page.waitForTimeout(250)
  }
  await shot(page, 'profiles')
  await page.getByRole('link', { name: 'ada@example.com' }).click()
  await page.getByRole('heading', { name: 'Traits' }).waitFor()
  report.profileText = await page.locator('main').innerText()
  await shot(page, 'profile')

  step('mail: the outbox and a message, a provider tested, a domain, a suppression, a webhook')
  await nav(page, 'Mail')
  // The test queued one message before the driver started; the server's
  // outbox worker writes it to its folder within seconds.
  for (const started = Date.now(); ; ) {
    if (await page.locator('.outbox .badge.sent').count()) break
    if (Date.now() - started > timeout) throw new Error('the queued message was never sent')
    await page.waitForTimeout(250)
    await page.reload()
  }
  await shot(page, 'mail-outbox')
  report.mailUrl = page.url()
  await page.getByRole('link', { name: 'ada@example.com' }).first().click()
  await page.getByRole('heading', { name: 'Attempts' }).waitFor()
  report.mailMessageText = await page.locator('main').innerText()
  report.mailMessageUrl = page.url()
  await shot(page, 'mail-message')
  const mailNav = (label) => page.getByRole('navigation', { name: 'Mail' }).getByRole('link', { name: label, exact: true }).click()
  await mailNav('Providers')
  await page.getByLabel('Name', { exact: true }).fill('Postmark')
  await page.getByLabel('SMTP host', { exact: true }).fill('127.0.0.1')
  await page.getByLabel('Port', { exact: true }).fill('1')
  await page.getByLabel('Encryption', { exact: true }).selectOption('none')
  await page.getByLabel(/^Username/).fill('apikey')
  await page.getByLabel(/^Password/).fill(SMTP_PASSWORD)
  await page.getByRole('button', { name: 'Add provider' }).click()
  await page.getByRole('heading', { name: 'Settings' }).waitFor()
  report.providerUrl = page.url()
  await page.getByRole('button', { name: 'Test the connection' }).click()
  await page.getByText('Connection test failed.').waitFor()
  report.providerText = await page.content()
  await shot(page, 'mail-provider')
  await mailNav('Sending domains')
  await page.getByLabel('Domain', { exact: true }).fill('shop.example')
  await page.getByRole('button', { name: 'Add domain' }).click()
  await page.getByRole('heading', { name: 'Records to publish' }).waitFor()
  report.domainText = await page.locator('main').innerText()
  report.domainUrl = page.url()
  await shot(page, 'mail-domain')
  await mailNav('Suppressions')
  await page.getByLabel('Address', { exact: true }).last().fill('gone@example.com')
  await page.getByRole('button', { name: 'Suppress' }).click()
  await page.getByText('Suppressed: no marketing mail').waitFor()
  report.suppressionsText = await page.locator('main').innerText()
  await shot(page, 'mail-suppressions')
  await mailNav('Bounce webhooks')
  await page.getByLabel('Provider', { exact: true }).selectOption('postmark')
  await page.getByLabel('Name', { exact: true }).fill('Postmark bounces')
  await page.getByRole('button', { name: 'Make webhook' }).click()
  report.webhookUrl = (await page.locator('#hook-url').innerText()).trim()
  await shot(page, 'mail-webhook')
  await page.reload()
  report.webhookShownAgain = (await page.locator('#hook-url').count()) > 0
  await mailNav('Providers')
  await shot(page, 'mail-providers')

  step('every other page')
  await nav(page, 'Overview')
  await shot(page, 'overview')
  await nav(page, 'Sources')
  await shot(page, 'sources')
  await nav(page, 'Orders')
  report.ordersText = await page.locator('main').innerText()
  await shot(page, 'orders')
  await nav(page, 'Products')
  report.productsText = await page.locator('main').innerText()
  await shot(page, 'products')
  await nav(page, 'Team')
  await shot(page, 'team')
  await page.getByRole('link', { name: EMAIL }).click()
  await shot(page, 'account')

  step('keyboard: the first Tab reaches the skip link')
  await page.goto(orgBase)
  await page.keyboard.press('Tab')
  report.firstFocus = await page.evaluate(() => document.activeElement && document.activeElement.textContent.trim())

  step('at 360 px')
  await page.setViewportSize({ width: 360, height: 740 })
  for (const [name, url] of [['mobile-overview', orgBase], ['mobile-source', report.sourceUrl], ['mobile-profiles', `${orgBase}/profiles`], ['mobile-stores', `${orgBase}/stores`], ['mobile-orders', `${orgBase}/orders`],
    ['mobile-destinations', `${orgBase}/destinations`], ['mobile-destination', report.destinationUrl], ['mobile-deliveries', `${report.destinationUrl}/deliveries`],
    ['mobile-destination-new', `${orgBase}/destinations/new?type=webhook`], ['mobile-store', report.storeUrl],
    ['mobile-mail-outbox', report.mailUrl], ['mobile-mail-message', report.mailMessageUrl], ['mobile-mail-provider', report.providerUrl],
    ['mobile-mail-providers', `${orgBase}/mail/providers`], ['mobile-mail-domain', report.domainUrl], ['mobile-mail-suppressions', `${orgBase}/mail/suppressions`],
    ['mobile-mail-webhooks', `${orgBase}/mail/webhooks`]]) {
    await page.goto(url)
    await shot(page, name)
  }

  step('sign out')
  await page.setViewportSize({ width: 1280, height: 860 })
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.waitForURL(/\/app\/sign-in/)
  report.signedOut = true

  process.stdout.write(JSON.stringify(report) + '\n')
  exitCode = 0
} catch (e) {
  log(`failed after steps ${JSON.stringify(report.steps)}: ${e && e.stack ? e.stack : e}`)
} finally {
  if (browser) await browser.close().catch(() => {})
  site.close()
  receiver.close()
  process.exit(exitCode)
}
