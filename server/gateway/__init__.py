"""The grpc.aio gateway: validation, coalescing and metrics in front of Ray Serve."""
