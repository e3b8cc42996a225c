"""Drive a deployment's public endpoint at a chosen rate: loadtest.py HOST PORT CA SESSION RATE SECONDS BATCH.

Open loop: a batch of BATCH events is due every BATCH/RATE seconds whatever the answers do, sent over a pool of
keep-alive HTTPS connections (verified against CA; the API key from LOADTEST_API_KEY, never from the arguments). A
request's latency counts from when it was due, so a server that falls behind shows in the latency instead of slowing
the client down (no coordinated omission). Every event carries its own event_id, so a batch answered 429 or 50x, or
whose connection failed, is sent again unchanged (the platform stores each event_id once): a 429 for up to a minute,
the others up to 5 times.

Beside the load, a probe event is posted alone every LOADTEST_PROBE_INTERVAL seconds (default 0.2), in the session
SESSION-probe with its timestamp set when it is sent: the pollers on a PostgreSQL member and a Delta writer host measure
freshness from that timestamp to when they first see the probe (a session of its own, so that looking for the probes
never reads the load's rows).

Standard library only (the vantage host runs it with its system python3). Prints one JSON object.
"""

import asyncio
import itertools
import json
import os
import ssl
import sys
import time
import uuid
from datetime import UTC, datetime

ATTEMPTS = 5
RETRIED = {429, 502, 503, 504}


def quantile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Client:
    def __init__(self, host, port, ca, key, connections, timeout):
        self.host, self.port, self.key, self.timeout = host, port, key, timeout
        self.ctx = ssl.create_default_context(cafile=ca)
        self.pool = asyncio.Queue()
        for _n in range(connections):
            self.pool.put_nowait(None)  # a slot; its connection opens on first use
        self.statuses, self.errors = {}, {}

    async def _open(self):
        return await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ctx, server_hostname=self.host), self.timeout
        )

    async def _exchange(self, conn, path, body):
        reader, writer = conn
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: application/json\r\n"
            f"x-api-key: {self.key}\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length, close, retry_after = 0, False, None
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _sep, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "retry-after" and value.strip().isdigit():
                retry_after = min(float(value.strip()), 10.0)
        await reader.readexactly(length)
        return status, close, retry_after

    async def post(self, path, body):
        """One request on a pooled connection: its status (None when the connection failed or timed out) and the
        seconds its Retry-After asks for (None without one)."""
        conn = await self.pool.get()
        try:
            if conn is None:
                conn = await self._open()
            status, close, retry_after = await asyncio.wait_for(self._exchange(conn, path, body), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError, ssl.SSLError) as e:
            kind = type(e).__name__
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if conn is not None:
                conn[1].close()
            self.pool.put_nowait(None)
            return None, None
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if close:
            conn[1].close()
            conn = None
        self.pool.put_nowait(conn)
        return status, retry_after

    async def post_until_answered(self, path, body):
        """Post; resend what was refused for now (429, 50x) or never answered. A 429 asks the client to slow down,
        not to give up: it is resent for up to a minute (after its Retry-After, else a growing pause); anything else
        refused for now or unanswered gets ATTEMPTS tries. Returns (final status, attempts)."""
        status, attempts, failures = None, 0, 0
        deadline = time.monotonic() + 60
        while True:
            attempts += 1
            status, retry_after = await self.post(path, body)
            if status is not None and status not in RETRIED:
                return status, attempts
            if status == 429 and time.monotonic() < deadline:
                await asyncio.sleep(retry_after or min(2.0, 0.25 * attempts))
                continue
            failures += 1
            if failures >= ATTEMPTS:
                return status, attempts
            await asyncio.sleep(min(2.0, 0.2 * failures))


def now_iso():
    return datetime.now(UTC).isoformat(timespec="microseconds")


async def run(host, port, ca, session, rate, seconds, batch):
    key = os.environ["LOADTEST_API_KEY"]
    probe_interval = float(os.environ.get("LOADTEST_PROBE_INTERVAL", "0.2"))
    connections = int(os.environ.get("LOADTEST_CONNECTIONS", "32"))
    client = Client(host, port, ca, key, connections, timeout=float(os.environ.get("LOADTEST_TIMEOUT", "10")))
    probes = Client(host, port, ca, key, 4, timeout=client.timeout)
    result = {"accepted": 0, "refused": 0, "unanswered": 0, "resent": 0, "latency": [], "probes_accepted": 0}
    counter = itertools.count()

    async def send_batch(due):
        events = [
            {
                "event_id": str(uuid.uuid4()),
                "event_type": "loadtest",
                "session_id": session,
                "timestamp": now_iso(),
                "properties": {"n": next(counter)},
            }
            for _i in range(batch)
        ]
        status, attempts = await client.post_until_answered("/analytics/batch", json.dumps({"events": events}).encode())
        result["latency"].append(time.monotonic() - due)
        result["resent"] += attempts - 1
        if status == 202:
            result["accepted"] += batch
        elif status is None:
            result["unanswered"] += batch
        else:
            result["refused"] += batch

    async def send_probe(_due):
        event = {"event_id": str(uuid.uuid4()), "event_type": "loadtest_probe", "session_id": f"{session}-probe"}
        event["timestamp"] = now_iso()  # last: the freshness clock starts when the probe leaves
        status, _attempts = await probes.post_until_answered("/analytics", json.dumps(event).encode())
        if status == 202:
            result["probes_accepted"] += 1

    async def pace(interval, send, tasks):
        """Start send(due) every `interval` seconds for the run's length, whether or not earlier ones answered."""
        start = time.monotonic()
        n = 0
        while (due := start + n * interval) < start + seconds:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(send(due)))
            n += 1
        return n

    tasks = []
    started = time.monotonic()
    scheduled, probes_sent = await asyncio.gather(
        pace(batch / rate, send_batch, tasks), pace(probe_interval, send_probe, tasks)
    )
    sending = time.monotonic() - started
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    latency = result.pop("latency")
    statuses = {str(k): v for k, v in sorted(client.statuses.items())}
    return {
        "session": session,
        "rate_asked": rate,
        "seconds_asked": seconds,
        "batch": batch,
        "events_sent": scheduled * batch,
        "accepted": result["accepted"] + result["probes_accepted"],
        "load_accepted": result["accepted"],
        "refused": result["refused"],
        "unanswered": result["unanswered"],
        "resent_requests": result["resent"],
        "accepted_per_second": round(result["accepted"] / elapsed, 1),
        "sending_seconds": round(sending, 2),
        "elapsed_seconds": round(elapsed, 2),
        "requests": sum(client.statuses.values()),
        "statuses": statuses,
        "connection_errors": client.errors,
        "latency_ms": {
            "p50": round(quantile(latency, 0.5) * 1000, 1) if latency else None,
            "p99": round(quantile(latency, 0.99) * 1000, 1) if latency else None,
            "max": round(max(latency) * 1000, 1) if latency else None,
        },
        "probes_sent": probes_sent,
        "probes_accepted": result["probes_accepted"],
        "probe_statuses": {str(k): v for k, v in sorted(probes.statuses.items())},
    }


def main():
    if len(sys.argv) != 8:
        sys.exit(__doc__.splitlines()[0])
    host, port, ca, session = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    rate, seconds, batch = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
    print(json.dumps(asyncio.run(run(host, port, ca, session, rate, seconds, batch))))


if __name__ == "__main__":
    main()
