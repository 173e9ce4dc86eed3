#!/usr/bin/env node
// Drive a real WordPress with the Cohort Connect plugin, and Cohort's own
// authorize page, in Debian's Chromium, one step at a time.
//
// Usage: node wordpress_plugin.mjs STEP '{"wp": URL, "cohort": URL, "state": FILE, "shots": DIR, …}'
//   STEP:
//     activate     sign in to wp-admin as admin, activate the plugin on the Plugins screen,
//                  save the Cohort URL on Settings → Cohort
//     pair         click "Connect to Cohort", on Cohort's page create the first admin
//                  (args.account) or sign in, read the code, then args.decision
//                  ("approve" | "deny") for the organisation named args.org; back in WordPress,
//                  report what the plugin's page shows
//     admin-page   open Settings → Cohort (or args.path, e.g. /wp-admin/index.php) and report
//                  it; args.click names a button to press first ("retry" | "disconnect" | "check" |
//                  "upgrade", the offer shown once WooCommerce is active)
//   args.woocommerce: the plugin's page is under WooCommerce's menu (WooCommerce is active)
//     deactivate   deactivate the plugin on the Plugins screen
//     delete       delete it there (WordPress runs its uninstall.php)
//     storefront   open the home page (as args.user, signed in through wp-login.php, or
//                  anonymous) and record what the SDK sends to Cohort
//   env CHROMIUM (default /usr/bin/chromium), WP_BROWSER_TIMEOUT_MS (default 60000)
//
// The WordPress admin session is kept in args.state (playwright storage state)
// between steps. Screenshots go to args.shots. stdout: exactly one JSON
// document with what the pages showed and what was sent; logs on stderr. The
// cargo test judges.

import { existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { chromium } from 'playwright-core'

const log = (...a) => console.error('wordpress_plugin:', ...a)
const [step, argJson] = process.argv.slice(2)
const STEPS = ['activate', 'pair', 'admin-page', 'deactivate', 'delete', 'storefront']
if (!STEPS.includes(step) || !argJson) {
  log(`usage: wordpress_plugin.mjs ${STEPS.join('|')} JSON`)
  process.exit(2)
}
const args = JSON.parse(argJson)
const wp = args.wp.replace(/\/+$/, '')
const cohort = args.cohort.replace(/\/+$/, '')
const timeout = Number(process.env.WP_BROWSER_TIMEOUT_MS || 60000)
mkdirSync(args.shots, { recursive: true })

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
})
const admin = step !== 'storefront'
const context = await browser.newContext({
  storageState: admin && existsSync(args.state) ? args.state : undefined,
  viewport: { width: 1280, height: 900 },
})
context.setDefaultTimeout(timeout)
const page = await context.newPage()
const consoleErrors = []
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()) })
page.on('pageerror', (e) => consoleErrors.push(String(e)))

let shot = 0
async function snap (name) {
  shot += 1
  const file = path.join(args.shots, `${step}-${String(shot).padStart(2, '0')}-${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}

async function signInToWordPress (user, password) {
  await page.goto(`${wp}/wp-login.php`)
  await page.fill('#user_login', user)
  await page.fill('#user_pass', password)
  await Promise.all([page.waitForNavigation(), page.click('#wp-submit')])
  if (page.url().includes('wp-login.php')) throw new Error(`WordPress sign-in failed for ${user}: ${await page.textContent('#login_error').catch(() => '?')}`)
}

async function ensureAdmin () {
  await page.goto(`${wp}/wp-admin/`)
  if (page.url().includes('wp-login.php')) await signInToWordPress('admin', 'password')
}

// Under WooCommerce's menu once WooCommerce is active, under Settings otherwise.
const pluginPage = args.woocommerce ? `${wp}/wp-admin/admin.php?page=cohort-connect` : `${wp}/wp-admin/options-general.php?page=cohort-connect`

async function readPluginPage () {
  const text = async (sel) => (await page.locator(sel).count()) ? (await page.locator(sel).first().innerText()).trim() : null
  return {
    url: page.url(),
    connected: await text('#cohort-connect-connected'),
    disconnected: await text('#cohort-connect-disconnected'),
    revoked: await text('#cohort-connect-revoked'),
    userCode: await text('#cohort-connect-user-code'),
    denied: await text('#cohort-connect-pairing-denied'),
    expired: await text('#cohort-connect-pairing-expired'),
    outboxDepth: await text('#cohort-connect-outbox-depth'),
    lastHeartbeat: await text('#cohort-connect-last-heartbeat'),
    failures: (await page.locator('#cohort-connect-failures tbody tr').allInnerTexts()).map((t) => t.trim()),
    noFailures: (await page.locator('#cohort-connect-no-failures').count()) > 0,
    notices: (await page.locator('.notice').allInnerTexts()).map((t) => t.trim()).filter(Boolean),
    buttons: await page.locator('#cohort-connect button[type=submit]').evaluateAll((bs) => bs.map((b) => b.id)),
    upgradeOffer: await text('#cohort-connect-upgrade-offer'),
    sync: await text('#cohort-connect-sync'),
  }
}

const out = { step }
try {
  if (step === 'activate') {
    await signInToWordPress('admin', 'password')
    await page.goto(`${wp}/wp-admin/plugins.php`)
    await snap('plugins-before')
    await Promise.all([page.waitForNavigation(), page.click('#activate-cohort-connect')])
    out.activatedNotice = (await page.locator('#message').allInnerTexts()).join(' ').trim()
    out.deactivateLink = await page.locator('#deactivate-cohort-connect').count()
    await snap('plugins-after')
    await page.goto(pluginPage)
    await page.fill('#cohort_connect_url', cohort)
    await Promise.all([page.waitForNavigation(), page.click('#submit')])
    out.savedUrl = await page.inputValue('#cohort_connect_url')
    out.page = await readPluginPage()
    await snap('settings-saved')
  } else if (step === 'pair') {
    await ensureAdmin()
    await page.goto(pluginPage)
    const connectButton = (await page.locator('#cohort-connect-start').count()) ? '#cohort-connect-start' : null
    if (!connectButton) throw new Error('no Connect/Reconnect button on the plugin page')
    await Promise.all([page.waitForNavigation(), page.click(connectButton)])
    out.authorizeUrl = page.url()
    if (!page.url().startsWith(cohort)) throw new Error(`Connect did not lead to Cohort but to ${page.url()}`)
    await snap('cohort-authorize')
    // A fresh Cohort offers to create the first admin; later ones ask to sign in.
    if (await page.locator('button[value=create_account]').count()) {
      await page.fill('#email', args.account.email)
      await page.fill('#password', args.account.password)
      await page.fill('#password_confirmation', args.account.password)
      out.cohortSession = 'created-first-admin'
      await Promise.all([page.waitForNavigation(), page.click('button[value=create_account]')])
    } else if (await page.locator('button[value=sign_in]').count()) {
      await page.fill('#email', args.account.email)
      await page.fill('#password', args.account.password)
      out.cohortSession = 'signed-in'
      await Promise.all([page.waitForNavigation(), page.click('button[value=sign_in]')])
    } else {
      out.cohortSession = 'already-signed-in'
    }
    out.cohortCode = (await page.locator('strong.code').innerText()).trim()
    out.cohortPageText = await page.locator('body').innerText()
    await page.selectOption('#org', { label: args.org })
    await snap('cohort-signed-in')
    await Promise.all([page.waitForNavigation(), page.click(`button[value=${args.decision}]`)])
    out.returnedTo = page.url()
    await page.waitForSelector('#cohort-connect')
    out.page = await readPluginPage()
    await snap(`wordpress-after-${args.decision}`)
  } else if (step === 'admin-page') {
    await ensureAdmin()
    await page.goto(args.path ? `${wp}${args.path}` : pluginPage)
    if (args.click) {
      await Promise.all([page.waitForNavigation(), page.click(`#cohort-connect-${args.click}`)])
    }
    out.page = await readPluginPage()
    await snap(args.click ? `after-${args.click}` : 'page')
  } else if (step === 'deactivate') {
    await ensureAdmin()
    await page.goto(`${wp}/wp-admin/plugins.php`)
    await Promise.all([page.waitForNavigation(), page.click('#deactivate-cohort-connect')])
    out.notice = (await page.locator('#message').allInnerTexts()).join(' ').trim()
    out.activateLink = await page.locator('#activate-cohort-connect').count()
    await snap('deactivated')
  } else if (step === 'delete') {
    await ensureAdmin()
    await page.goto(`${wp}/wp-admin/plugins.php`)
    // WordPress asks "Are you sure…?" in a confirm() and deletes over admin-ajax.
    page.on('dialog', (d) => d.accept())
    await page.click('#delete-cohort-connect')
    // WordPress replaces the row with "Cohort Connect was successfully deleted."
    await page.locator('tr.plugin-deleted-tr[data-slug="cohort-connect"]').waitFor()
    out.deletedMessage = (await page.locator('tr.plugin-deleted-tr').innerText()).trim()
    await page.goto(`${wp}/wp-admin/plugins.php`)
    out.rowsLeft = await page.locator('tr[data-slug="cohort-connect"]').count()
    await snap('deleted')
  } else if (step === 'storefront') {
    const sent = []
    const requests = []
    page.on('request', (r) => {
      if (!r.url().startsWith(`${cohort}/v1/`)) return
      let body = null
      try { body = r.postDataJSON() } catch { body = r.postData() }
      const messages = body && Array.isArray(body.batch) ? body.batch : (body ? [body] : [])
      requests.push({ path: new URL(r.url()).pathname, messages: messages.length })
      sent.push(...messages)
    })
    const answered = []
    page.on('response', (r) => { if (r.url().startsWith(`${cohort}/v1/`)) answered.push(r.status()) })
    page.on('requestfailed', (r) => { if (r.url().startsWith(`${cohort}/v1/`)) answered.push(`failed: ${r.failure()?.errorText}`) })
    if (args.user) await signInToWordPress(args.user, args.password)
    await page.goto(`${wp}/`)
    out.sdkTag = await page.locator(`script[src^="${cohort}/sdk/v1/cohort.js"]`).evaluateAll((ss) => ss.map((s) => ({ src: s.getAttribute('src'), async: s.async || s.hasAttribute('async'), defer: s.hasAttribute('defer') })))
    out.config = await page.evaluate(() => window.cohortConfig ?? null)
    const want = args.user ? ['page', 'identify'] : ['page']
    const deadline = Date.now() + timeout
    while (Date.now() < deadline && !(want.every((t) => sent.some((m) => m.type === t)) && answered.length >= requests.length && requests.length > 0)) {
      await page.waitForTimeout(100)
    }
    if (args.thenSignOut) {
      const before = sent.length
      await page.goto(`${wp}/wp-login.php?action=logout`)
      // WordPress asks "Do you really want to log out?" with a nonce link.
      await Promise.all([page.waitForNavigation(), page.click('a[href*="action=logout"]')])
      await page.goto(`${wp}/`)
      while (Date.now() < deadline && !sent.slice(before).some((m) => m.type === 'page')) await page.waitForTimeout(100)
      out.afterSignOut = sent.slice(before)
      out.configAfterSignOut = await page.evaluate(() => window.cohortConfig ?? null)
    }
    out.requests = requests
    out.statuses = answered
    out.sent = sent
    out.title = await page.title()
    await snap(args.user ? 'storefront-signed-in' : 'storefront')
  }
  out.consoleErrors = consoleErrors
  if (admin) await context.storageState({ path: args.state })
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e)
  try { out.failureShot = await snap('failure'); out.failureUrl = page.url(); out.failureText = (await page.locator('body').innerText()).slice(0, 4000) } catch {}
}
await browser.close()
process.stdout.write(JSON.stringify(out) + '\n')
