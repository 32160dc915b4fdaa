import type { Logger } from "../log.js";

/**
 * The service as components: each part (the port, storage, telemetry, the
 * keys, ...) has a name, a start and a stop. They start in the order they are
 * listed, each from what the ones before it made, and stop in the reverse
 * order, each within its share of the shutdown's budget
 * (`METRICS_SHUTDOWN_TIMEOUT_MS`).
 */

/** What a component's stop may take. */
export interface StopBudget {
  /** When the whole shutdown should be over, on the `performance.now()` clock. */
  readonly deadline: number;
  /** The whole shutdown's budget, in ms. */
  readonly totalMillis: number;
  /**
   * This component's share from now, in ms: up to the deadline, less what the
   * components stopped after it keep for themselves, and at least what it
   * keeps itself ({@link Component.reserveMillis}).
   */
  millis(): number;
}

/** One part of the service. */
export interface Component {
  /** For logs: `storage`, `telemetry`, ... */
  readonly name: string;
  /**
   * Starts the component from what the components before it made. May throw:
   * the start then fails and the components already started are stopped. A
   * long wait watches `signal`, aborted when a stop is asked for meanwhile.
   */
  start(signal: AbortSignal): Promise<void>;
  /**
   * Told at once when a shutdown begins, before any component stops (every
   * started component, last started first): stop taking new work and cut
   * long work short, so that the stops before this one's do not wait on it.
   */
  beginStop?(budget: StopBudget): void;
  /** Stops the component, within `budget.millis()` as far as it can. */
  stop(budget: StopBudget): Promise<void>;
  /**
   * The part of the shutdown's budget kept for this component, out of
   * `totalMillis`: the components stopped before it leave it that much.
   */
  reserveMillis?(totalMillis: number): number;
}

/** Starting again after a failure (the standby), from one component on. */
export interface StartRetry {
  /** The first component started again; components before it stay up. */
  readonly from: string;
  /**
   * Called when a start failed at or after `from`, once the components from
   * `from` on are stopped again: resolves when the start should be tried
   * again, or throws why not (the start then fails with it).
   */
  recover(error: unknown, signal: AbortSignal): Promise<void>;
}

/** Options of {@link runComponents}. */
export interface RunnerOptions {
  readonly log: Logger;
  /**
   * The budget for stopping what had started when a start fails, in ms (a
   * shutdown asked for during the start uses its own).
   */
  readonly stopMillis: number;
  readonly retry?: StartRetry;
}

/** The components of a service, started and stopped as one. */
export interface ComponentRunner {
  /**
   * Starts every component in order. Rejects when one fails (with what it
   * threw, once the started ones are stopped) or when {@link stop} is called
   * first.
   */
  start(): Promise<void>;
  /**
   * Stops the started components, last first, within `totalMillis`
   * (the first call's; later calls wait for the same stop). A start under
   * way is cut short at the next component, or at once where a component's
   * start watches its signal. Rejects with the first component's failure to
   * stop, once every component was stopped.
   */
  stop(totalMillis: number): Promise<void>;
}

/** The reason a start was cut short by a stop. */
export class StartAborted extends Error {
  constructor() {
    super("stopped during start-up");
    this.name = "StartAborted";
  }
}

/** The whole of a shutdown's budget: `totalMillis` from now. */
export function stopBudget(totalMillis: number): StopBudget {
  return shareOf(performance.now() + totalMillis, totalMillis, 0, 0);
}

function shareOf(
  deadline: number,
  totalMillis: number,
  keptAfter: number,
  reserve: number,
): StopBudget {
  return {
    deadline,
    totalMillis,
    millis: () => Math.max(0, reserve, deadline - performance.now() - keptAfter),
  };
}

/** Runs `components` in their order; see {@link ComponentRunner}. */
export function runComponents(
  components: readonly Component[],
  options: RunnerOptions,
): ComponentRunner {
  const { log, retry } = options;
  const names = new Set<string>();
  for (const { name } of components) {
    if (names.has(name)) throw new Error(`two components named ${name}`);
    names.add(name);
  }
  const retryFrom = retry === undefined ? -1 : components.findIndex((c) => c.name === retry.from);
  if (retry !== undefined && retryFrom < 0) throw new Error(`no component named ${retry.from}`);

  /** Started and not yet stopped, in start order. */
  const started: Component[] = [];
  /** Started components told that the shutdown began. */
  const told = new Set<Component>();
  const abort = new AbortController();
  /** The shutdown's budget, once one was asked for. */
  let shutdown: StopBudget | undefined;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  const reserveOf = (component: Component, budget: StopBudget): number =>
    component.reserveMillis?.(budget.totalMillis) ?? 0;
  /** The share of `started[index]`: what the components stopped after it keep is left to them. */
  const shareAt = (index: number, budget: StopBudget): StopBudget => {
    let keptAfter = 0;
    for (let i = 0; i < index; i++) keptAfter += reserveOf(started[i] as Component, budget);
    const component = started[index] as Component;
    return shareOf(budget.deadline, budget.totalMillis, keptAfter, reserveOf(component, budget));
  };
  /** Tells the started components from `started[from]` on that their stop begins, last first. */
  const tell = (budget: StopBudget, from = 0): void => {
    for (let i = started.length - 1; i >= from; i--) {
      const component = started[i] as Component;
      if (told.has(component)) continue;
      told.add(component);
      try {
        component.beginStop?.(shareAt(i, budget));
      } catch (error) {
        log.error({ component: component.name, err: error }, "component failed to begin its stop");
      }
    }
  };
  /** Stops the started components from `started[from]` on, last first; throws the first failure. */
  const stopFrom = async (from: number, budget: StopBudget): Promise<void> => {
    tell(budget, from);
    let failure: { error: unknown } | undefined;
    while (started.length > from) {
      const index = started.length - 1;
      const component = started[index] as Component;
      const share = shareAt(index, budget);
      const allowed = share.millis();
      const began = performance.now();
      try {
        await component.stop(share);
      } catch (error) {
        log.error({ component: component.name, err: error }, "component failed to stop");
        failure ??= { error };
      }
      started.pop();
      told.delete(component);
      const took = performance.now() - began;
      if (took > allowed) {
        log.warn(
          { component: component.name, tookMillis: Math.round(took), shareMillis: allowed },
          "component stop took longer than its share",
        );
      }
      log.debug({ component: component.name }, "component stopped");
    }
    if (failure) throw failure.error;
  };
  /** After a failed start: stops what started, keeping the start's error. */
  const undo = async (from: number): Promise<void> => {
    try {
      await stopFrom(from, shutdown ?? stopBudget(options.stopMillis));
    } catch {
      // Logged by stopFrom; the start's own error is the one reported.
    }
  };

  const startAll = async (): Promise<void> => {
    let next = 0;
    while (next < components.length) {
      if (abort.signal.aborted) {
        await undo(0);
        throw new StartAborted();
      }
      const component = components[next] as Component;
      try {
        await component.start(abort.signal);
      } catch (error) {
        if (retry === undefined || abort.signal.aborted || next < retryFrom) {
          await undo(0);
          throw abort.signal.aborted ? new StartAborted() : error;
        }
        log.debug({ component: component.name, err: error }, "component failed to start");
        await undo(retryFrom);
        if (abort.signal.aborted) {
          await undo(0);
          throw new StartAborted();
        }
        try {
          await retry.recover(error, abort.signal);
        } catch (reason) {
          await undo(0);
          throw abort.signal.aborted ? new StartAborted() : reason;
        }
        next = retryFrom;
        continue;
      }
      started.push(component);
      log.debug({ component: component.name }, "component started");
      next++;
    }
  };

  return {
    start() {
      starting ??= startAll();
      return starting;
    },
    stop(totalMillis) {
      stopping ??= (async () => {
        const budget = stopBudget(totalMillis);
        shutdown = budget;
        abort.abort(new StartAborted());
        tell(budget);
        // A start under way stops what it started itself, within this budget.
        await starting?.catch(() => {});
        await stopFrom(0, budget);
      })();
      return stopping;
    },
  };
}

/** A component that makes something the components after it use. */
export interface Part<T> extends Component {
  /** What its start made; throws before it started and once it stopped. */
  readonly value: T;
}

/** How a {@link Part} starts and stops. */
export interface PartSpec<T> {
  readonly name: string;
  /** Makes the value; on a failure it leaves nothing open behind it. */
  start(signal: AbortSignal): Promise<T>;
  beginStop?(value: T, budget: StopBudget): void;
  stop?(value: T, budget: StopBudget): Promise<void>;
  reserveMillis?(totalMillis: number): number;
}

/** A component from its spec; see {@link Part}. */
export function part<T>(spec: PartSpec<T>): Part<T> {
  let made: { readonly value: T } | undefined;
  const value = (): T => {
    if (made === undefined) throw new Error(`${spec.name} is not started`);
    return made.value;
  };
  return {
    name: spec.name,
    async start(signal) {
      made = { value: await spec.start(signal) };
    },
    ...(spec.beginStop && {
      beginStop: (budget: StopBudget) => spec.beginStop?.(value(), budget),
    }),
    async stop(budget) {
      if (made === undefined) return;
      try {
        await spec.stop?.(made.value, budget);
      } finally {
        made = undefined;
      }
    },
    ...(spec.reserveMillis && { reserveMillis: spec.reserveMillis }),
    get value() {
      return value();
    },
  };
}
