#!/usr/bin/env node
// Drive Cohort's segment editor in Debian's Chromium against a real `cohort
// serve`, as a merchant would, and report what happened. The cargo test
// (crates/cohort/tests/it/segments_browser.rs) judges the report.
//
// Usage: node segments_browser.mjs COHORT_BASE_URL SETUP_URL SCREENSHOT_DIR
//   env CHROMIUM (default /usr/bin/chromium), UI_BROWSER_TIMEOUT_MS (default 20000)
//
// The run: create the first owner through the setup link; sign in; create a
// source and send three people through its write key (two on the gold
// plan, one of them viewing a product twice); open Segments (the empty
// state), New segment; type a rule with the keyboard and watch the live
// count reach 2 with the sample members; type an error and see it placed;
// switch to the builder, add a row (Performed event "Product Viewed") and
// watch the count fall to 1 and the text follow; save; the segment's page,
// the list and the member's profile; then the same pages at 360 px.
// Screenshots of each step, horizontal overflow measured.
//
// stdout: one JSON document; logs on stderr.

import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { chromium } from 'playwright-core'

const log = (...a) => console.error('segments_browser:', ...a)
const [baseArg, setupUrl, shotDir, ...extra] = process.argv.slice(2)
if (!baseArg || !setupUrl || !shotDir || extra.length) {
  log('usage: segments_browser.mjs COHORT_BASE_URL SETUP_URL SCREENSHOT_DIR')
  process.exit(2)
}
const base = baseArg.replace(/\/+$/, '')
const timeout = Number(process.env.UI_BROWSER_TIMEOUT_MS || 20000)
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'

const EMAIL = 'owner@shop.example'
const PASSWORD = 'a long enough passphrase'
const report = { screenshots: [], overflow: {}, consoleErrors: [], steps: [], counts: [] }
const step = (name) => { report.steps.push(name); log(name) }

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

// The live count once it shows `n`.
async function countIs(page, n) {
  await page.locator('#preview-count', { hasText: new RegExp(`^${n}$`) }).waitFor()
  report.counts.push(n)
}

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
  context.setDefaultTimeout(timeout)
  const page = await context.newPage()
  // A rule that does not parse is answered 400 by the preview (its line and
  // column in the body), which Chromium logs as a failed resource: those are
  // counted apart; any other console error counts.
  report.previewRefusals = 0
  page.on('console', (m) => {
    if (m.type() !== 'error' || m.location().url.endsWith('/favicon.ico')) return
    if (/status of 400/.test(m.text()) && m.location().url.endsWith('/segments/preview')) { report.previewRefusals++; return }
    report.consoleErrors.push(`${m.text()} (${m.location().url})`)
  })
  page.on('pageerror', (e) => report.consoleErrors.push(String(e)))
  page.on('dialog', (d) => d.accept())

  step('create the first owner and sign in')
  await page.goto(setupUrl)
  await page.getByLabel('Email').fill(EMAIL)
  await page.getByLabel(/^Password \(/).fill(PASSWORD)
  await page.getByLabel('Password again').fill(PASSWORD)
  await page.getByRole('button', { name: 'Create account' }).click()
  await page.waitForURL(/\/app\/sign-in/)
  await page.getByLabel('Email').fill(EMAIL)
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByLabel('Password').press('Enter')
  await page.waitForURL(/\/app\/o\/org_[^/]+$/)
  const orgBase = page.url()

  step('a source, and three people through its write key')
  await nav(page, 'Sources')
  await page.getByLabel('Name').fill('Website')
  await page.getByRole('button', { name: 'Create source' }).click()
  await page.waitForURL(/\/sources\/src_/)
  const snippet = await page.locator('#cohort-snippet').innerText()
  const writeKey = snippet.match(/writeKey: '([^']+)'/)[1]
  const batch = [
    { type: 'identify', userId: 'u-ada', traits: { email: 'ada@example.com', plan: 'gold' } },
    { type: 'identify', userId: 'u-bob', traits: { email: 'bob@example.com', plan: 'gold' } },
    { type: 'identify', userId: 'u-cy', traits: { email: 'cy@example.com', plan: 'silver' } },
    { type: 'track', userId: 'u-ada', event: 'Product Viewed', properties: { product_id: '93' } },
    { type: 'track', userId: 'u-ada', event: 'Product Viewed', properties: { product_id: '94' } },
  ]
  const sent = await fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}` },
    body: JSON.stringify({ batch }),
  })
  if (!sent.ok) throw new Error(`batch: ${sent.status} ${await sent.text()}`)

  step('Segments: the empty state')
  await nav(page, 'Segments')
  await page.getByText('No segment yet').waitFor()
  await shot(page, 'segments-empty')
  await page.getByRole('link', { name: 'New segment' }).click()
  await page.waitForURL(/\/segments\/new$/)

  step('type a rule: the live count and the sample follow')
  await page.getByLabel('Name').fill('Gold viewers')
  await page.getByLabel('Description').fill('Gold plan, viewed a product')
  const rule = page.getByLabel('Rule as text')
  await rule.click()
  await rule.press('Control+A')
  await rule.press('Delete')
  await page.keyboard.type('trait.plan = "gold"', { delay: 20 })
  // The projection may still be reading the batch: the preview asks again as
  // the merchant types, so retype until it has caught up.
  for (let i = 0; i < 20; i++) {
    const shown = (await page.locator('#preview-count').innerText()).trim()
    if (shown === '2') break
    await page.waitForTimeout(500)
    await rule.press('End')
    await page.keyboard.type(' ')
    await page.keyboard.press('Backspace')
  }
  await countIs(page, 2)
  report.sample = await page.locator('#preview-sample').innerText()
  await shot(page, 'segment-editor-live')

  step('an error is placed in the text')
  await rule.press('End')
  await page.keyboard.type(' and orders.count >=')
  const mark = page.locator('#rule-problem pre.rule-mark')
  await mark.waitFor()
  report.errorText = await page.locator('#rule-problem').innerText()
  report.errorMark = await mark.locator('mark').innerText()
  await shot(page, 'segment-editor-error')
  await page.keyboard.type(' 0')
  await page.locator('#rule-problem pre.rule-mark').waitFor({ state: 'detached' })
  await countIs(page, 2)

  step('the builder: one more row, Performed event "Product Viewed"')
  await page.getByRole('button', { name: 'Builder' }).click()
  await page.locator('#rule-builder .b-row').first().waitFor()
  report.builderRowsBefore = await page.locator('#rule-builder .b-row').count()
  await page.getByRole('button', { name: '+ Condition' }).first().click()
  const rows = page.locator('#rule-builder .b-row')
  const added = rows.nth(report.builderRowsBefore)
  await added.getByLabel(/: kind$/).selectOption('performed')
  await added.getByLabel(/: event name$/).fill('Product Viewed')
  await countIs(page, 1)
  report.builderRowsAfter = await rows.count()
  await shot(page, 'segment-editor-builder')
  await page.getByRole('button', { name: 'Text' }).click()
  await rule.waitFor()
  report.textAfterBuilder = await rule.inputValue()

  step('save: the segment page')
  await page.getByRole('button', { name: 'Save segment' }).click()
  await page.waitForURL(/\/segments\/seg_[^/?]+\?done=created$/)
  const segmentUrl = page.url().replace(/\?.*$/, '')
  report.segmentUrl = segmentUrl
  report.segmentText = await page.locator('main').innerText()
  report.segmentChanges = await page.locator('section[aria-labelledby="changes-h"]').innerText()
  await shot(page, 'segment-page')

  step('the list and the member profile')
  await nav(page, 'Segments')
  report.listText = await page.locator('main').innerText()
  await shot(page, 'segments-list')
  await page.goto(segmentUrl)
  await page.getByRole('table').getByRole('link', { name: 'ada@example.com' }).click()
  await page.waitForURL(/\/profiles\/prof_/)
  report.profileSegments = await page.locator('section[aria-labelledby="segments-h"]').innerText()
  await shot(page, 'segment-profile')

  step('keyboard: the editor is reached in order')
  await page.goto(`${orgBase}/segments/new`)
  const order = []
  for (let i = 0; i < 40 && order.length < 8; i++) {
    await page.keyboard.press('Tab')
    const label = await page.evaluate(() => {
      const a = document.activeElement
      if (!a) return ''
      const byFor = a.id && document.querySelector(`label[for="${a.id}"]`)
      return (byFor && byFor.textContent.trim()) || a.getAttribute('aria-label') || a.textContent.trim()
    })
    if (['Name', 'Description (optional)', 'Text', 'Builder', 'Rule as text', 'Save segment'].includes(label)) order.push(label)
  }
  report.focusOrder = order

  step('at 360 px')
  await page.setViewportSize({ width: 360, height: 740 })
  for (const [name, url] of [['mobile-segments-list', `${orgBase}/segments`], ['mobile-segment-page', segmentUrl], ['mobile-segment-edit', `${segmentUrl}/edit`]]) {
    await page.goto(url)
    if (name === 'mobile-segment-edit') await countIs(page, 1)
    await shot(page, name)
  }
  await page.getByRole('button', { name: 'Builder' }).click()
  await page.locator('#rule-builder .b-row').first().waitFor()
  await shot(page, 'mobile-segment-builder')
  exitCode = 0
} catch (e) {
  log('failed:', e && e.stack ? e.stack : e)
  report.error = String(e)
} finally {
  if (browser) await browser.close()
  process.stdout.write(JSON.stringify(report))
  process.exit(exitCode)
}
