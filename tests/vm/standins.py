"""Offline stand-ins for what a node's preflight reaches on the internet, run inside the tier's
network namespace on the host's bridge address. Each is named as a stand-in in what it prints.

    python -m tests.vm.standins ADDRESS HTTP_PORT

- NTP: an SNTP server (RFC 4330) on UDP 123 that answers with this host's clock, stratum 2, so
  systemd-timesyncd in the guests synchronises (the preflight waits for NTPSynchronized=yes).
- HTTP: answers 200 to every GET, in place of the RKE2 installer and the image registries.
"""

from __future__ import annotations

import http.server
import socket
import struct
import sys
import threading
import time

# Seconds from the NTP era (1900) to the Unix epoch (1970).
NTP_EPOCH_OFFSET = 2_208_988_800
NTP_PACKET = struct.Struct("!BBbbII4sQQQQ")
MODE_CLIENT, MODE_SERVER = 3, 4


def ntp_timestamp(seconds: float) -> int:
    """A 64-bit NTP timestamp: 32 bits of seconds since 1900, 32 bits of fraction."""
    whole = int(seconds)
    return ((whole + NTP_EPOCH_OFFSET) << 32) | int((seconds - whole) * (1 << 32))


def ntp_reply(request: bytes, received: float, now: float) -> bytes | None:
    """The server's answer to a client request, or None for anything that is not one."""
    if len(request) < NTP_PACKET.size:
        return None
    first, _stratum, poll, _precision, _delay, _dispersion, _ref, _reference, _origin, _receive, transmit = (
        NTP_PACKET.unpack_from(request)
    )
    version, mode = (first >> 3) & 0b111, first & 0b111
    if mode != MODE_CLIENT:
        return None
    # Leap indicator 0 (no warning), the client's version, server mode; stratum 2 (synchronised to a
    # stratum-1 source); precision 2^-20 s; a small root delay and dispersion (1/65536 s units).
    return NTP_PACKET.pack(
        (0 << 6) | (version << 3) | MODE_SERVER,
        2,
        poll,
        -20,
        0x0000_0100,
        0x0000_0100,
        b"LOCL",
        ntp_timestamp(now - 1),
        transmit,  # the client's transmit time comes back as the originate time
        ntp_timestamp(received),
        ntp_timestamp(now),
    )


def serve_ntp(address: str) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((address, 123))
    while True:
        request, client = server.recvfrom(512)
        received = time.time()
        reply = ntp_reply(request, received, time.time())
        if reply:
            server.sendto(reply, client)


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"meshlab stand-in endpoint\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        print(f"stand-in HTTP: {self.address_string()} {format % args}", flush=True)


def main(argv: list[str]) -> int:
    address, http_port = argv[0], int(argv[1])
    threading.Thread(target=serve_ntp, args=(address,), daemon=True).start()
    httpd = http.server.ThreadingHTTPServer((address, http_port), _Ok)
    print(f"stand-ins ready: NTP on {address}:123/udp, HTTP on {address}:{http_port}", flush=True)
    httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
