"""Sends EMF documents to cwlite's EMF listener with the real client library
(aws-embedded-metrics from PyPI), as an application on the host would.

Usage: emf_client.py ENDPOINT COUNT
  ENDPOINT  tcp://127.0.0.1:PORT or udp://127.0.0.1:PORT (AWS_EMF_AGENT_ENDPOINT)
  COUNT     documents to send, each one flush of a metric_scope with Latency = its number

The group and stream come from AWS_EMF_LOG_GROUP_NAME and AWS_EMF_LOG_STREAM_NAME, which
the test sets. AWS_EMF_ENVIRONMENT=default keeps the library from probing EC2's metadata
service, which is off-limits here.
"""

import asyncio
import os
import sys

os.environ["AWS_EMF_AGENT_ENDPOINT"] = sys.argv[1]
os.environ.setdefault("AWS_EMF_ENVIRONMENT", "default")
os.environ.setdefault("AWS_EMF_NAMESPACE", "CwliteTest")

from aws_embedded_metrics import metric_scope  # noqa: E402  (reads the environment at import)


@metric_scope
async def one(number, metrics):
    metrics.put_dimensions({"Service": "api"})
    metrics.put_metric("Latency", number, "Milliseconds")
    metrics.set_property("Number", number)


async def main(count):
    for number in range(count):
        await one(number)


asyncio.run(main(int(sys.argv[2])))
