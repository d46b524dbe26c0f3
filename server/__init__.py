"""stackserve: anomaly scoring, LLM and retrieval behind one gRPC gateway on Ray Serve."""

__version__ = "0.1.0"
