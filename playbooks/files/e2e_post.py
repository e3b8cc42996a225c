"""Post N events through the load balancer in batches, as a client would: e2e_post.py HOST PORT CA SESSION N.

HTTPS to HOST:PORT (verified against CA), POST /analytics/batch. The API key comes from the environment (E2E_API_KEY),
never from the arguments. Prints one JSON line: {"accepted": <events answered 202>, "statuses": {<status>: <count>}}.
A 429 is retried after its Retry-After (the check must not depend on the rate limit's settings).
"""

import http.client
import json
import os
import ssl
import sys
import time

host, port, ca, session, total = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
headers = {"content-type": "application/json", "x-api-key": os.environ["E2E_API_KEY"]}
accepted, statuses, batch = 0, {}, 100
for start in range(0, total, batch):
    events = [
        {"event_type": "e2e_check", "session_id": session, "properties": {"n": i}}
        for i in range(start, min(start + batch, total))
    ]
    body = json.dumps({"events": events})
    for _attempt in range(10):
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
        conn.request("POST", "/analytics/batch", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status != 429:
            break
        time.sleep(float(response.getheader("Retry-After") or 1))
    if response.status == 202:
        accepted += len(events)
print(json.dumps({"accepted": accepted, "statuses": statuses}))
