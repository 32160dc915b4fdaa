"""Restarts, 429 storms and close deadlines, against the real service."""

import threading
import time
import unittest

from mcp_metrics_client import MetricsClient

from .service import MetricsService, balanced, free_port, wait_until


class RestartTest(unittest.TestCase):
    def test_nothing_flushed_is_lost_and_the_client_recovers_by_itself(self):
        service = MetricsService().start()
        self.addCleanup(service.close)
        client = MetricsClient(service.url, service.key, "test-service", flush_interval=0.02,
                               initial_backoff=0.02, max_backoff=0.2)
        self.addCleanup(client.close, 1.0)
        emitted = []
        stop = threading.Event()

        def emit():
            n = 0
            while not stop.is_set():
                for _ in range(10):
                    client.custom("restart", n)
                    n += 1
                time.sleep(0.005)
            emitted.append(n)

        emitter = threading.Thread(target=emit)
        emitter.start()
        try:
            self.assertTrue(wait_until(lambda: client.stats().sent > 300))
            self.assertEqual(service.stop(), 0)
            sent_before = client.stats().sent
            time.sleep(0.3)  # down: requests are refused and retried meanwhile
            service.start()
            self.assertTrue(wait_until(lambda: client.stats().sent > sent_before + 300, timeout=15))
        finally:
            stop.set()
            emitter.join()
        self.assertTrue(client.flush(15))
        stats = client.stats()
        total = emitted[0]
        self.assertEqual((stats.emitted, stats.sent, stats.dropped, stats.failed), (total, total, 0, 0))
        [row] = service.query("SELECT count(*) AS n, count(DISTINCT value) AS d, max(value) AS hi "
                              "FROM metrics")
        self.assertEqual(row, {"n": total, "d": total, "hi": total - 1})


class StormTest(unittest.TestCase):
    def test_waits_as_long_as_the_server_says_with_a_bounded_buffer(self):
        # 30 requests a minute: a full bucket of 30, then one token every 2 s.
        service = MetricsService(METRICS_RATE_LIMIT="30").start()
        self.addCleanup(service.close)
        client = MetricsClient(service.url, service.key, "test-service", max_batch_events=10,
                               max_buffered_events=200, flush_interval=0.01,
                               initial_backoff=0.001, max_backoff=0.005)
        peak = 0
        started = time.monotonic()
        for _ in range(150):  # a fixed amount of work, however slow the machine
            for i in range(100):
                client.custom("storm", i)
            peak = max(peak, client.stats().buffered)
            time.sleep(0.02)
        seconds = time.monotonic() - started
        stats = client.stats()
        print(f"\n429 storm: {stats.emitted} emitted, {stats.sent} sent, {stats.dropped} dropped, "
              f"{stats.retries} retries in {seconds:.1f} s, peak buffer {peak}/200")
        # One request in flight, waiting the ~2 s the server asks for each time.
        self.assertGreater(stats.retries, 0)
        self.assertLessEqual(stats.retries, seconds / 2 + 2)
        self.assertEqual(peak, 200)
        self.assertLessEqual(stats.buffered + stats.in_flight, 200 + 10)
        # Nearly everything beyond the first bucket of 30 requests is dropped, oldest first.
        self.assertGreater(stats.dropped, stats.emitted - stats.sent - 400)
        self.assertGreaterEqual(stats.sent, 300)
        self.assertTrue(balanced(stats))
        closing = time.monotonic()
        self.assertFalse(client.close(0.3))
        self.assertLess(time.monotonic() - closing, 2)
        after = client.stats()
        self.assertEqual((after.buffered, after.in_flight), (0, 0))
        self.assertGreater(after.failed, 0)
        self.assertTrue(balanced(after))


class NoServerTest(unittest.TestCase):
    def test_close_gives_up_at_its_deadline(self):
        client = MetricsClient(f"http://127.0.0.1:{free_port()}", "k", "test-service")
        for i in range(50):
            client.custom("nowhere", i)
        closing = time.monotonic()
        self.assertFalse(client.close(0.3))
        self.assertLess(time.monotonic() - closing, 2)
        stats = client.stats()
        self.assertEqual((stats.emitted, stats.failed, stats.buffered, stats.in_flight), (50, 50, 0, 0))
        self.assertFalse(client.custom("after-close", 1))
        self.assertEqual(client.stats().dropped, 1)
        self.assertFalse(client.close(0.3))  # a second close answers as the first


if __name__ == "__main__":
    unittest.main()
