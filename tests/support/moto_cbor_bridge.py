#!/usr/bin/env python3
"""Test support: a loopback bridge in front of moto for cwlite's integration tests.

moto speaks CloudWatch's awsQuery and JSON 1.0 protocols but not Smithy RPC v2 CBOR, which the
current aws-sdk-cloudwatch uses. This bridge turns CBOR calls into JSON 1.0 calls to moto and the
answers back into CBOR; every other request (CloudWatch Logs JSON 1.1, moto's own API, boto3)
passes through unchanged. It also records the access key id of every signed request and every
accepted PutMetricData datum, so tests can assert which credentials cwlite used and exactly what
it sent (GET /_bridge/access-keys, GET /_bridge/metric-data?namespace=NS, POST /_bridge/reset).
POST /_bridge/fail?namespace=NS&count=N&status=S&code=C&message=M answers the next N CBOR calls for
namespace NS with that error instead of forwarding them.

Usage: moto_cbor_bridge.py --moto http://127.0.0.1:PORT --port-file FILE
"""

import argparse
import datetime
import gzip
import http.client
import json
import re
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cbor2

CBOR_PREFIX = "/service/GraniteServiceVersion20100801/operation/"
CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")
TIMESTAMP_KEYS = {"Timestamp", "Timestamps", "StartTime", "EndTime", "StateUpdatedTimestamp",
                  "AlarmConfigurationUpdatedTimestamp", "LastModified"}

seen_lock = threading.Lock()
seen = []
metric_data = []
requests_seen = [0]
# namespace -> list of (status, code, message) answers to give instead of forwarding
faults = {}


def to_json_compatible(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: to_json_compatible(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json_compatible(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return value


def to_cbor_compatible(value, key=None):
    if key in TIMESTAMP_KEYS:
        if isinstance(value, (int, float)):
            return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
        if isinstance(value, list):
            return [datetime.datetime.fromtimestamp(v, tz=datetime.timezone.utc)
                    if isinstance(v, (int, float)) else v for v in value]
    if isinstance(value, dict):
        return {k: to_cbor_compatible(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cbor_compatible(v) for v in value]
    return value


class Bridge(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    moto = None

    def log_message(self, fmt, *args):
        sys.stderr.write("bridge: " + (fmt % args) + "\n")

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, headers, body):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def record_key(self):
        match = CREDENTIAL.search(self.headers.get("Authorization", ""))
        if match:
            with seen_lock:
                seen.append({"access_key_id": match.group(1), "region": match.group(2),
                             "service": match.group(3), "path": self.path})

    def upstream(self, method, path, body, headers):
        conn = http.client.HTTPConnection(self.moto.hostname, self.moto.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def do_GET(self):
        if self.path == "/_bridge/access-keys":
            with seen_lock:
                body = json.dumps(seen).encode()
            return self.reply(200, [("Content-Type", "application/json")], body)
        if self.path.startswith("/_bridge/metric-data"):
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            namespace = query.get("namespace", [None])[0]
            with seen_lock:
                body = json.dumps([d for d in metric_data if namespace is None or d["Namespace"] == namespace]).encode()
            return self.reply(200, [("Content-Type", "application/json")], body)
        self.passthrough("GET")

    def do_POST(self):
        if self.path.startswith("/_bridge/fail"):
            self.read_body()
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            one = lambda k, d: query.get(k, [d])[0]
            answer = (int(one("status", "400")), one("code", "InternalFailure"), one("message", ""))
            with seen_lock:
                faults.setdefault(one("namespace", ""), []).extend([answer] * int(one("count", "1")))
            return self.reply(200, [("Content-Type", "application/json")], b"{}")
        if self.path == "/_bridge/reset":
            self.read_body()
            with seen_lock:
                seen.clear()
                metric_data.clear()
            return self.reply(200, [("Content-Type", "application/json")], b"{}")
        if self.path.startswith(CBOR_PREFIX):
            return self.cbor()
        self.passthrough("POST")

    def passthrough(self, method):
        self.record_key()
        body = self.read_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        status, response_headers, response_body = self.upstream(method, self.path, body, headers)
        self.reply(status, response_headers, response_body)

    def cbor(self):
        self.record_key()
        operation = self.path[len(CBOR_PREFIX):]
        body = self.read_body()
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        request = cbor2.loads(body) if body else {}
        with seen_lock:
            queued = faults.get(request.get("Namespace") or "", [])
            fault = queued.pop(0) if queued else None
        if fault:
            status, code, message = fault
            headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"),
                       ("x-amzn-query-error", code + (";Sender" if status < 500 else ";Receiver"))]
            return self.reply(status, headers, cbor2.dumps({"__type": code, "message": message}))
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "GraniteServiceVersion20100801." + operation,
            "Authorization": self.headers.get("Authorization", ""),
            "X-Amz-Date": self.headers.get("X-Amz-Date", ""),
        }
        status, _, answer = self.upstream("POST", "/", json.dumps(to_json_compatible(request)).encode(), headers)
        if operation == "PutMetricData" and status == 200:
            with seen_lock:
                requests_seen[0] += 1
                for datum in to_json_compatible(request).get("MetricData", []):
                    metric_data.append(dict(datum, Namespace=request.get("Namespace"), _request=requests_seen[0]))
        try:
            decoded = json.loads(answer) if answer.strip() else {}
        except ValueError:
            decoded = {"__type": "InternalFailure", "message": answer.decode("utf-8", "replace")[:500]}
        out_headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        if status >= 400:
            code = str(decoded.get("__type", "InternalFailure")).split("#")[-1]
            message = decoded.get("message") or decoded.get("Message") or ""
            decoded = {"__type": code, "message": message}
            out_headers.append(("x-amzn-query-error", code + (";Sender" if status < 500 else ";Receiver")))
        self.reply(status, out_headers, cbor2.dumps(to_cbor_compatible(decoded), datetime_as_timestamp=True))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moto", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    Bridge.moto = urllib.parse.urlparse(args.moto)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Bridge)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
