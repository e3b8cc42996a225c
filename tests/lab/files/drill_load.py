"""Steady ingest through the load balancers, as a careful client sends it:
    drill_load.py OUT CA SESSION TOTAL BATCH RATE EDGE [EDGE...]

Each batch carries the client's own event_ids and its own session (SESSION-<batch number>); a batch is retried with
the same ids (so a retry is deduplicated by every store) after a 503, a 429, a 502/504 or a connection failure, on the
next load balancer, until it is answered 202 or 300 seconds have passed. RATE is batch requests per second. The API
key comes from the environment (DRILL_API_KEY), never from the arguments. Writes OUT (JSON) every few seconds and at
the end:
{"done", "accepted": [ids], "accepted_at": [[time, n]], "statuses": {status: n}, "other_5xx": n, "given_up": n}.
"""

import http.client
import json
import os
import ssl
import sys
import threading
import time
import uuid

out, ca, session = sys.argv[1], sys.argv[2], sys.argv[3]
total, batch, rate = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
edges = sys.argv[7:]
ctx = ssl.create_default_context(cafile=ca)
headers = {"content-type": "application/json", "x-api-key": os.environ["DRILL_API_KEY"]}
state = {
    "done": False,
    "accepted": [],
    "accepted_at": [],
    "statuses": {},
    "other_5xx": 0,
    "given_up": 0,
    "started": time.time(),
}
lock = threading.Lock()


def count(status):
    with lock:
        state["statuses"][str(status)] = state["statuses"].get(str(status), 0) + 1
        if isinstance(status, int) and status >= 500 and status != 503:
            state["other_5xx"] += 1


def send(n, events):
    body = json.dumps({"events": events})
    deadline, attempt = time.time() + 300, 0
    while time.time() < deadline:
        edge = edges[(n + attempt) % len(edges)]
        attempt += 1
        try:
            conn = http.client.HTTPSConnection(edge, 443, context=ctx, timeout=30)
            conn.request("POST", "/analytics/batch", body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            conn.close()
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            status = f"connection: {type(e).__name__}"
        count(status)
        if status == 202:
            with lock:
                state["accepted"] += [e["event_id"] for e in events]
                state["accepted_at"].append([round(time.time(), 1), len(events)])
            return
        if status == 429:
            time.sleep(2)
        elif isinstance(status, int) and 400 <= status < 500:
            break  # a client error: retrying the same body cannot help
        else:
            time.sleep(0.5)
    with lock:
        state["given_up"] += 1


def save():
    # One save at a time: the saver thread and the final save share the temporary file (a second os.replace of it
    # failed once, killed the saver thread, and the drill waited for a "done" that never came).
    with lock:
        text = json.dumps(state)
        with open(out + ".tmp", "w") as f:
            f.write(text)
        os.replace(out + ".tmp", out)


def saver():
    while not state["done"]:
        save()
        time.sleep(2)


threading.Thread(target=saver, daemon=True).start()
workers = []
start = time.time()
for n, first in enumerate(range(0, total, batch)):
    # One session per batch: the batches spread over the topic's partitions (a session stays on one).
    events = [
        {"event_id": str(uuid.uuid4()), "event_type": "drill", "session_id": f"{session}-{n}", "properties": {"n": i}}
        for i in range(first, min(first + batch, total))
    ]
    t = threading.Thread(target=send, args=(n, events))
    t.start()
    workers.append(t)
    time.sleep(max(0.0, start + (n + 1) / rate - time.time()))
for t in workers:
    t.join()
state["done"] = True
save()
