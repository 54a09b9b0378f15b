"""Verifies deliveries signed by farthing with the official Standard Webhooks library.

Reads a JSON list of cases on stdin: {secret, id, timestamp, body, signature, valid}. Each
case must verify (or fail to verify) exactly as `valid` says. Prints "ok N" and exits 0, or
names the first case that disagrees and exits 1.
"""
import json
import sys

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

cases = json.load(sys.stdin)
for i, case in enumerate(cases):
    headers = {
        "webhook-id": case["id"],
        "webhook-timestamp": str(case["timestamp"]),
        "webhook-signature": case["signature"],
    }
    try:
        Webhook(case["secret"]).verify(case["body"], headers)
        verified = True
    except WebhookVerificationError:
        verified = False
    if verified != case["valid"]:
        print(f"case {i}: verified={verified}, expected {case['valid']}: {case}")
        sys.exit(1)
print(f"ok {len(cases)}")
