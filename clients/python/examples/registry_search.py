"""A registry's semantic tool search, measured: one discovery event per search.

Run it as a script from the repository root::

    METRICS_SERVICE_URL=http://127.0.0.1:8890 METRICS_API_KEY=<key> PYTHONPATH=clients/python \
      /usr/bin/python3 clients/python/examples/registry_search.py

It runs two searches on a stand-in backend, drains the client and prints its
counters; it exits 1 if the two events were not sent.
"""

import os
import sys
import time

from mcp_metrics_client import MetricsClient


def measured_search(metrics: MetricsClient, embed, nearest):
    """Wraps ``embed(text)`` and ``nearest(vector, top_n)`` (the model and the FAISS index)."""

    def search(query: str, top_n: int = 10):
        started = time.perf_counter()
        vector = embed(query)
        embedded = time.perf_counter()
        tools = nearest(vector, top_n)
        done = time.perf_counter()
        metrics.discovery(query[:100], len(tools), top_n_tools=top_n,
                          embedding_time_ms=(embedded - started) * 1000,
                          faiss_search_time_ms=(done - embedded) * 1000,
                          duration_ms=(done - started) * 1000)
        return tools

    return search


def _main() -> int:
    if not os.environ.get("METRICS_API_KEY"):
        print("set METRICS_API_KEY (and METRICS_SERVICE_URL, default http://localhost:8890)",
              file=sys.stderr)
        return 2
    metrics = MetricsClient(service_name="registry")  # METRICS_SERVICE_URL, METRICS_API_KEY
    tools = ["current_time", "weather", "list_files"]
    search = measured_search(metrics, lambda text: [len(text)],
                             lambda vector, top_n: tools[:top_n])
    print(search("what time is it", 2))
    print(search("read a file", 5))
    metrics.close()
    stats = metrics.stats()
    print(stats)
    return 0 if stats.sent == 2 else 1


if __name__ == "__main__":
    sys.exit(_main())
