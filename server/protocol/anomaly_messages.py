"""Domain results as anomaly protobuf messages: the one place a ScoreResult becomes a ScoreResponse
(the gateway's servicer and the Ray Serve gRPC-proxy baseline answer with the same bytes)."""

from __future__ import annotations

from server.anomaly.scorer import ScoreResult
from server.gen.stackserve.v1 import anomaly_pb2 as pb


def score_response(result: ScoreResult) -> pb.ScoreResponse:
    return pb.ScoreResponse(
        model=result.model,
        model_version=result.version,
        scores=result.scores.tolist(),
        is_anomaly=result.is_anomaly.tolist(),
        threshold=result.threshold,
    )
