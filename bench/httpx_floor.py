"""The CPU floor of one HTTP GET with the client libraries at hand (issue 9's ≤ 5 ms per
cycle target, 3 requests a cycle): `httpx.AsyncClient`, `httpx.Client` and the stdlib
`http.client`, each doing N GETs on one kept-alive connection to a loopback server in
another process (so only the client's CPU is counted).

    .venv/bin/python bench/httpx_floor.py [N]
"""

from __future__ import annotations

import asyncio
import http.client
import resource
import subprocess
import sys

import httpx

from watcher.providers.http import shared_ssl_context
from watcher.providers.transport import Lane

SERVER = """
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b'{"data": {"balance": "10.00", "currency": "USD"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def async_httpx(url: str, n: int, transport: httpx.AsyncBaseTransport | None = None) -> float:
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(20):
            await client.get(url)
        started = cpu()
        for _ in range(n):
            (await client.get(url)).json()
        return (cpu() - started) / n * 1000


async def async_lane(url: str, n: int) -> float:
    return await async_httpx(url, n, Lane(ssl_context=shared_ssl_context(), keepalive=60.0))


async def lane_direct(url: str, n: int) -> float:
    """What `HostPool` does: the request built by the client, sent on a lane directly."""
    lane = Lane(ssl_context=shared_ssl_context(), keepalive=60.0)
    async with httpx.AsyncClient() as client:
        for _ in range(20):
            await lane.handle_async_request(client.build_request("GET", url))
        started = cpu()
        for _ in range(n):
            response = await lane.handle_async_request(client.build_request("GET", url))
            response.read()
            response.json()
        took = (cpu() - started) / n * 1000
    await lane.aclose()
    return took


def sync_httpx(url: str, n: int) -> float:
    with httpx.Client() as client:
        for _ in range(20):
            client.get(url)
        started = cpu()
        for _ in range(n):
            client.get(url).json()
        return (cpu() - started) / n * 1000


def stdlib(port: int, n: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    started = cpu()
    for _ in range(n):
        conn.request("GET", "/balance")
        conn.getresponse().read()
    return (cpu() - started) / n * 1000


def main(n: int) -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/balance"
        rows = [
            ("httpx.AsyncClient", asyncio.run(async_httpx(url, n))),
            ("httpx.AsyncClient + Lane", asyncio.run(async_lane(url, n))),
            ("Lane, client bypassed", asyncio.run(lane_direct(url, n))),
            ("httpx.Client (sync)", sync_httpx(url, n)),
            ("http.client (stdlib)", stdlib(port, n)),
        ]
    finally:
        server.kill()
        server.wait()
    print(f"{n} GETs each, one kept-alive connection, loopback server in another process")
    print(f"{'client':28} {'CPU per request':>16} {'3 a cycle':>10}")
    for name, ms in rows:
        print(f"{name:28} {ms:13.3f} ms {3 * ms:7.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
