#!/usr/bin/env python3
"""Waits (bounded) until moto answers and the bridge has written its port; prints the bridge port."""
import os
import sys
import time
import urllib.request

moto_url, port_file, deadline = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
while True:
    try:
        urllib.request.urlopen(moto_url + "/moto-api/", timeout=2).read()
        if os.path.exists(port_file):
            print(open(port_file).read().strip())
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("test services did not start in time")
    time.sleep(0.1)
