"""What the memory bench scripts' Python clients share: a protocol V2
connection, frame reading, and nsqd's resident size."""
import socket
import struct


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) // 1024


def connect(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.sendall(b"  V2")
    return s


def read_frame(s):
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    size, = struct.unpack(">i", head)
    data = b""
    while len(data) < size:
        data += s.recv(size - len(data))
    return data


def mpub(s, topic, bodies):
    """MPUB `bodies` and check the answer is OK."""
    payload = struct.pack(">i", len(bodies)) + b"".join(
        struct.pack(">i", len(b)) + b for b in bodies)
    s.sendall(b"MPUB " + topic + b"\n" + struct.pack(">i", len(payload)) + payload)
    assert read_frame(s)[4:] == b"OK"
