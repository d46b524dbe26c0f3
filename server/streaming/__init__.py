"""Streaming inference from a message bus (issue 27, point 9): NATS JetStream in, bronze and scores out.

``nats_server`` starts the embedded broker, ``bus`` names the streams and connects, ``events`` is the wire
format and its poison checks, ``publisher`` replays events onto the bus, ``sink`` is the score table
keyed by event id, ``scoring`` scores through a gateway or in process, ``metrics`` holds the lag
gauge and counters, ``consumer`` is the durable consumer loop that ties them together.
docs/design/pipeline.md ("Streaming from a message bus") explains the guarantees.
"""
