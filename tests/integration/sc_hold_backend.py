#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# sc_hold_backend.py PORT SECS: a plain TCP backend that accepts any number
# of connections and reads from them until they close (SECS at most).
import asyncio
import sys


async def handle(r, w):
    try:
        while await r.read(65536):
            pass
    except OSError:
        pass
    w.close()


async def main():
    await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    print("ready", flush=True)
    await asyncio.sleep(float(sys.argv[2]))


asyncio.run(main())
