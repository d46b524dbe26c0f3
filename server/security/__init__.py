"""Who may call the gateway and what the logs may hold: API keys per tenant, rate limits, TLS, keyed hashes.

Transport-independent: the gRPC interceptor (server/gateway/interceptors/auth.py) and the HTTP API
(server/gateway/openai_http.py) ask the same ``AccessPolicy``.
"""
