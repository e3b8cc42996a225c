"""The event contract, end to end, as a property: events generated across the JSON space (deep, wide, unicode, NUL,
surrogates, huge numbers, non-finite numbers, duplicates, retries without a timestamp, batches) are posted to the API
in front of a real Kafka, while pg_sink and delta_writer run against real PostgreSQL and SeaweedFS.

The invariant: the API never answers 5xx; an event answered 202 is in PostgreSQL and in the Delta table exactly once,
with the same content in both; an event answered only 4xx is in neither.

`make test` runs AP_PROPERTY_EXAMPLES examples (default 120); `make test-heavy` runs more.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from decimal import Decimal

import psycopg
import pyarrow.compute as pc
import pytest
from analytics_api.app import create_app
from analytics_api.config import load_config
from analytics_api.keys import KeyStore
from analytics_common.events import Event, utcnow
from delta_writer.config import load_config as delta_config
from delta_writer.table import EventTable
from delta_writer.writer import Writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_sink.config import load_config as sink_config
from pg_sink.sink import Sink

pytestmark = pytest.mark.integration
H = {"x-api-key": "test-key-0123456789abcdefghijkl", "content-type": "application/json"}
EXAMPLES = int(os.environ.get("AP_PROPERTY_EXAMPLES", "120"))

# --- what is generated ------------------------------------------------------------------------------------------------
# Text mixes ordinary unicode (astral planes included) with the characters no store can hold.
odd = st.sampled_from(["\x00", "\ud800", "\udfff", "\x1f", "\u200b", "\uffff", "\U0001f600", " ", "\\", '"'])
text = st.lists(st.one_of(st.characters(codec="utf-8"), odd), max_size=12).map("".join)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=25
)


@st.composite
def deep(draw):
    depth = draw(st.integers(min_value=12, max_value=40))
    v = draw(scalars)
    for _n in range(depth):
        v = [v] if draw(st.booleans()) else {"d": v}
    return v


@st.composite
def events(draw):
    e = {"event_type": draw(st.one_of(st.sampled_from(["page_view", "click", "a.b:c-d_e"]), text))}
    if draw(st.booleans()):
        e["event_id"] = str(draw(st.uuids()))
    for name in ("session_id", "user_id", "page"):
        if draw(st.booleans()):
            e[name] = draw(st.one_of(text, st.sampled_from(["s-1", "user 7", "/"])))
    if draw(st.booleans()):
        offset = draw(st.sampled_from([0, -3600, -86400 * 30, 3600, -86400 * 91, 86400 * 2]))
        e["timestamp"] = (utcnow().timestamp() + offset) if draw(st.booleans()) else None
    e["properties"] = draw(
        st.one_of(st.dictionaries(text, json_values, max_size=6), st.builds(lambda d: {"deep": d}, deep()))
    )
    return e


def encode(e: dict) -> bytes:
    from datetime import UTC, datetime

    body = dict(e)
    if body.get("timestamp") is not None:
        body["timestamp"] = datetime.fromtimestamp(body["timestamp"], UTC).isoformat()
    elif "timestamp" in body:
        del body["timestamp"]
    return json.dumps(body, allow_nan=True).encode()  # NaN and Infinity as Python writes them: not JSON


# --- what is compared -------------------------------------------------------------------------------------------------
def canonical(v):
    """JSON values by meaning: numbers as decimals (PostgreSQL's jsonb writes 1.5e308 as an integer)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float):
        return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    if isinstance(v, list):
        return [canonical(x) for x in v]
    return {k: canonical(x) for k, x in v.items()}


def pg_rows(postgres, ids):
    with psycopg.connect(postgres.dsn()) as c:
        rows = c.execute(
            "SELECT event_id::text, event_type, session_id, user_id, event_time, page, properties "
            "FROM analytics_events WHERE event_id = ANY(%s::uuid[])",
            (list(ids),),
        ).fetchall()
    return rows


def delta_rows(cfg, ids):
    dt = EventTable(cfg).open()
    if dt is None:
        return []
    t = dt.to_pyarrow_table(
        columns=["event_id", "event_type", "session_id", "user_id", "event_time", "page", "properties"]
    )
    t = t.filter(pc.is_in(t["event_id"], value_set=__import__("pyarrow").array(list(ids))))
    return [tuple(r.values()) for r in t.to_pylist()]


def by_id(rows, properties_are_text=False):
    out = {}
    for r in rows:
        props = json.loads(r[6]) if properties_are_text else r[6]
        out.setdefault(r[0], []).append((r[1], r[2], r[3], r[4], r[5], canonical(props)))
    return out


@pytest.fixture
def platform(kafka, api_env, sink_env, delta_env):
    env = {
        **api_env,
        **kafka.env("API_", "analytics-api"),
        "API_RATE_LIMIT": "1000000",
        "API_RATE_BURST": "1000000",
        "API_MAX_BATCH": "20",
    }
    cfg = load_config(env)
    sink = Sink(sink_config({**sink_env, "PGSINK_BATCH_SECONDS": "0.5"}))
    dcfg = delta_config(
        {**delta_env, "DELTA_GROUP": f"delta-writer-{uuid.uuid4().hex[:8]}", "DELTA_BATCH_SECONDS": "1"}
    )
    writer = Writer(dcfg)
    threads = [threading.Thread(target=x.run, daemon=True) for x in (sink, writer)]
    for t in threads:
        t.start()
    from fastapi.testclient import TestClient

    try:
        with TestClient(create_app(cfg, KeyStore.from_file(cfg.keys_file))) as client:
            yield client, dcfg
    finally:
        sink.stop()
        writer.stop()
        for t in threads:
            t.join(30)


def test_what_the_api_accepts_every_store_holds_exactly_once(platform, postgres):
    client, dcfg = platform
    accepted: dict[str, dict] = {}  # event_id -> the first accepted copy (as the client sent it)
    refused_ids: set[str] = set()
    posted: list[dict] = []
    statuses: dict[int, int] = {}

    def post(path, body):
        r = client.post(path, content=body, headers=H)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, f"{r.status_code} for {body[:300]!r}: {r.text[:300]}"
        assert r.status_code in (202, 400, 413, 422), r.text
        return r

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def one_request(data):
        # Every example draws the same things in the same order (Hypothesis needs that), then picks what to send.
        kind = data.draw(st.sampled_from(["one", "one", "retry", "batch"]))
        pick = data.draw(st.integers(min_value=0, max_value=10**6))
        one = data.draw(events())
        several = data.draw(st.lists(events(), min_size=1, max_size=4))
        if kind == "retry" and posted:
            # The client retries an earlier event as it sent it: with its event_id, and with its timestamp or, when
            # it sent none, again without one (the server gives the retry a later time).
            batch = [dict(posted[pick % len(posted)])]
        elif kind == "batch":
            batch = several
        else:
            batch = [one]
        for e in batch:
            e.setdefault("event_id", str(uuid.uuid4()))  # known to the test; the API keeps a client's event_id
        if kind == "batch":
            raw = b'{"events": [' + b", ".join(encode(e) for e in batch) + b"]}"
            r = post("/analytics/batch", raw)
        else:
            r = post("/analytics", encode(batch[0]))
        for e in batch:
            if r.status_code == 202:
                accepted.setdefault(e["event_id"], e)
                posted.append(e)
            else:
                refused_ids.add(e["event_id"])

    one_request()
    assert accepted, f"no request was accepted: {statuses}"
    assert sum(n for s, n in statuses.items() if s != 202), f"no request was refused: {statuses}"

    ids = set(accepted)
    deadline = time.time() + 120
    while time.time() < deadline:
        pg, lake = by_id(pg_rows(postgres, ids)), by_id(delta_rows(dcfg, ids), properties_are_text=True)
        if set(pg) == ids and set(lake) == ids:
            break
        time.sleep(1)
    missing_pg, missing_lake = ids - set(pg), ids - set(lake)
    assert not missing_pg and not missing_lake, (
        f"accepted but not stored: PostgreSQL {len(missing_pg)}, Delta {len(missing_lake)} of {len(ids)}; e.g. "
        + repr([accepted[i] for i in list(missing_pg | missing_lake)[:3]])[:2000]
    )
    time.sleep(2)  # anything arriving late would be a second copy
    pg, lake = by_id(pg_rows(postgres, ids)), by_id(delta_rows(dcfg, ids), properties_are_text=True)
    for event_id, sent in accepted.items():
        assert len(pg[event_id]) == 1, f"{event_id} is {len(pg[event_id])} times in PostgreSQL"
        assert len(lake[event_id]) == 1, f"{event_id} is {len(lake[event_id])} times in Delta"
        assert pg[event_id] == lake[event_id], f"{event_id}: PostgreSQL {pg[event_id]} != Delta {lake[event_id]}"
        event_type, session_id, user_id, _when, page, props = pg[event_id][0]
        expected = Event.model_validate_json(encode(sent))  # the API's normalisation (whitespace), not its verdict
        assert (event_type, session_id, user_id, page) == (
            expected.event_type,
            expected.session_id,
            expected.user_id,
            expected.page,
        )
        assert props == canonical(sent["properties"])
    never = refused_ids - ids
    assert not set(by_id(pg_rows(postgres, never))), "refused events reached PostgreSQL"
    assert not set(by_id(delta_rows(dcfg, never), properties_are_text=True)), "refused events reached Delta"
