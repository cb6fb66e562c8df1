"""The prediction service against hostile input, in process (issue 19).

Each test is an attack that got a 5xx, an unbounded cost or a silently wrong answer before:

* JSON nested 200,000 deep (``RecursionError``, 500), ``NaN``/``1e400``/lone surrogates (500
  while rendering the 422), a body whose errors render 8x its size;
* codes that are ASCII only after ``upper()`` (``"ﬂ"`` -> ``"FL"``), ``flight: "12"`` / ``true``;
* an ``x-request-id`` of any length or bytes, echoed and written to the prediction log;
* label sets and caches that grow with what the client sends (HTTP methods, SQL texts).

Over real HTTP (chunked bodies, header sizes): ``test_serving_http_limits.py``; against the
OpenAPI schema: ``test_serving_openapi.py``.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops import lake
from mlops.config import get_settings
from mlops.serving.app import ServeConfig, create_app
from mlops.serving.logger import PredictionLogger
from mlops.serving.model import ModelHolder
from tests.unit.test_serving_validation import FLIGHT, FakeReader, fake_model, make_client

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with make_client(tmp_path_factory.mktemp("hostile"), max_batch=1000) as c:
        yield c


def _errors(resp) -> list[dict]:
    detail = resp.json()["detail"]
    return detail if isinstance(detail, list) else [{"msg": detail}]


def _refused(resp, status: int, field: str | None = None, words: str = "") -> list[dict]:
    assert resp.status_code == status, resp.text[:2000]
    errors = _errors(resp)
    if field is not None:
        assert any(e.get("loc", [])[-1:] == [field] for e in errors), errors
    assert any(words in e["msg"] for e in errors), errors
    return errors


# --------------------------------------------------------------------------------------------------
# Parse failures are 4xx, never 5xx
# --------------------------------------------------------------------------------------------------


def test_deep_nesting_is_400(client):
    """Before: json.loads raised RecursionError, a 500 (an exception in the test client)."""
    for body in (b"[" * 200_000, b'{"flights": ' + b"[" * 200_000, b'{"a":' * 100_000):
        resp = client.post("/predict", content=body, headers=JSON)
        _refused(resp, 400, words="nested deeper than 200 levels")
    # Under the parser's limit: the usual 422, with a short echo of the input.
    resp = client.post("/predict", content=b'{"flights": ' + b"[" * 150 + b"]" * 150 + b"}", headers=JSON)
    _refused(resp, 422, words="valid dictionary")
    assert len(resp.content) < 2000, resp.text


def test_only_json_bodies_are_read(client):
    """Before: any Content-Type (text/plain, none) was parsed as JSON; a cross-site page could post
    text/plain predictions (no CORS preflight) into the prediction log. Found by schemathesis."""
    body = json.dumps(FLIGHT).encode()
    for declared in (
        "text/plain",
        "text/plain;charset=UTF-8",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        None,
    ):
        headers = {"content-type": declared} if declared else {}
        resp = client.post("/predict", content=body, headers=headers)
        _refused(resp, 415, words="Content-Type must be application/json")
        assert resp.headers["connection"] == "close"
    for declared in (
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/ld+json",
    ):
        assert client.post("/predict", content=body, headers={"content-type": declared}).status_code == 200


def test_unrenderable_values_are_4xx(client):
    """Before: 1e400, NaN and "\\ud800" were 500s (ValueError / UnicodeEncodeError rendering the 422)."""
    cases = [
        (b"1e400", 422),  # inf: Starlette refuses to render it (allow_nan=False)
        (b"-1e400", 422),
        (b"NaN", 400),  # not JSON
        (b"Infinity", 400),
        (b'"\\ud800"', 400),  # a lone surrogate cannot be encoded in the answer
        (b"9" * 5000, 400),  # past Python's int-to-str limit
    ]
    for raw, status in cases:
        body = json.dumps({**FLIGHT, "flight": "X"}).replace('"X"', raw.decode()).encode()
        resp = client.post("/predict", content=body, headers=JSON)
        assert resp.status_code == status, (raw[:20], resp.text)
        if status == 422:
            assert resp.json()["detail"][0]["loc"] == ["body", "flights", 0, "flight"]
        else:
            assert "not valid JSON" in resp.json()["detail"]


def test_error_answers_are_bounded(client):
    """1,000 flights with 5 bad fields each: 50 errors and a count, not 5,000 (670 KB)."""
    bad = {**FLIGHT, "carrier": "x" * 1000, "origin": "y", "dest": 3, "flight": "a", "sched_dep_ts": 1}
    resp = client.post("/predict", json=[bad] * 1000)
    errors = _refused(resp, 422, words="more errors not shown")
    assert len(errors) == 51 and errors[-1]["type"] == "too_many_errors"
    assert "4950 more errors" in errors[-1]["msg"]
    assert len(resp.content) < 20_000, len(resp.content)
    carrier = next(e for e in errors if e["loc"][-1] == "carrier")
    assert len(carrier["msg"]) < 300 and len(carrier["input"]) < 100, carrier


def test_a_flight_with_thousands_of_keys_is_one_error(client):
    """Before: one error per unknown key, a 16.8 MB answer to a 2 MB body."""
    body = json.dumps({**FLIGHT, **{f"k{i}": 1 for i in range(150_000)}}).encode()
    assert len(body) < 2_000_000
    resp = client.post("/predict", content=body, headers=JSON)
    errors = _refused(resp, 422, words="150006 fields; a flight has carrier, flight")
    assert len(errors) == 1 and errors[0]["loc"] == ["body", "flights", 0]


# --------------------------------------------------------------------------------------------------
# Strict types and ASCII codes
# --------------------------------------------------------------------------------------------------


NON_ASCII = [
    ("carrier", "\ufb02"),  # "ﬂ".upper() == "FL", a known carrier
    ("carrier", "\uff35\uff21"),  # fullwidth "ＵＡ"
    ("origin", "\u0130ah"),  # "İ"
    ("dest", "\ufb01\ufb02"),
    ("dest", "IAH\u00a0"),  # a non-ASCII space around a code
    ("tailnum", "n\ufb02"),  # "NFL" after upper()
    ("tailnum", "N\u00b2"),
    ("sched_dep_ts", "2013-06-12T05:15:00\u221204:00"),  # a minus sign
    ("sched_dep_ts", "\u0662\u0660\u0661\u0663-06-12T05:15"),  # Arabic-Indic digits
]


@pytest.mark.parametrize(
    ("field", "value"), NON_ASCII, ids=[f"{f}-{i}" for i, (f, _) in enumerate(NON_ASCII)]
)
def test_codes_are_ascii_before_upper_casing(client, field, value):
    """Before: "ﬂ" was accepted as carrier FL (and "nﬂ" as tail NFL)."""
    resp = client.post("/predict", json={**FLIGHT, field: value})
    errors = _refused(resp, 422, field=field, words="non-ASCII")
    assert errors[0]["type"] == "non_ascii"
    # And every text field is a JSON string: no number, boolean, list or object is coerced.
    for other in (1, True, [value], {"code": value}):
        _refused(
            client.post("/predict", json={**FLIGHT, field: other}), 422, field=field, words="valid string"
        )


def test_flight_is_a_json_integer(client):
    """Before: "12" and true were accepted (as flight 12 and flight 1)."""
    for value in ("12", True, False, "1545", 12.5, None, [1545], {"n": 1545}):
        resp = client.post("/predict", json={**FLIGHT, "flight": value})
        _refused(resp, 422, field="flight", words="valid integer")
    # 12.0 is the JSON Schema integer 12 (what the OpenAPI says): accepted, as flight 12.
    resp = client.post("/predict", json={**FLIGHT, "flight": 12.0})
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"][0]["flight_id"] == "2013-06-12_UA_12_EWR"


def test_calendar_and_range_errors_name_the_field(client):
    cases = {
        "2013-02-29T08:00": ("invalid_departure", "not a date on the calendar"),
        "2013-06-12T24:00": ("departure_range", "outside its range"),
        "2013-06-12T08:00+24:00": ("departure_range", "outside its range"),
        "2013-06-12T08:00:00.1234567": ("departure_syntax", "ISO 8601"),
        "2013-06-12T08:00" + " " * 5000: ("departure_syntax", "ISO 8601"),
    }
    for value, (kind, words) in cases.items():
        resp = client.post("/predict", json={**FLIGHT, "sched_dep_ts": value})
        errors = _refused(resp, 422, field="sched_dep_ts", words=words)
        assert errors[0]["type"] == kind, (value, errors)
        assert len(errors[0]["msg"]) < 400


# --------------------------------------------------------------------------------------------------
# x-request-id: bounded before it is echoed and logged
# --------------------------------------------------------------------------------------------------


def test_request_id_is_bounded_before_echo_and_log(tmp_path):
    """Before: any x-request-id (10,000 characters, control characters) was echoed and logged."""
    lake_uri = (tmp_path / "lake").as_uri()
    logger = PredictionLogger(lake_uri, flush_seconds=3600)
    holder = ModelHolder(resolve=lambda: "7", load=lambda v: fake_model(v), poll_seconds=3600)
    config = ServeConfig(poll_seconds=3600, settings=get_settings({"MLOPS_HOME": str(tmp_path)}))
    app = create_app(config, holder=holder, reader_factory=FakeReader, logger=logger)
    sent = {
        "ok-1": "trace-2013.06.12:abc_DEF-1",
        "long": "A" * 10_000,
        "129": "a" * 129,
        "control": "abc\x01def",
        "tab": "abc\tdef",
        "latin-1": "caf\xe9".encode("latin-1"),
        "ok-2": "f" * 128,
    }
    echoed = {}
    with TestClient(app) as c:
        for name, rid in sent.items():
            resp = c.post("/predict", json=FLIGHT, headers={"x-request-id": rid})
            assert resp.status_code == 200, resp.text
            assert resp.headers["x-request-id"] == resp.json()["request_id"]
            echoed[name] = resp.json()["request_id"]
    # close() flushed the log
    assert echoed["ok-1"] == sent["ok-1"] and echoed["ok-2"] == sent["ok-2"]
    replaced = [echoed[k] for k in ("long", "129", "control", "tab", "latin-1")]
    assert all(len(r) == 32 and int(r, 16) >= 0 for r in replaced), replaced
    assert len(set(replaced)) == len(replaced)
    files = list(lake.list_uris(lake.join(lake_uri, "predictions_online")))
    logged = pd.concat([lake.read_parquet(f) for f in files])["request_id"].tolist()
    assert sorted(logged) == sorted(echoed.values())


# --------------------------------------------------------------------------------------------------
# Bounded label sets and caches
# --------------------------------------------------------------------------------------------------


def test_metric_labels_do_not_grow_with_client_methods(client):
    """Before: every method token a client sent became a new Prometheus series."""
    for i in range(40):
        assert client.request(f"X{i}", "/predict").status_code == 405
    text = client.get("/metrics").text
    methods = {
        line.split('method="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("mlops_serving_requests_total{")
    }
    assert methods <= {"GET", "POST", "other"}, methods
    assert 'mlops_serving_requests_total{method="other",path="/predict",status="405"} 40.0' in text


def _store(tmp_path, views: int, keys: int) -> tuple[str, list[str]]:
    """A SQLite online store laid out as Feast's (entity_key, feature_name, value) per view."""
    from feast.protos.feast.types.Value_pb2 import Value

    from mlops.serving.online import _key_bytes

    db = str(tmp_path / "online.db")
    tables = [f"flight_delay_v{j}" for j in range(views)]
    with sqlite3.connect(db) as conn:
        for j, table in enumerate(tables):
            conn.execute(f'CREATE TABLE "{table}" (entity_key BLOB, feature_name TEXT, value BLOB)')
            rows = [
                (_key_bytes(f"k{j}", f"v{i}", 3), f"f{j}", Value(double_val=j * 1000 + i).SerializeToString())
                for i in range(keys)
            ]
            conn.executemany(f'INSERT INTO "{table}" VALUES (?, ?, ?)', rows)
    return db, tables


def test_sql_cache_is_bounded_under_crafted_batches(tmp_path):
    """Before: one cached SQL text per distinct (keys per view) shape, without bound.

    300 batches crafted to have 300 different shapes: the reader keeps at most SQL_CACHE_SIZE
    texts, and still answers every batch right.
    """
    from mlops.serving.online import _SqliteDirect, _View

    db, tables = _store(tmp_path, views=3, keys=400)
    views = [_View(None, f"view{j}", f"k{j}", [f"f{j}"]) for j in range(3)]
    direct = _SqliteDirect(db, tables, views, 3)
    for n in range(1, 301):
        batch = [{"k0": f"v{i}", "k1": "v0", "k2": f"v{i % (n % 7 + 1)}"} for i in range(n)]
        values, missing = direct.read_keys(batch)
        assert missing == [[] for _ in batch]
        assert [v["f0"] for v in values] == [float(i) for i in range(n)]
        assert [v["f2"] for v in values] == [2000.0 + i % (n % 7 + 1) for i in range(n)]
    assert len(direct._sql) <= 64, len(direct._sql)
    # The one-flight shape stays correct after eviction.
    values, _ = direct.read_keys([{"k0": "v3", "k1": "v4", "k2": "v5"}])
    assert values == [{"f0": 3.0, "f1": 1004.0, "f2": 2005.0}]


# --------------------------------------------------------------------------------------------------
# The OpenAPI contract (schemathesis' two findings, and the strict parts)
# --------------------------------------------------------------------------------------------------


def test_openapi_says_what_is_refused(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    bare_list = next(alt for alt in body["oneOf"] if alt.get("type") == "array")
    # An empty batch is refused (422): the schema says so (it allowed [] before).
    assert bare_list["minItems"] == 1 and bare_list["maxItems"] == 1000
    flights = spec["components"]["schemas"]["PredictRequest"]["properties"]["flights"]
    assert flights["minItems"] == 1 and flights["maxItems"] == 1000
    assert client.post("/predict", json=[]).status_code == 422
    flight = spec["components"]["schemas"]["Flight"]["properties"]
    assert flight["flight"]["type"] == "integer"
    assert flight["carrier"]["pattern"] == "^[ \\t]{0,4}[A-Za-z0-9]{2,4}[ \\t]{0,4}$"
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "422", "500", "503"} <= set(responses)
    assert responses["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


def test_metrics_content_type_is_documented(client):
    """Before: /metrics answered text/plain; version=1.0.0 while the OpenAPI said application/json."""
    resp = client.get("/metrics")
    assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain; version=0.0.4; charset=utf-8"]
