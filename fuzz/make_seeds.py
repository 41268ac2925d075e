#!/usr/bin/env python3
"""Writes the hand-made seed corpus under fuzz/corpus/<target>/.

Small valid inputs (real command bytes, a real disk-queue segment, NSQ's
JSON from tests/fixtures/nsq-v1.3.0/) plus a few broken ones. The files are
committed; run this again only to regenerate them. Inputs found by fuzzing
(crashes, kept as regressions) live beside them under other names.
"""
import json
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(ROOT, "..", "tests", "fixtures", "nsq-v1.3.0")


def seed(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def sized(body):
    if isinstance(body, str):
        body = body.encode()
    return struct.pack(">i", len(body)) + body


def mpub_body(msgs):
    inner = struct.pack(">i", len(msgs)) + b"".join(sized(m) for m in msgs)
    return inner


# ---------------------------------------------------------------- V2
IDENT = json.dumps({
    "client_id": "c", "hostname": "h", "feature_negotiation": True,
    "heartbeat_interval": 30000, "output_buffer_size": 16384,
    "output_buffer_timeout": 250, "tls_v1": False, "snappy": False,
    "deflate": False, "deflate_level": 6, "sample_rate": 0,
    "user_agent": "go-nsq/1.1.0", "msg_timeout": 0,
}, separators=(",", ":"))
ID = b"0123456789abcdef"
seed("v2_commands", "consumer", b"\x00" + b"IDENTIFY\n" + sized(IDENT) + b"SUB t c\nRDY 10\nFIN "
     + ID + b"\nREQ " + ID + b" 100\nTOUCH " + ID + b"\nNOP\nCLS\nRDY 1\n")
seed("v2_commands", "producer", b"\x00PUB t\n" + sized("hello") + b"DPUB t 100\n" + sized("later")
     + b"MPUB t\n" + sized(mpub_body([b"a", b"bc", b"def"])) + b"NOP\r\n")
seed("v2_commands", "auth", b"\x00AUTH\n" + sized("secret") + b"PUB t#ephemeral\n" + sized("x"))
seed("v2_commands", "subscribed_small_limits", b"\x11RDY 5\nRDY\nFIN " + ID + b"\nPUB t\n" + sized("m" * 70))
seed("v2_commands", "tls_pending", b"\x04IDENTIFY\n" + sized("{}") + b"NOP\n")
seed("v2_commands", "bad_command", b"\x00FOO bar\n")
seed("v2_commands", "bad_topic", b"\x00PUB bad!\n" + sized("x"))
seed("v2_commands", "short_body_at_eof", b"\x00PUB t\n\x00\x00\x00\x05ab")
# Runs of PUBs to one topic (the connection's short path), broken by other
# spellings and topics, then a body over the small limit.
seed("v2_commands", "pub_run", b"\x00PUB t\n" + sized("a") + b"PUB t\n" + sized("b")
     + b"PUB t\r\n" + sized("c") + b"PUB t x\n" + sized("d") + b"PUB u\n" + sized("e")
     + b"PUB t\n" + sized("f") + b"PUB t\n" + sized("g") + b"PUB t\n\x00\x00\x00\x00")
seed("v2_commands", "pub_run_small_limits", b"\x10PUB t\n" + sized("ok") + b"PUB t\n" + sized("m" * 65))

# ---------------------------------------------------------- IDENTIFY
seed("identify_json", "go_nsq_request", IDENT)
seed("identify_json", "mixed_case_keys", '{"Client_ID":"c","short_id":"x","long_id":"y","heartbeat_interval":-1}')
seed("identify_json", "nsqd_response", fixture("nsqd-identify-response.json"))
seed("identify_json", "ok", "OK")
seed("identify_json", "null", "null")

# -------------------------------------------------------------- auth
seed("auth_json", "grants", json.dumps({
    "ttl": 3600, "identity": "user", "identity_url": "http://id.example/user",
    "authorizations": [
        {"topic": "^orders$", "channels": [".*"], "permissions": ["subscribe", "publish"]},
        {"topic": "logs", "channels": ["^archive$"], "permissions": ["subscribe"]},
    ]}))
seed("auth_json", "no_ttl", '{"identity":"x","authorizations":[]}')
seed("auth_json", "bad_pattern", '{"ttl":5,"authorizations":[{"topic":"(","channels":[],"permissions":[]}]}')

# ------------------------------------------------------- lookupd V1
LOOKUPD_IDENT = json.dumps({
    "broadcast_address": "127.0.0.1", "hostname": "h", "http_port": 4151,
    "tcp_port": 4150, "version": "1.3.0"}, separators=(",", ":"))
seed("lookupd_v1", "nsqd_session", b"\x00PING\nIDENTIFY\n" + sized(LOOKUPD_IDENT)
     + b"REGISTER t c\nREGISTER t\nREGISTER e#ephemeral c#ephemeral\nPING\n"
     + b"UNREGISTER t c\nUNREGISTER t\nUNREGISTER e#ephemeral c#ephemeral\n")
seed("lookupd_v1", "register_before_identify", b"\x00REGISTER t\n")
seed("lookupd_v1", "identify_missing_fields", b"\x00IDENTIFY\n" + sized('{"tcp_port":4150}'))
seed("lookupd_v1", "bad_magic", b"\x01  V2PING\n")
seed("lookupd_v1", "bad_topic", b"\x00IDENTIFY\n" + sized(LOOKUPD_IDENT) + b"REGISTER bad! c\n")


# ------------------------------------------------------------ snappy
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def chunk(kind, payload, data):
    body = struct.pack("<I", masked(data)) + payload
    return bytes([kind]) + struct.pack("<I", len(body))[:3] + body


STREAM_ID = b"\xff\x06\x00\x00sNaPpY"
# Raw snappy, by hand: "abcabcabcabc" = literal "abc" then a copy of 9
# bytes at offset 3 (2-byte-offset copy element).
raw = b"\x0c" + bytes([(3 - 1) << 2]) + b"abc" + bytes([((9 - 1) << 2) | 2]) + struct.pack("<H", 3)
seed("snappy_stream", "uncompressed", STREAM_ID + chunk(1, b"hello", b"hello"))
seed("snappy_stream", "compressed", STREAM_ID + chunk(0, raw, b"abcabcabcabc") + chunk(1, b"!", b"!"))
seed("snappy_stream", "padding", STREAM_ID + b"\xfe\x02\x00\x00\x00\x00" + chunk(1, b"x", b"x"))
seed("snappy_stream", "bad_crc", STREAM_ID + b"\x01\x09\x00\x00\x00\x00\x00\x00hello")

# ----------------------------------------------------------- deflate
for level in (1, 6, 9):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    data = c.compress(b"PUB t\n\x00\x00\x00\x05hello" * 3) + c.flush(zlib.Z_SYNC_FLUSH)
    data += c.compress(b"NOP\n") + c.flush(zlib.Z_SYNC_FLUSH)
    seed("deflate_stream", "sync_flushed_%d" % level, data)
c = zlib.compressobj(6, zlib.DEFLATED, -15)
seed("deflate_stream", "finished", c.compress(b"hello hello hello") + c.flush())
seed("deflate_stream", "stored", b"\x01\x05\x00\xfa\xffhello")

# -------------------------------------------------------- disk queue
# Configuration byte (see queue_config in src/fuzzing.rs): 0x11 = files
# of 200 bytes, records of 1..=100 bytes.
def records(*rs):
    return b"".join(sized(r) for r in rs)


# A real message record: timestamp, attempts, hex ID, body.
msg = struct.pack(">qH", 1700000000000000000, 1) + ID + b"body"
seg = records(b"hello", b"world!", msg)
seed("diskqueue_segment", "records", b"\x11" + seg)
seed("diskqueue_segment", "torn_tail", b"\x11" + seg + b"\x00\x00\x00\x09abc")
seed("diskqueue_segment", "bad_size", b"\x11" + records(b"ok") + b"\xff\xff\xff\xff")
seed("diskqueue_segment", "empty", b"\x11")

seed("diskqueue_recovery", "consistent", b"\x11" + b"3\n0,0\n0,%d\n" % len(seg) + b"|||\x00" + seg)
seed("diskqueue_recovery", "partly_read", b"\x11" + b"1\n0,9\n1,10\n" + b"|||\x00" + records(b"hello", b"later")
     + b"|||\x01" + records(b"more!"))
seed("diskqueue_recovery", "metadata_behind", b"\x11" + b"1\n0,0\n0,9\n" + b"|||\x00" + seg)
seed("diskqueue_recovery", "no_metadata", b"\x11|||\x02" + seg + b"|||\x03" + records(b"x"))
seed("diskqueue_recovery", "damaged_metadata", b"\x11garbage|||\x00" + seg)
seed("diskqueue_recovery", "missing_segment", b"\x11" + b"2\n0,0\n2,10\n" + b"|||\x02" + records(b"x"))

seed("diskqueue_meta", "nsq_text", "2\n0,0\n0,19\n")
seed("diskqueue_meta", "negative_depth", "-3\n0,0\n0,0\n")
seed("diskqueue_meta", "later_segments", "42\n0,1380\n1,512\n")
seed("diskqueue_meta", "read_past_write", "1\n0,5\n0,4\n")

# --------------------------------------------------------- nsqd.dat
seed("nsqd_dat", "topics", '{"topics":[{"name":"orders","paused":false,"channels":[{"name":"billing",'
     '"paused":true}]},{"name":"empty_topic","paused":false,"channels":null}],"version":"1.3.0"}')
seed("nsqd_dat", "no_topics", '{"topics":null,"version":"1.2.1"}')
seed("nsqd_dat", "invalid_names", '{"topics":[{"name":"bad topic!","channels":[{"name":"x y"}]}],"version":"1.3.0"}')

# -------------------------------------------------------------- HTTP
seed("http_query", "pub", "topic=a%20b&topic=second&x=1+2&flag")
seed("http_query", "defer", "topic=t&defer=1000")
seed("http_query", "mpub_binary", "topic=t&binary=true")
seed("http_query", "bad_escape", "topic=%zz")
seed("http_query", "semicolon", "a=1;b=2")

seed("http_long_target", "short_requests", b"\x00POST /pub?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
     b"GET /ping HTTP/1.1\r\n\r\n")
seed("http_long_target", "long_query", b"\x03GET /stats?topic=t&pad=~~~~ HTTP/1.1\r\nHost: x\r\n\r\n")
seed("http_long_target", "chunked_then_long", b"\x05POST /mpub?topic=t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"f\r\nGET /x?a HTTP/1\r\n0\r\nX-Trailer: 1\r\n\r\nGET /stats?q=~~~~ HTTP/1.1\r\n\r\n")
seed("http_long_target", "bad_length", b"\x01POST /pub HTTP/1.1\r\nContent-Length: nope\r\n\r\nGET /s?~~~~ HTTP/1.1\r\n\r\n")

seed("http_mpub", "small_limits", b"\x01" + mpub_body([b"a", b"bc"]))
seed("http_mpub", "default_limits", b"\x00" + mpub_body([b"hello", b"world"]))
seed("http_mpub", "zero_count", b"\x00\x00\x00\x00\x00")
seed("http_mpub", "short_message", b"\x00\x00\x00\x00\x01\x00\x00\x00\x05a")

# ---------------------------------------------------- client readers
for name in ("lookupd-lookup.json", "lookupd-identify-response.json", "lookupd-info.json",
             "lookupd-nodes.json", "lookupd-topics.json", "lookupd-channels.json",
             "nsqd-info.json", "nsqd-stats.json"):
    seed("client_json", name.replace(".json", ""), fixture(name))
seed("client_json", "pre_1_0_envelope", '{"status_code":200,"status_txt":"OK","data":{"channels":[],"producers":'
     '[{"address":"h","tcp_port":4150,"http_port":4151}]}}')


def frame(kind, data):
    return struct.pack(">ii", len(data) + 4, kind) + data


seed("client_frames", "responses", frame(0, b"OK") + frame(0, b"_heartbeat_") + frame(1, b"E_INVALID x"))
seed("client_frames", "message", frame(2, msg) + frame(0, b"CLOSE_WAIT"))
seed("client_frames", "http_port", b"HTTP/1.1 400 Bad Request\r\n")


# ------------------------------------------------- client certificates
def der(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(octets)]) + octets
    return bytes([tag]) + head + body


def name(*attrs):
    """A Name: one RDN (SET) per (OID bytes, string tag, value bytes)."""
    return der(0x30, b"".join(der(0x31, der(0x30, der(0x06, oid) + der(tag, value)))
                              for oid, tag, value in attrs))


CN, O = b"\x55\x04\x03", b"\x55\x04\x0a"


def certificate(subject, version=True):
    """The shape of an X.509 certificate (not signed: only its subject is read)."""
    tbs = (der(0xa0, der(0x02, b"\x02")) if version else b"") + der(0x02, b"\x01") \
        + der(0x30, der(0x06, b"\x2b\x65\x70")) + name((CN, 0x0c, b"issuer")) \
        + der(0x30, der(0x17, b"260101000000Z") + der(0x17, b"360101000000Z")) + subject \
        + der(0x30, der(0x30, der(0x06, b"\x2b\x65\x70")) + der(0x03, b"\x00" + bytes(32)))
    return der(0x30, der(0x30, tbs) + der(0x30, der(0x06, b"\x2b\x65\x70")) + der(0x03, b"\x00" + bytes(64)))


seed("x509_common_name", "utf8", certificate(name((O, 0x0c, b"org"), (CN, 0x0c, b"client.example"))))
seed("x509_common_name", "printable_no_version", certificate(name((CN, 0x13, b"client")), version=False))
seed("x509_common_name", "bmp_and_t61", certificate(name((CN, 0x1e, "h\u00e9".encode("utf-16-be")),
                                                         (CN, 0x14, b"caf\xe9"))))
seed("x509_common_name", "long_form_no_cn", certificate(name((O, 0x0c, b"o" * 300))))
