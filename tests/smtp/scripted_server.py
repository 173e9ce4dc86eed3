"""A real SMTP server (aiosmtpd) that answers on cue, for the failure paths
of Cohort's mail tests. The recipient's local part picks the answer:

  ok@…        250 (the message is kept: its Message-ID is printed)
  throttle@…  454 4.7.0 Throttling failure: Maximum sending rate exceeded.
  slow@…      421 4.7.0 Try again later, closing connection.
  busy@…      450 4.2.1 Too many requests, please slow down
  later@…     451 4.3.0 Local error in processing
  flaky…@…    451 the first time an address is tried, 250 after
  gone@…      550 5.1.1 <gone@…>: Recipient address rejected: User unknown
  reject@…    554 5.7.1 Message rejected (at the end of DATA)
  unhurried…@ 250 after 50 ms (a provider that takes its time, so a crash
              finds transactions in flight)

Usage: python3 scripted_server.py PORT. Prints "ready PORT" once listening,
then one line per accepted message: "accepted <Message-ID>".
"""

import asyncio
import email
import sys

from aiosmtpd.controller import Controller

RCPT_ANSWERS = {
    "throttle": "454 4.7.0 Throttling failure: Maximum sending rate exceeded.",
    "slow": "421 4.7.0 Try again later, closing connection.",
    "busy": "450 4.2.1 Too many requests, please slow down",
    "later": "451 4.3.0 Local error in processing",
}


class Scripted:
    def __init__(self):
        self.tried = set()
        self.queued = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("flaky") and address.lower() not in self.tried:
            self.tried.add(address.lower())
            return "451 4.3.0 Local error in processing"
        if local in RCPT_ANSWERS:
            return RCPT_ANSWERS[local]
        if local == "gone":
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.split("@", 1)[0].lower() == "reject" for r in envelope.rcpt_tos):
            return "554 5.7.1 Message rejected"
        if any(r.split("@", 1)[0].lower().startswith("unhurried") for r in envelope.rcpt_tos):
            await asyncio.sleep(0.05)
        message = email.message_from_bytes(envelope.content)
        print("accepted", message.get("Message-ID"), flush=True)
        self.queued += 1
        return f"250 2.0.0 Ok: queued as SCRIPTED{self.queued:08d}"


def main():
    port = int(sys.argv[1])
    controller = Controller(Scripted(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", port, flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
