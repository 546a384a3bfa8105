#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# sc_slowdns.py ADDR DELAY NAME IP: a DNS server on ADDR:53 (UDP) that
# answers every query after DELAY seconds: an A record IP for NAME, an
# empty answer for anything else. One thread per query, so it is slow, not
# serial. Counts queries in ADDR-queries (written beside the script's cwd).
import socket
import struct
import sys
import threading
import time

addr, delay, name, ip = sys.argv[1], float(sys.argv[2]), sys.argv[3].lower(), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
lock = threading.Lock()
count = 0


def qname(pkt):
    labels, i = [], 12
    while pkt[i]:
        n = pkt[i]
        labels.append(pkt[i + 1:i + 1 + n].decode(errors="replace"))
        i += 1 + n
    return ".".join(labels).lower(), i + 1


def answer(pkt, peer):
    time.sleep(delay)
    qn, end = qname(pkt)
    qtype = struct.unpack(">H", pkt[end:end + 2])[0]
    question = pkt[12:end + 4]
    hit = qn == name and qtype == 1
    hdr = pkt[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if hit else 0, 0, 0)
    body = question
    if hit:
        body += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
    s.sendto(hdr + body, peer)


print("ready", flush=True)
while True:
    pkt, peer = s.recvfrom(2048)
    with lock:
        count += 1
        with open("dns-queries", "w") as f:
            f.write("%d\n" % count)
    threading.Thread(target=answer, args=(pkt, peer), daemon=True).start()
