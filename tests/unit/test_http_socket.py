"""The OpenAI API's listening socket: TCP named as its protocol, Nagle off.

asyncio's own event loop (the server's loop where uvloop is missing, and the in-process test
gateways) sets TCP_NODELAY only on accepted sockets whose ``proto`` is IPPROTO_TCP; a socket made with
proto 0 left Nagle on, and every request on a kept-alive connection waited for the client's delayed
ACK (44 ms per request instead of ~1 ms, measured with httpx). This checks what a request then
sees: an accepted connection has TCP_NODELAY set, on the standard loop.
"""

from __future__ import annotations

import asyncio
import socket

from server.gateway.openai_http import bind


def test_accepted_connections_have_nagle_off_on_the_standard_loop():
    listener = bind("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP

    async def main() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=listener)
        _, writer = await asyncio.open_connection("127.0.0.1", listener.getsockname()[1])
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(main()) != 0
