"""Proto <-> domain translation shared by every gRPC entry point: our gateway and, for the
benchmark baseline, a Serve replica answering Ray Serve's own gRPC proxy. Request parsing,
field-level errors and their status codes live here so both entry points reject the same input
with the same words, and a Ray replica never imports gateway code."""
