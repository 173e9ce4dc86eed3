#!/usr/bin/env python3
"""Drive the real Segment Python library (segment-analytics-python) against a Cohort server.

Usage: python_client.py BASE_URL WRITE_KEY [--gzip] [--prefix P]

Sends identify, track "Order Completed", page, screen, group and alias through
`segment.analytics.Client` (the library's own queue, consumer thread, batching and
retries; it POSTs `{batch:[...], sentAt, writeKey}` to BASE_URL/v1/batch).
Every message gets an explicit messageId (P + uuid4) and an explicit timestamp.

stdout: exactly one JSON document
  {"library": "analytics-python", "version": "...", "gzip": bool,
   "sent": [ {type, messageId, userId?, anonymousId?, event?, name?, groupId?,
              previousId?, properties?, traits?, context?, timestamp}, ... ]}
where each entry holds only what this script passed to the library (the library adds
context.library, integrations, and sends `"userId": null`/`"anonymousId": null` for
absent ids). `timestamp` is the ISO string that appears on the wire: the script
truncates its datetime to milliseconds because the library serialises with
`isoformat(timespec="milliseconds")`, e.g. "2026-11-23T00:10:51.737+00:00".

Logs go to stderr. Exit status: 0 when every batch was accepted (2xx), 1 when the
library reported any failed upload through on_error (after its own retries), 2 on
bad usage.
"""

import argparse
import json
import logging
import sys
import uuid
from datetime import datetime, timezone

from segment.analytics.client import Client
from segment.analytics.version import VERSION


def now_ms():
    t = datetime.now(timezone.utc)
    return t.replace(microsecond=(t.microsecond // 1000) * 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_url")
    ap.add_argument("write_key")
    ap.add_argument("--gzip", action="store_true", help="send gzip-compressed batches")
    ap.add_argument("--prefix", default="py-", help="messageId prefix (default: py-)")
    ap.add_argument("--max-retries", type=int, default=20)
    args = ap.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="python_client: %(levelname)s %(name)s: %(message)s",
    )
    log = logging.getLogger("python_client")

    failures = []

    def on_error(err, batch):
        ids = [m.get("messageId") for m in batch]
        failures.append({"error": repr(err), "messageIds": ids})
        log.error("upload failed for %d message(s) %s: %r", len(batch), ids, err)

    client = Client(
        args.write_key,
        host=args.base_url.rstrip("/"),
        gzip=args.gzip,
        sync_mode=False,
        max_retries=args.max_retries,
        on_error=on_error,
        # The queue is flushed explicitly below; a short interval keeps batches small.
        upload_interval=0.2,
        timeout=15,
    )

    run = uuid.uuid4().hex[:12]
    user_id = f"py-user-{run}"
    anon_id = f"py-anon-{run}"
    email = f"jane.doe+py-{run}@example.com"
    sent = []

    def send(method, call_kwargs, record):
        message_id = args.prefix + str(uuid.uuid4())
        ts = now_ms()
        ok, _msg = getattr(client, method)(message_id=message_id, timestamp=ts, **call_kwargs)
        if not ok:
            failures.append({"error": "enqueue refused (queue full)", "messageIds": [message_id]})
            log.error("enqueue refused for %s %s", method, message_id)
        entry = {"type": method, "messageId": message_id}
        entry.update(record)
        entry["timestamp"] = ts.isoformat(timespec="milliseconds")
        sent.append(entry)

    traits = {"email": email, "firstName": "Jane", "lastName": "Doe", "plan": "pro"}
    send(
        "identify",
        dict(user_id=user_id, anonymous_id=anon_id, traits=traits),
        {"userId": user_id, "anonymousId": anon_id, "traits": traits},
    )

    order = {
        "order_id": f"ord-py-{run}",
        "total": 27.5,
        "revenue": 22.5,
        "shipping": 3,
        "tax": 2,
        "discount": 2.5,
        "currency": "USD",
        "coupon": "SPRING10",
        "products": [
            {"product_id": "prod_1", "sku": "SKU-1", "name": "Blue T-Shirt", "price": 19, "quantity": 1},
            {"product_id": "prod_2", "sku": "SKU-2", "name": "Sticker Pack", "price": 1.75, "quantity": 2},
        ],
    }
    track_ctx = {"referrer": {"type": "everflow", "id": "a1b2c3d4e5f6"}}
    send(
        "track",
        dict(user_id=user_id, event="Order Completed", properties=order, context=track_ctx),
        {"userId": user_id, "event": "Order Completed", "properties": order, "context": track_ctx},
    )

    page_props = {"path": "/shop/thank-you", "url": "https://shop.example.com/shop/thank-you", "title": "Thank you"}
    send(
        "page",
        dict(user_id=user_id, name="Thank You", properties=page_props),
        {"userId": user_id, "name": "Thank You", "properties": page_props},
    )

    screen_props = {"variation": "blue"}
    send(
        "screen",
        dict(user_id=user_id, name="Order Confirmation", properties=screen_props),
        {"userId": user_id, "name": "Order Confirmation", "properties": screen_props},
    )

    group_id = f"py-group-{run}"
    group_traits = {"name": "Example Inc", "industry": "Retail", "employees": 42}
    send(
        "group",
        dict(user_id=user_id, group_id=group_id, traits=group_traits),
        {"userId": user_id, "groupId": group_id, "traits": group_traits},
    )

    send(
        "alias",
        dict(previous_id=anon_id, user_id=user_id),
        {"userId": user_id, "previousId": anon_id},
    )

    log.info("queued %d messages for %s (gzip=%s); flushing", len(sent), args.base_url, args.gzip)
    client.flush()
    client.shutdown()

    json.dump({"library": "analytics-python", "version": VERSION, "gzip": args.gzip, "sent": sent}, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()

    if failures:
        log.error("%d upload failure(s): %s", len(failures), json.dumps(failures))
        return 1
    log.info("all %d messages accepted", len(sent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
