#!/usr/bin/env node
// Drive the real @segment/analytics-node library against a Cohort server.
//
// Usage: node node_client.mjs BASE_URL WRITE_KEY [--prefix P] [--max-retries N]
//
// Sends identify, track "Order Completed", page, screen, group and alias through
// `new Analytics({writeKey, host: BASE_URL})` (the library batches them and POSTs
// `{batch:[...], writeKey, sentAt}` to BASE_URL/v1/batch with Basic auth), each with an
// explicit messageId (P + uuid) and an explicit timestamp (a Date, serialised by the
// library as toISOString(), e.g. "2026-11-23T00:10:55.890Z").
//
// stdout: exactly one JSON document
//   {"library":"analytics-node","version":"3.1.0","sent":[{type, messageId, userId?,
//    anonymousId?, event?, name?, groupId?, previousId?, properties?, traits?,
//    context?, timestamp}, ...]}
// holding only what this script passed (the library adds context.library,
// integrations:{} and _metadata). Logs go to stderr.
// Exit: 0 when every message was delivered (2xx), 1 on any delivery error the library
// reported (after its own retries), 2 on bad usage.

import { Analytics } from '@segment/analytics-node'
import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'

const log = (...a) => console.error('node_client:', ...a)

let parsed
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      prefix: { type: 'string', default: 'node-' },
      'max-retries': { type: 'string', default: '10' },
    },
  })
} catch (e) {
  log(e.message)
  process.exit(2)
}
const [baseUrl, writeKey] = parsed.positionals
if (!baseUrl || !writeKey || parsed.positionals.length !== 2) {
  log('usage: node_client.mjs BASE_URL WRITE_KEY [--prefix P] [--max-retries N]')
  process.exit(2)
}
const prefix = parsed.values.prefix
const maxRetries = Number(parsed.values['max-retries'])

const failures = []
const analytics = new Analytics({
  writeKey,
  host: baseUrl.replace(/\/+$/, ''),
  flushAt: 20,
  flushInterval: 1000,
  maxRetries,
  httpRequestTimeout: 15000,
})
analytics.on('error', (err) => {
  const id = err?.ctx?.event?.messageId
  failures.push({ code: err?.code, reason: String(err?.reason), messageId: id })
  log(`delivery error (${err?.code}) for ${id ?? '?'}: ${err?.reason}`)
})
analytics.on('http_response', (r) => {
  log(`POST ${r.url} -> ${r.status} ${r.statusText}`)
})

const run = randomUUID().replaceAll('-', '').slice(0, 12)
const userId = `node-user-${run}`
const anonymousId = `node-anon-${run}`
const email = `jane.doe+node-${run}@example.com`
const sent = []

function send(method, fields) {
  const messageId = prefix + randomUUID()
  const timestamp = new Date()
  analytics[method]({ ...fields, messageId, timestamp }, (err) => {
    if (err) log(`${method} ${messageId} callback error: ${err}`)
  })
  sent.push({ type: method, messageId, ...fields, timestamp: timestamp.toISOString() })
}

const traits = { email, firstName: 'Jane', lastName: 'Doe', plan: 'pro' }
send('identify', { userId, anonymousId, traits })

const order = {
  order_id: `ord-node-${run}`,
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
}
send('track', {
  userId,
  event: 'Order Completed',
  properties: order,
  context: { referrer: { type: 'everflow', id: 'a1b2c3d4e5f6' } },
})
send('page', {
  userId,
  name: 'Thank You',
  properties: { path: '/shop/thank-you', url: 'https://shop.example.com/shop/thank-you', title: 'Thank you' },
})
send('screen', { userId, name: 'Order Confirmation', properties: { variation: 'blue' } })
send('group', {
  userId,
  groupId: `node-group-${run}`,
  traits: { name: 'Example Inc', industry: 'Retail', employees: 42 },
})
send('alias', { userId, previousId: anonymousId })

log(`queued ${sent.length} messages for ${baseUrl}; closeAndFlush`)
// The default closeAndFlush timeout (75 s) would silently abort long retry
// sequences; give the library's own retry budget room. An abort still surfaces as
// a delivery 'error' event.
await analytics.closeAndFlush({ timeout: 10 * 60 * 1000 })

process.stdout.write(
  JSON.stringify({ library: 'analytics-node', version: analytics.VERSION, sent }) + '\n'
)
if (failures.length) {
  log(`${failures.length} delivery failure(s): ${JSON.stringify(failures)}`)
  process.exitCode = 1
} else {
  log(`all ${sent.length} messages delivered`)
}
