"""Request validation without a server: every rejection names its field."""

from __future__ import annotations

import numpy as np
import pytest

from server.anomaly.catalog import CatalogEntry
from server.anomaly.model import StreamSpec
from server.client import score_request
from server.gen.stackserve.v1 import anomaly_pb2 as pb
from server.protocol.anomaly_validation import parse_score_request
from server.protocol.errors import ServingError
from server.protocol.registration import DecodeFailure

NAMES = tuple(f"f{i}" for i in range(3))
CATALOG = {
    "plain": CatalogEntry("plain", "1", "random_forest", NAMES, 3, None, 0.5),
    "stream": CatalogEntry("stream", "2", "random_forest", NAMES, 15, StreamSpec(8, 0.2), 0.5),
}


def parse(req):
    return parse_score_request(req, CATALOG, "plain", "stream")


def reject(req) -> ServingError:
    with pytest.raises(ServingError) as err:
        parse(req)
    return err.value


def test_valid_requests_and_defaults():
    p = parse(score_request(np.arange(6).reshape(2, 3)))
    assert p.model.name == "plain" and p.raw.shape == (2, 3) and p.raw.dtype == np.float32 and p.entity_keys is None
    p = parse(score_request(np.ones((2, 3)), entity_keys=["a", "b"]))
    assert p.model.name == "stream" and p.entity_keys == ["a", "b"]
    p = parse(score_request(-np.ones((1, 3)) * 1e30, model="plain"))
    assert p.raw[0, 0] == np.float32(-1e30)


@pytest.mark.parametrize(
    ("req", "code", "field", "needle"),
    [
        (DecodeFailure("stackserve.v1.ScoreRequest", "bad wire type"), "INVALID_ARGUMENT", "request", "bad wire"),
        (pb.ScoreRequest(), "INVALID_ARGUMENT", "num_features", "must be set"),
        (pb.ScoreRequest(num_features=3), "INVALID_ARGUMENT", "features", "no events"),
        (score_request(np.ones((1, 4))), "INVALID_ARGUMENT", "num_features", "takes 3"),
        (pb.ScoreRequest(num_features=3, features=[1, 2, 3, 4]), "INVALID_ARGUMENT", "features", "multiple"),
        (score_request(np.array([[1, np.nan, 3]])), "INVALID_ARGUMENT", "features", "'f1' is NaN"),
        (score_request(np.array([[1, 2, -np.inf]])), "INVALID_ARGUMENT", "features", "'f2' is infinite"),
        (score_request(np.ones((1, 3)), model="nope"), "NOT_FOUND", "model", "unknown model 'nope'"),
        (score_request(np.ones((1, 3)), model="plain", entity_keys=["k"]), "INVALID_ARGUMENT", "entity_keys",
         "without stream"),
        (score_request(np.ones((2, 3)), model="stream", entity_keys=["k"]), "INVALID_ARGUMENT", "entity_keys",
         "2 events, 1 keys"),
        (score_request(np.ones((1, 3)), model="stream", entity_keys=[""]), "INVALID_ARGUMENT", "entity_keys",
         "1..256 bytes"),
        (score_request(np.ones((1, 3)), feature_names=["a", "b", "c"]), "INVALID_ARGUMENT", "feature_names",
         "expects columns"),
    ],
)
def test_rejections_name_field_and_reason(req, code, field, needle):
    err = reject(req)
    assert err.code.name == code
    assert err.field == field
    assert needle in err.details


def test_unknown_fields_are_rejected():
    req = pb.ScoreRequest.FromString(score_request(np.ones((1, 3))).SerializeToString() + b"\x98\x06\x01")
    err = reject(req)
    assert err.field == "request" and "[99]" in err.details


VIEW_CATALOG = {**CATALOG, "viewed": CatalogEntry("viewed", "3", "random_forest", NAMES, 3, None, 0.5,
                                                  feature_view="gold_features:1")}


def _by_entity(**fields) -> ServingError:
    with pytest.raises(ServingError) as err:
        parse_score_request(pb.ScoreRequest(**fields), VIEW_CATALOG, "plain", "stream")
    return err.value


def test_score_by_entity_parses_keys_and_times():
    req = pb.ScoreRequest(model="viewed", entity_keys=["a", "b"], event_times_us=[5, 6])
    p = parse_score_request(req, VIEW_CATALOG, "plain", "stream")
    assert p.entity_keys == ["a", "b"] and p.event_times_us.tolist() == [5, 6] and p.n_events == 2
    assert p.raw.shape == (0, 3)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (dict(model="viewed", entity_keys=["a"], event_times_us=[5], num_features=3, features=[1, 2, 3]),
         "event_times_us"),
        (dict(model="viewed", entity_keys=["a", "b"], event_times_us=[5]), "event_times_us"),
        (dict(model="viewed", event_times_us=[5]), "entity_keys"),
        (dict(model="plain", entity_keys=["a"], event_times_us=[5]), "event_times_us"),
        (dict(event_times_us=[5], entity_keys=["a"]), "event_times_us"),  # the default model has no view
        (dict(model="viewed", entity_keys=["a"], event_times_us=[-1]), "event_times_us"),
        (dict(model="viewed", entity_keys=[""], event_times_us=[5]), "entity_keys"),
        (dict(model="viewed", entity_keys=["a"], event_times_us=[5], num_features=4), "num_features"),
        (dict(model="viewed", entity_keys=["a"], event_times_us=[5], feature_names=["x"]), "feature_names"),
    ],
)
def test_score_by_entity_rejections_name_the_field(fields, field):
    err = _by_entity(**fields)
    assert err.code.name == "INVALID_ARGUMENT" and err.field == field, err.details
