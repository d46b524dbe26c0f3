"""The bus's wire format and its poison checks, and the score sink's idempotency (no broker needed).

Every kind of poison message named in issue 27 (unparseable, wrong types, missing fields, NaN/inf)
must be told apart from an event with a reason, since the consumer dead-letters on exactly these."""

from __future__ import annotations

import json

import pytest

from server.streaming.events import PoisonMessage, bronze_payload, decode_event, encode_event, frame_events
from server.streaming.sink import ScoreRow, ScoreSink, read_scores

FEATURES = ["f1", "f2"]


def test_an_event_round_trips_with_its_values_in_model_order():
    data = encode_event("e1", "device-1", "2026-01-01T00:00:00Z", {"f2": 2.5, "f1": 3, "anomaly": 0})
    ev = decode_event(data, FEATURES)
    assert (ev.event_id, ev.entity, ev.ts, ev.values) == ("e1", "device-1", "2026-01-01T00:00:00Z", (3.0, 2.5))
    # bronze gets one flat row under the spec's names, every value as text, extra columns kept
    assert json.loads(bronze_payload(ev, "event_id", "device", "ts")) == {
        "event_id": "e1", "device": "device-1", "ts": "2026-01-01T00:00:00Z", "f2": "2.5", "f1": "3", "anomaly": "0"}


@pytest.mark.parametrize(("data", "reason"), [
    (b"not json{", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"entity": "d", "ts": "2026-01-01T00:00:00Z", "features": {"f1": 1, "f2": 2}}', "'event_id'"),
    (b'{"event_id": "e", "entity": 7.5, "ts": "2026-01-01T00:00:00Z", "features": {}}', "'entity'"),
    (b'{"event_id": "e", "entity": "d", "ts": "yesterday", "features": {"f1": 1, "f2": 2}}', "ISO-8601"),
    (b'{"event_id": "e", "entity": "d", "ts": "2026-01-01T00:00:00Z", "features": [1, 2]}', "'features'"),
    (b'{"event_id": "e", "entity": "d", "ts": "2026-01-01T00:00:00Z", "features": {"f1": "abc", "f2": 2}}',
     "feature 'f1' must be a number"),
    (b'{"event_id": "e", "entity": "d", "ts": "2026-01-01T00:00:00Z", "features": {"f1": 1}}',
     "feature 'f2' must be a number"),
    (b'{"event_id": "e", "entity": "d", "ts": "2026-01-01T00:00:00Z", "features": {"f1": true, "f2": 2}}',
     "feature 'f1' must be a number"),
    (b'{"event_id": "e", "entity": "d", "ts": "2026-01-01T00:00:00Z", "features": {"f1": NaN, "f2": 2}}',
     "not finite"),
    (b'{"event_id": "e", "entity": "d", "ts": "2026-01-01T00:00:00Z", "features": {"f1": Infinity, "f2": 2}}',
     "not finite"),
])
def test_poison_messages_are_refused_with_a_reason(data, reason):
    with pytest.raises(PoisonMessage, match=reason):
        decode_event(data, FEATURES)


def test_frame_events_takes_the_role_columns_out_of_the_features():
    [(eid, data)] = frame_events([{"event_id": 5, "device": "d", "ts": "t", "f1": 1}], "event_id", "device", "ts")
    assert eid == "5" and json.loads(data) == {"event_id": "5", "entity": "d", "ts": "t", "features": {"f1": 1}}


def test_the_sink_keeps_the_first_score_of_an_event_id_and_counts_redeliveries(tmp_path):
    sink = ScoreSink(tmp_path / "scores.sqlite")
    rows = [ScoreRow(f"e{i}", "d", "t", float(i), False, "m", "1", i) for i in range(3)]
    sink.write(rows)
    sink.write([ScoreRow("e1", "d", "t", 99.0, True, "m", "1", 7)])  # a redelivery re-scored differently
    sink.count_redelivered(["e2"])
    assert sink.known(["e0", "e1", "e9"]) == {"e0", "e1"}
    sink.close()
    got = {e: (s, d) for e, s, d, _ in read_scores(tmp_path / "scores.sqlite")}
    assert got == {"e0": (0.0, 1), "e1": (1.0, 2), "e2": (2.0, 2)}
