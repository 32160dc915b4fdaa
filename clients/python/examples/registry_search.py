"""A registry's semantic tool search, measured: one discovery event per search."""

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
