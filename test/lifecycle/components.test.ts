// backends: sqlite only: the component runner alone, with stand-in components and no storage
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import {
  type Component,
  part,
  runComponents,
  StartAborted,
  type StopBudget,
} from "../../src/lifecycle/components.js";
import { createLogger } from "../../src/log.js";

/** A logger whose JSON lines are kept. */
function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("debug", {
    write: (line: string) => {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { log, lines };
}

/** Stand-in components that write what happens to them in `events`. */
function recorder() {
  const events: string[] = [];
  const budgets = new Map<string, number>();
  const component = (
    name: string,
    behaviour: {
      startFails?: () => Error | undefined;
      startMillis?: number;
      stopMillis?: number;
      stopFails?: boolean;
      reserve?: (total: number) => number;
      beginStop?: boolean;
    } = {},
  ): Component => ({
    name,
    async start(signal) {
      events.push(`start ${name}`);
      if (behaviour.startMillis) await sleep(behaviour.startMillis, undefined, { signal });
      const error = behaviour.startFails?.();
      if (error) throw error;
    },
    ...(behaviour.beginStop && {
      beginStop: (budget: StopBudget) => {
        events.push(`begin stop ${name}`);
        budgets.set(`begin ${name}`, budget.millis());
      },
    }),
    async stop(budget) {
      events.push(`stop ${name}`);
      budgets.set(name, budget.millis());
      if (behaviour.stopMillis) await sleep(behaviour.stopMillis);
      if (behaviour.stopFails) throw new Error(`${name} would not stop`);
    },
    ...(behaviour.reserve && { reserveMillis: behaviour.reserve }),
  });
  return { events, budgets, component };
}

describe("the component runner", () => {
  it("should start components in order and stop them in reverse order", async () => {
    const { events, component } = recorder();
    const { log } = capturedLog();
    const runner = runComponents([component("a"), component("b"), component("c")], {
      log,
      stopMillis: 1000,
    });
    await runner.start();
    await runner.stop(1000);
    expect(events).toEqual(["start a", "start b", "start c", "stop c", "stop b", "stop a"]);
  });

  it("should tell every started component that the shutdown began before stopping any", async () => {
    const { events, component } = recorder();
    const { log } = capturedLog();
    const runner = runComponents(
      [component("a", { beginStop: true }), component("b"), component("c", { beginStop: true })],
      { log, stopMillis: 1000 },
    );
    await runner.start();
    await runner.stop(1000);
    expect(events.slice(3)).toEqual(["begin stop c", "begin stop a", "stop c", "stop b", "stop a"]);
  });

  it("should give each stop its share: the budget less what the components stopped after it keep", async () => {
    const { budgets, component } = recorder();
    const { log } = capturedLog();
    // As the service: the port, storage, telemetry keeping a quarter (at most 5 s), then the server.
    const runner = runComponents(
      [
        component("port"),
        component("storage"),
        component("telemetry", { reserve: (total) => Math.min(5000, Math.floor(total / 4)) }),
        component("server", { stopMillis: 300 }),
      ],
      { log, stopMillis: 1000 },
    );
    await runner.start();
    await runner.stop(2000);
    // The server: 2000 less the telemetry's 500.
    expect(budgets.get("server")).toBeGreaterThan(1400);
    expect(budgets.get("server")).toBeLessThanOrEqual(1500);
    // The telemetry: whatever is left (about 1700 ms), at least its 500.
    expect(budgets.get("telemetry")).toBeGreaterThan(1400);
    expect(budgets.get("telemetry")).toBeLessThanOrEqual(1700);
    expect(budgets.get("storage")).toBeLessThanOrEqual(1700);
  });

  it("should keep a component's reserve even when the stops before it used up the budget", async () => {
    const { budgets, component } = recorder();
    const { log, lines } = capturedLog();
    const runner = runComponents(
      [component("telemetry", { reserve: () => 250 }), component("server", { stopMillis: 400 })],
      { log, stopMillis: 1000 },
    );
    await runner.start();
    await runner.stop(300);
    expect(budgets.get("server")).toBeLessThanOrEqual(50);
    expect(budgets.get("telemetry")).toBe(250);
    // The overrun is said, by the component's name.
    expect(lines).toContainEqual(
      expect.objectContaining({
        component: "server",
        msg: "component stop took longer than its share",
      }),
    );
  });

  it("should stop what started, last first, when a component fails to start, and reject with its error", async () => {
    const { events, component } = recorder();
    const { log } = capturedLog();
    const broken = new Error("cannot start c");
    const runner = runComponents(
      [
        component("a"),
        component("b"),
        component("c", { startFails: () => broken }),
        component("d"),
      ],
      { log, stopMillis: 1000 },
    );
    await expect(runner.start()).rejects.toBe(broken);
    expect(events).toEqual(["start a", "start b", "start c", "stop b", "stop a"]);
    // A later stop has nothing left to do.
    await runner.stop(1000);
    expect(events).toHaveLength(5);
  });

  it("should cut a start short when stopped meanwhile, and stop what had started", async () => {
    const { events, component } = recorder();
    const { log } = capturedLog();
    const runner = runComponents(
      [component("a"), component("slow", { startMillis: 10_000 }), component("c")],
      { log, stopMillis: 1000 },
    );
    const starting = runner.start();
    await sleep(50);
    const began = performance.now();
    await runner.stop(1000);
    expect(performance.now() - began).toBeLessThan(1000);
    await expect(starting).rejects.toBeInstanceOf(StartAborted);
    expect(events).toEqual(["start a", "start slow", "stop a"]);
  });

  it("should stop every component when one fails to stop, and reject with that failure", async () => {
    const { events, component } = recorder();
    const { log, lines } = capturedLog();
    const runner = runComponents(
      [component("a"), component("b", { stopFails: true }), component("c")],
      {
        log,
        stopMillis: 1000,
      },
    );
    await runner.start();
    await expect(runner.stop(1000)).rejects.toThrow("b would not stop");
    expect(events.slice(3)).toEqual(["stop c", "stop b", "stop a"]);
    expect(lines).toContainEqual(
      expect.objectContaining({ component: "b", msg: "component failed to stop" }),
    );
  });

  it("should start again from the retry's component once it recovers, keeping the ones before it up", async () => {
    const { events, component } = recorder();
    const { log } = capturedLog();
    let failures = 2;
    const recovered: string[] = [];
    const runner = runComponents(
      [
        component("port"),
        component("storage"),
        component("keys", {
          startFails: () => (failures-- > 0 ? new Error(`busy ${failures}`) : undefined),
        }),
        component("server"),
      ],
      {
        log,
        stopMillis: 1000,
        retry: {
          from: "storage",
          async recover(error) {
            recovered.push((error as Error).message);
          },
        },
      },
    );
    await runner.start();
    expect(recovered).toEqual(["busy 1", "busy 0"]);
    expect(events).toEqual([
      "start port",
      "start storage",
      "start keys",
      "stop storage",
      "start storage",
      "start keys",
      "stop storage",
      "start storage",
      "start keys",
      "start server",
    ]);
    await runner.stop(1000);
  });

  it("should fail the start, stopping everything, when the retry will not recover", async () => {
    const { events, component } = recorder();
    const { log } = capturedLog();
    const runner = runComponents(
      [component("port"), component("storage", { startFails: () => new Error("bad path") })],
      {
        log,
        stopMillis: 1000,
        retry: {
          from: "storage",
          async recover(error) {
            throw error;
          },
        },
      },
    );
    await expect(runner.start()).rejects.toThrow("bad path");
    expect(events).toEqual(["start port", "start storage", "stop port"]);
  });

  it("should end a retry's wait when stopped, and stop what had started", async () => {
    const { events, component } = recorder();
    const { log } = capturedLog();
    const runner = runComponents(
      [component("port"), component("storage", { startFails: () => new Error("read-only") })],
      {
        log,
        stopMillis: 1000,
        retry: {
          from: "storage",
          recover: (_error, signal) => sleep(60_000, undefined, { signal }),
        },
      },
    );
    const starting = runner.start();
    await sleep(50);
    await runner.stop(1000);
    await expect(starting).rejects.toBeInstanceOf(StartAborted);
    expect(events).toEqual(["start port", "start storage", "stop port"]);
  });

  it("should refuse two components of one name", () => {
    const { component } = recorder();
    const { log } = capturedLog();
    expect(() =>
      runComponents([component("a"), component("a")], { log, stopMillis: 1000 }),
    ).toThrow("two components named a");
  });
});

describe("a part", () => {
  it("should give what its start made to the components after it, and nothing once stopped", async () => {
    const { log } = capturedLog();
    const stopped: number[] = [];
    const first = part({
      name: "first",
      start: async () => 41,
      stop: async (value) => {
        stopped.push(value);
      },
    });
    const second = part({ name: "second", start: async () => first.value + 1 });
    expect(() => first.value).toThrow("first is not started");
    const runner = runComponents([first, second], { log, stopMillis: 1000 });
    await runner.start();
    expect(second.value).toBe(42);
    await runner.stop(1000);
    expect(stopped).toEqual([41]);
    expect(() => second.value).toThrow("second is not started");
  });
});
