#!/usr/bin/python3
"""A NetHSM-compatible HTTPS server for sigfs's tests and benchmarks.

No real NetHSM runs on these machines, so this plays one from the official
OpenAPI spec (nethsm-api.yaml beside it): every request is matched against the
spec's paths (unknown path 404, unknown method 405), its JSON body validated
against the spec's schema with additional properties rejected (400, as the
spec's preamble says), Basic auth checked (401) and the caller's role against
the operation's x-annotation-role (403). Implemented: key list (with
?filter), generate, get, delete, public.pem, sign (PKCS1, PSS_*, EdDSA,
ECDSA), key restriction tags and user tags; other operations the spec knows
answer 501. Keys live in namespaces (user `ns~name`).

Tags work as on a real NetHSM (keyfender's validate_restrictions): a key
whose restrictions.tags is not empty may be used to sign only by an Operator
carrying at least one of those tags; any other gets 403 "tags restriction
not met". User tags (PUT/DELETE /users/{UserID}/tags/{Tag}) exist on
Operators only (400 otherwise) and are kept in DIR/user-tags.json.

Faults for tests: --latency-ms, --fail-412 N / --fail-500 N (the next N
requests answer that), --drop N (the next N connections are closed without
an answer). Keys are kept in --state DIR so a restarted server still has them;
the self-signed TLS certificate is made once in DIR and kept too.

Usage: server.py --state DIR --port P --user [NS~]NAME:ROLE:PASSWORD ...
Prints "port N" on stdout once it listens; DIR/cert.pem is the CA to trust.
"""
import argparse
import base64
import copy
import datetime
import http.server
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse

import jsonschema
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.x509.oid import NameOID

# Nitrokey's OpenAPI spec of the NetHSM API v1, kept unchanged beside this file
# (tests/nethsm/README.md), so a fresh clone tests against it.
SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nethsm-api.yaml")

PSS_HASHES = {"PSS_MD5": hashes.MD5, "PSS_SHA1": hashes.SHA1, "PSS_SHA224": hashes.SHA224,
              "PSS_SHA256": hashes.SHA256, "PSS_SHA384": hashes.SHA384,
              "PSS_SHA512": hashes.SHA512}
# Hashes by output length, for signing a digest whose algorithm ECDSA ignores.
BY_LEN = {16: hashes.MD5, 20: hashes.SHA1, 28: hashes.SHA224, 32: hashes.SHA256,
          48: hashes.SHA384, 64: hashes.SHA512}
CURVES = {"EC_P256": ec.SECP256R1, "EC_P384": ec.SECP384R1, "EC_P521": ec.SECP521R1}
MECHS = {"RSA": {"RSA_Signature_PKCS1"} | {"RSA_Signature_" + m for m in PSS_HASHES},
         "Curve25519": {"EdDSA_Signature"},
         **{t: {"ECDSA_Signature"} for t in CURVES}}
MODE_MECH = {"PKCS1": "RSA_Signature_PKCS1", "EdDSA": "EdDSA_Signature",
             "ECDSA": "ECDSA_Signature", **{m: "RSA_Signature_" + m for m in PSS_HASHES}}


STRING_SCHEMA = {"type": "string"}
_validators = {}


def validate(instance, schema):
    """jsonschema.validate, with each schema checked and compiled once (the spec
    does not change while the server runs; validating per request made the
    server, not the latency setting, the bottleneck of benchmarks)."""
    v = _validators.get(id(schema))
    if v is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        v = _validators[id(schema)] = (cls(schema), schema)
    v[0].validate(instance)


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def load_spec(path):
    with open(path) as f:
        spec = yaml.safe_load(f)
    schemas = spec["components"]["schemas"]

    def strict(s):
        """Inline $refs; objects take no properties beyond those listed."""
        if isinstance(s, list):
            return [strict(x) for x in s]
        if not isinstance(s, dict):
            return s
        if "$ref" in s:
            return strict(copy.deepcopy(schemas[s["$ref"].rsplit("/", 1)[1]]))
        out = {k: strict(v) for k, v in s.items() if k not in ("example", "nullable")}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out

    routes = []
    for tmpl, item in spec["paths"].items():
        params = {}
        for p in item.get("parameters", []):
            params[p["name"]] = strict(p["schema"])
        rx = "^/api/v1" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(tmpl)) + "$"
        ops = {}
        for method, op in item.items():
            if method == "parameters":
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            ops[method.upper()] = {
                "roles": op.get("x-annotation-role", []),
                "schema": strict(body["schema"]) if body else None,
                "body": "requestBody" in op,
            }
        routes.append((re.compile(rx), tmpl, params, ops))
    # Literal paths before templates (/keys/generate before /keys/{KeyID}).
    routes.sort(key=lambda r: r[1].count("{"))
    return routes


class Store:
    """Keys as PEM files in DIR/keys/NAMESPACE/ID.pem, mechanisms beside them."""

    def __init__(self, root):
        self.root = os.path.join(root, "keys")
        self.lock = threading.Lock()
        self.parsed = {}             # path -> (mtime_ns, private key)

    def _dir(self, ns):
        d = os.path.join(self.root, ns or "_root")
        os.makedirs(d, exist_ok=True)
        return d

    def ids(self, ns):
        return sorted(f[:-4] for f in os.listdir(self._dir(ns)) if f.endswith(".pem"))

    def get(self, ns, kid):
        base = os.path.join(self._dir(ns), kid)
        try:
            mtime = os.stat(base + ".pem").st_mtime_ns
            cached = self.parsed.get(base)
            if cached and cached[0] == mtime:
                key = cached[1]
            else:
                with open(base + ".pem", "rb") as f:
                    key = serialization.load_pem_private_key(f.read(), None)
                self.parsed[base] = (mtime, key)
            with open(base + ".json") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise HttpError(404, "key %s not found" % kid)
        return key, meta

    def put(self, ns, kid, key, meta):
        base = os.path.join(self._dir(ns), kid)
        with self.lock:
            if os.path.exists(base + ".pem"):
                raise HttpError(400, "key %s already exists" % kid)
            with open(base + ".json", "w") as f:
                json.dump(meta, f)
            with open(base + ".pem", "wb") as f:
                f.write(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))

    def update(self, ns, kid, change):
        """change(meta) edits the key's metadata in place; returns its result."""
        base = os.path.join(self._dir(ns), kid)
        with self.lock:
            try:
                with open(base + ".json") as f:
                    meta = json.load(f)
            except FileNotFoundError:
                raise HttpError(404, "key %s not found" % kid)
            result = change(meta)
            with open(base + ".json.tmp", "w") as f:
                json.dump(meta, f)
            os.rename(base + ".json.tmp", base + ".json")
            return result

    def delete(self, ns, kid):
        base = os.path.join(self._dir(ns), kid)
        with self.lock:
            if not os.path.exists(base + ".pem"):
                raise HttpError(404, "key %s not found" % kid)
            os.unlink(base + ".pem")
            os.unlink(base + ".json")


def b64(data):
    return base64.b64encode(data).decode()


TAG = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def check_tag(tag):
    """Tags are the spec's ID (TagList items); the path parameter is a bare string."""
    if not TAG.match(tag) or len(tag) > 128:
        raise HttpError(400, "invalid tag %r" % tag)


def may_use(user, meta):
    """keyfender: no tags, or an Operator sharing one (Administrators are not restricted)."""
    tags = set(meta.get("restrictions", {}).get("tags", []))
    return not tags or user is None or user["role"] != "Operator" or bool(tags & user["tags"])


def public_json(key, meta):
    """GET /keys/{KeyID}: the spec's PublicKey."""
    pub = key.public_key()
    if meta["type"] == "RSA":
        nums = pub.public_numbers()
        be = lambda x: x.to_bytes((x.bit_length() + 7) // 8, "big")
        public = {"modulus": b64(be(nums.n)), "publicExponent": b64(be(nums.e))}
    elif meta["type"] == "Curve25519":
        public = {"data": b64(pub.public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw))}
    else:
        public = {"data": b64(pub.public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint))}
    out = {"mechanisms": meta["mechanisms"], "type": meta["type"], "public": public,
           "operations": meta.get("operations", 0)}
    if meta.get("restrictions"):
        out["restrictions"] = meta["restrictions"]
    return out


def generate(store, ns, body):
    ktype, mechs = body["type"], set(body["mechanisms"])
    if ktype not in MECHS:
        raise HttpError(400, "key type %s is not supported by this server" % ktype)
    if not mechs or not mechs <= MECHS[ktype]:
        raise HttpError(400, "mechanisms %s do not fit key type %s" % (sorted(mechs), ktype))
    if ktype == "RSA":
        if "length" not in body:
            raise HttpError(400, "RSA keys need a length")
        key = rsa.generate_private_key(65537, body["length"])
    elif ktype == "Curve25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = ec.generate_private_key(CURVES[ktype]())
    kid = body.get("id") or os.urandom(10).hex()
    store.put(ns, kid, key, {"type": ktype, "mechanisms": sorted(mechs),
                             "restrictions": body.get("restrictions", {})})
    return kid


def rsa_pkcs1_raw(key, t):
    """EMSA-PKCS1-v1_5 over t (the caller's DigestInfo), then the RSA private operation."""
    k = (key.key_size + 7) // 8
    if len(t) > k - 11:
        raise HttpError(400, "PKCS1 input of %d bytes is too long for the key" % len(t))
    em = b"\x00\x01" + b"\xff" * (k - 3 - len(t)) + b"\x00" + t
    n = key.private_numbers()
    s = pow(int.from_bytes(em, "big"), n.d, n.public_numbers.n)
    return s.to_bytes(k, "big")


def sign(key, meta, mode, msg):
    if MODE_MECH.get(mode) not in meta["mechanisms"]:
        raise HttpError(400, "mode %s is not allowed for this key (mechanisms %s)"
                        % (mode, ", ".join(meta["mechanisms"])))
    if mode == "PKCS1":
        return rsa_pkcs1_raw(key, msg)
    if mode in PSS_HASHES:
        h = PSS_HASHES[mode]()
        if len(msg) != h.digest_size:
            raise HttpError(400, "%s needs a %d-byte digest" % (mode, h.digest_size))
        return key.sign(msg, padding.PSS(padding.MGF1(h), h.digest_size), utils.Prehashed(h))
    if mode == "EdDSA":
        return key.sign(msg)
    if len(msg) * 8 > key.curve.key_size + 7 or len(msg) not in BY_LEN:
        raise HttpError(400, "ECDSA input of %d bytes does not fit the curve" % len(msg))
    return key.sign(msg, ec.ECDSA(utils.Prehashed(BY_LEN[len(msg)]())))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Users:
    """--user accounts; their tags live in DIR/user-tags.json across restarts."""

    def __init__(self, root, specs):
        self.path = os.path.join(root, "user-tags.json")
        self.lock = threading.Lock()
        try:
            with open(self.path) as f:
                saved = json.load(f)
        except FileNotFoundError:
            saved = {}
        self.by_name = {}
        for name, (role, pw) in specs.items():
            self.by_name[name] = {"name": name, "role": role, "password": pw,
                                  "namespace": name.split("~", 1)[0] if "~" in name else "",
                                  "tags": set(saved.get(name, []))}

    def get(self, name):
        return self.by_name.get(name)

    def target(self, caller, name):
        """The user an Administrator manages: same namespace (x-annotation-target-namespace)."""
        u = self.by_name.get(name)
        if not u:
            raise HttpError(404, "user %s not found" % name)
        if caller["namespace"] != u["namespace"]:
            raise HttpError(403, "user %s is not in your namespace" % name)
        return u

    def set_tag(self, u, tag, on):
        """Add or remove tag; False if nothing changed."""
        if u["role"] != "Operator":
            raise HttpError(400, "tag operations only exist on operator users")
        with self.lock:
            if (tag in u["tags"]) == on:
                return False
            (u["tags"].add if on else u["tags"].discard)(tag)
            data = {n: sorted(v["tags"]) for n, v in self.by_name.items() if v["tags"]}
            with open(self.path + ".tmp", "w") as f:
                json.dump(data, f)
            os.rename(self.path + ".tmp", self.path)
            return True


def make_handler(args, routes, store, users):
    faults = {"412": args.fail_412, "500": args.fail_500, "drop": args.drop}
    flock = threading.Lock()

    def take(kind):
        with flock:
            if faults[kind] > 0:
                faults[kind] -= 1
                return True
        return False

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this a reply's
        # body waits for the client's delayed ACK (40 ms), which no NetHSM does.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *a):
            if args.verbose:
                sys.stderr.write("nethsm-server: " + fmt % a + "\n")

        def reply(self, status, body=b"", ctype="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, message):
            self.reply(status, json.dumps({"message": message}).encode())

        def caller(self, roles):
            if "Public" in roles:
                return None
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Basic "):
                raise HttpError(401, "authentication required")
            try:
                name, _, pw = base64.b64decode(auth[6:], validate=True).decode().partition(":")
            except ValueError:
                raise HttpError(401, "malformed Basic authorization")
            u = users.get(name)
            if not u or u["password"] != pw:
                raise HttpError(401, "wrong user or passphrase")
            if u["role"] not in roles:
                raise HttpError(403, "role %s may not do this (allowed: %s)"
                                % (u["role"], ", ".join(roles)))
            return u

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def handle_any(self, method):
            raw = self.body()
            if take("drop"):
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if args.latency_ms:
                time.sleep(args.latency_ms / 1000.0)
            try:
                self.dispatch(method, raw)
            except HttpError as e:
                self.error(e.status, e.message)

        def dispatch(self, method, raw):
            path, _, query = self.path.partition("?")
            for rx, tmpl, params, ops in routes:
                m = rx.match(path)
                if m:
                    break
            else:
                raise HttpError(404, "no such path: %s" % path)
            op = ops.get(method)
            if not op:
                raise HttpError(405, "%s is not allowed on %s" % (method, tmpl))
            user = self.caller(op["roles"])
            if take("412"):
                raise HttpError(412, "NetHSM is not Operational (injected)")
            if take("500"):
                raise HttpError(500, "internal server error (injected)")
            for name, value in m.groupdict().items():
                try:
                    validate(value, params.get(name, STRING_SCHEMA))
                except jsonschema.ValidationError as e:
                    raise HttpError(400, "path parameter %s: %s" % (name, e.message))
            body = None
            if op["body"]:
                if op["schema"] is None or \
                        self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                    raise HttpError(415, "send application/json")
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise HttpError(400, "the body is not JSON")
                try:
                    validate(body, op["schema"])
                except jsonschema.ValidationError as e:
                    raise HttpError(400, "invalid body: %s" % e.message)
            self.serve(method, tmpl, m.groupdict(), body, user, query)

        def serve(self, method, tmpl, p, body, user, query):
            ns = user["namespace"] if user else ""
            if (method, tmpl) == ("GET", "/keys"):
                ids = store.ids(ns)
                if "filter" in urllib.parse.parse_qs(query, keep_blank_values=True):
                    ids = [k for k in ids if may_use(user, store.get(ns, k)[1])]
                return self.reply(200, json.dumps([{"id": k} for k in ids]).encode())
            if (method, tmpl) == ("POST", "/keys/generate"):
                kid = generate(store, ns, body)
                self.send_response(201)
                self.send_header("Location", "/api/v1/keys/" + kid)
                data = json.dumps({"id": kid}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return self.wfile.write(data)
            if (method, tmpl) == ("GET", "/keys/{KeyID}"):
                key, meta = store.get(ns, p["KeyID"])
                return self.reply(200, json.dumps(public_json(key, meta)).encode())
            if tmpl == "/keys/{KeyID}/restrictions/tags/{Tag}":
                check_tag(p["Tag"])

                def change(meta):
                    tags = meta.setdefault("restrictions", {}).setdefault("tags", [])
                    if (p["Tag"] in tags) == (method == "PUT"):
                        return False
                    (tags.append if method == "PUT" else tags.remove)(p["Tag"])
                    return True
                changed = store.update(ns, p["KeyID"], change)
                return self.reply(204 if changed or method == "DELETE" else 304)
            if tmpl == "/users/{UserID}/tags":
                u = users.target(user, p["UserID"])
                if u["role"] != "Operator":
                    raise HttpError(400, "tag operations only exist on operator users")
                return self.reply(200, json.dumps(sorted(u["tags"])).encode())
            if tmpl == "/users/{UserID}/tags/{Tag}":
                check_tag(p["Tag"])
                u = users.target(user, p["UserID"])
                changed = users.set_tag(u, p["Tag"], method == "PUT")
                if method == "DELETE" and not changed:
                    raise HttpError(404, "user %s has no tag %s" % (u["name"], p["Tag"]))
                return self.reply(204 if changed else 304)
            if (method, tmpl) == ("DELETE", "/keys/{KeyID}"):
                store.delete(ns, p["KeyID"])
                return self.reply(204)
            if (method, tmpl) == ("GET", "/keys/{KeyID}/public.pem"):
                key, _ = store.get(ns, p["KeyID"])
                pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
                return self.reply(200, pem, "application/x-pem-file")
            if (method, tmpl) == ("POST", "/keys/{KeyID}/sign"):
                key, meta = store.get(ns, p["KeyID"])
                if not may_use(user, meta):
                    raise HttpError(403, "tags restriction not met")
                sig = sign(key, meta, body["mode"], base64.b64decode(body["message"]))
                return self.reply(200, json.dumps({"signature": b64(sig)}).encode())
            raise HttpError(501, "%s %s is valid but not implemented by this test server"
                            % (method, tmpl))

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_DELETE(self):
            self.handle_any("DELETE")

        def do_PATCH(self):
            self.handle_any("PATCH")

    return Handler


def tls_context(state):
    cert, keyf = os.path.join(state, "cert.pem"), os.path.join(state, "key.pem")
    if not os.path.exists(cert):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        import ipaddress
        crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.SubjectAlternativeName(
                   [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost")]), critical=False)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(key, hashes.SHA256()))
        with open(keyf, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(cert + ".tmp", "wb") as f:
            f.write(crt.public_bytes(serialization.Encoding.PEM))
        os.rename(cert + ".tmp", cert)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, keyf)
    return ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--spec", default=SPEC)
    ap.add_argument("--user", action="append", default=[], help="[NS~]NAME:ROLE:PASSWORD")
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--fail-412", type=int, default=0)
    ap.add_argument("--fail-500", type=int, default=0)
    ap.add_argument("--drop", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.state, exist_ok=True)
    specs = {}
    for u in args.user:
        name, role, pw = u.split(":", 2)
        if role not in ("Administrator", "Operator", "Metrics", "Backup"):
            ap.error("unknown role " + role)
        specs[name] = (role, pw)
    users = Users(args.state, specs)
    routes = load_spec(args.spec)
    srv = Server(("127.0.0.1", args.port),
                 make_handler(args, routes, Store(args.state), users))
    srv.socket = tls_context(args.state).wrap_socket(srv.socket, server_side=True)
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
