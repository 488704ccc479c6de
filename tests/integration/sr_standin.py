#!/usr/bin/python3
"""sr_standin.py: a stand-in for Confluent Schema Registry (which is Java and
not installable here), implementing exactly the REST calls leadflow and its
tests make, with the registry's answers and error codes:

  POST /subjects/{subject}/versions   register; {"id": N} (the existing id
                                      when the schema is already known:
                                      ids are global, as in the registry)
  POST /subjects/{subject}            look up; {"subject","id","version",
                                      "schema"}, or 404 40401 / 40403
  GET  /schemas/ids/{id}              {"schema": "..."}, or 404 40403
  GET  /subjects                      ["subject", ...]
  GET  /subjects/{subject}/versions   [1, 2, ...], or 404 40401
  POST /compatibility/subjects/{subject}/versions/latest[?verbose=true]
                                      {"is_compatible": bool} (with
                                      "messages" when verbose), or 404
                                      40401 when the subject has no version

Schemas are checked with python3-avro (invalid: 422 42201). The
compatibility question is answered with python3-avro's checker under the
registry's default level, BACKWARD: the new schema, as a reader, must read
data written with the subject's latest version. Registering does not
enforce it (the registry would, with 409: a test that wants that asks the
compatibility endpoint, as producers do). Options:

  --port N           listen on 127.0.0.1:N (0: any free port)
  --port-file FILE   write the port there once listening
  --state FILE       keep the schemas in FILE (JSON) so a restart on the
                     same port is the same registry ("down" = killed)
  --first-id N       the first id handed out (default 1)
  --user U:P         require HTTP basic auth (401 40101 otherwise)
  --tls-cert/--tls-key FILE      serve HTTPS
  --tls-client-ca FILE           and require a client certificate
  --raw ID:STATUS:FILE           answer GET /schemas/ids/ID with STATUS and
                                 FILE's bytes verbatim (hostile answers)
  --log FILE         append "METHOD PATH STATUS" per request

SIGUSR1 toggles "unavailable": every request gets 503 50003 until the next
SIGUSR1. SIGTERM stops it.
"""

import argparse
import base64
import http.server
import json
import os
import re
import signal
import ssl
import sys
import threading

import avro.compatibility
import avro.schema

CT = "application/vnd.schemaregistry.v1+json"


class Registry:
    def __init__(self, state, first_id):
        self.lock = threading.Lock()
        self.state_file = state
        self.schemas = {}  # id -> schema text
        self.subjects = {}  # subject -> [id, ...] (version = index + 1)
        self.next_id = first_id
        if state and os.path.exists(state):
            with open(state) as f:
                s = json.load(f)
            self.schemas = {int(k): v for k, v in s["schemas"].items()}
            self.subjects = s["subjects"]
            self.next_id = s["next_id"]

    def save(self):
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"schemas": self.schemas, "subjects": self.subjects,
                       "next_id": self.next_id}, f)
        os.replace(tmp, self.state_file)

    @staticmethod
    def canonical(text):
        return json.dumps(json.loads(text), sort_keys=True,
                          separators=(",", ":"))

    def find(self, text):
        c = self.canonical(text)
        for i, s in self.schemas.items():
            if self.canonical(s) == c:
                return i
        return None

    def register(self, subject, text):
        with self.lock:
            sid = self.find(text)
            if sid is None:
                sid = self.next_id
                self.next_id += 1
                self.schemas[sid] = text
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            self.save()
            return sid


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl expects

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, obj=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", CT)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="registry"')
        self.end_headers()
        self.wfile.write(body)
        if self.server.opts.log:
            with open(self.server.opts.log, "a") as f:
                f.write("%s %s %d\n" % (self.command, self.path, status))

    def error(self, status, code, message):
        self.answer(status, {"error_code": code, "message": message})

    def allowed(self):
        if self.server.unavailable:
            self.error(503, 50003, "Error in the backend data store")
            return False
        user = self.server.opts.user
        if not user:
            return True
        want = "Basic " + base64.b64encode(user.encode()).decode()
        if self.headers.get("Authorization") != want:
            self.error(401, 40101, "Unauthorized")
            return False
        return True

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    def do_GET(self):
        if not self.allowed():
            return
        reg = self.server.registry
        m = re.fullmatch(r"/schemas/ids/(\d+)", self.path)
        if m:
            sid = int(m.group(1))
            if sid in self.server.raw:
                status, data = self.server.raw[sid]
                return self.answer(status, raw=data)
            if sid not in reg.schemas:
                return self.error(404, 40403, "Schema %d not found" % sid)
            return self.answer(200, {"schema": reg.schemas[sid]})
        if self.path == "/subjects":
            return self.answer(200, sorted(reg.subjects))
        m = re.fullmatch(r"/subjects/([^/]+)/versions", self.path)
        if m:
            versions = reg.subjects.get(m.group(1))
            if versions is None:
                return self.error(404, 40401, "Subject not found.")
            return self.answer(200, list(range(1, len(versions) + 1)))
        self.error(404, 404, "HTTP 404 Not Found")

    def compatibility(self, subject, text, verbose):
        """BACKWARD: can @text, as a reader, read the latest version?"""
        reg = self.server.registry
        versions = reg.subjects.get(subject)
        if not versions:
            return self.error(404, 40401, "Subject '%s' not found." % subject)
        latest = avro.schema.parse(reg.schemas[versions[-1]])
        res = avro.compatibility.ReaderWriterCompatibilityChecker() \
            .get_compatibility(avro.schema.parse(text), latest)
        ok = res.compatibility == \
            avro.compatibility.SchemaCompatibilityType.compatible
        out = {"is_compatible": ok}
        if verbose:
            out["messages"] = [] if ok else [
                "%s at %s (BACKWARD: the new schema cannot read data "
                "written with version %d)" % (
                    ", ".join(sorted({x.value for x in
                                     res.incompatibilities})),
                    ", ".join(sorted(res.locations)), len(versions))]
        return self.answer(200, out)

    def do_POST(self):
        data = self.body()
        if not self.allowed():
            return
        reg = self.server.registry
        path, _, query = self.path.partition("?")
        c = re.fullmatch(r"/compatibility/subjects/([^/]+)/versions/latest",
                         path)
        m = re.fullmatch(r"/subjects/([^/]+)(/versions)?", path)
        if not m and not c:
            return self.error(404, 404, "HTTP 404 Not Found")
        try:
            req = json.loads(data)
            text = req["schema"]
            if req.get("schemaType", "AVRO") != "AVRO":
                raise ValueError("only AVRO here")
            avro.schema.parse(text)
        except Exception as e:  # the registry's answer to a bad schema
            return self.error(422, 42201, "Invalid schema: %s" % e)
        if c:
            return self.compatibility(c.group(1), text,
                                      "verbose=true" in query.split("&"))
        subject = m.group(1)
        if m.group(2):
            return self.answer(200, {"id": reg.register(subject, text)})
        versions = reg.subjects.get(subject)
        if versions is None:
            return self.error(404, 40401, "Subject '%s' not found." % subject)
        sid = reg.find(text)
        if sid is None or sid not in versions:
            return self.error(404, 40403, "Schema not found")
        return self.answer(200, {"subject": subject, "id": sid,
                                 "version": versions.index(sid) + 1,
                                 "schema": reg.schemas[sid]})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--state")
    ap.add_argument("--first-id", type=int, default=1)
    ap.add_argument("--user")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca")
    ap.add_argument("--raw", action="append", default=[])
    ap.add_argument("--log")
    opts = ap.parse_args()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    srv.daemon_threads = True
    srv.opts = opts
    srv.registry = Registry(opts.state, opts.first_id)
    srv.unavailable = False
    srv.raw = {}
    for r in opts.raw:
        sid, status, path = r.split(":", 2)
        with open(path, "rb") as f:
            srv.raw[int(sid)] = (int(status), f.read())
    if opts.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
        if opts.tls_client_ca:
            ctx.load_verify_locations(opts.tls_client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)

    def toggle(signum, frame):
        srv.unavailable = not srv.unavailable

    signal.signal(signal.SIGUSR1, toggle)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    if opts.port_file:
        tmp = opts.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, opts.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
