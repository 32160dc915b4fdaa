/**
 * Why a write failed: `unavailable` is worth retrying (busy, full, read-only,
 * I/O, the database server unreachable), `closed` means the store is shutting
 * down, `internal` is anything else.
 */
export type StorageFailure = "unavailable" | "closed" | "internal";

/**
 * A failed storage operation; `cause` keeps the driver's error for the log.
 * Each backend turns its driver's errors into these where it calls the driver
 * (`sqlite/errors.ts`, `postgres/errors.ts`), so nothing above the backends
 * reads a driver's codes.
 */
export class StorageError extends Error {
  override name = "StorageError";
  readonly failure: StorageFailure;
  /** True when another connection held the lock: worth retrying at once, on a timer. */
  readonly busy: boolean;
  /** The driver's code (SQLite's result code, a SQLSTATE, a socket code), empty when there is none. */
  readonly code: string;
  /**
   * The fault's short name as readiness reports it: `full`, `read-only`,
   * `unreachable` (a database server that does not answer), or the code
   * itself (`SQLITE_IOERR_WRITE`, a SQLSTATE, …).
   */
  readonly problem: string;
  /**
   * True when the write was under way and its answer never came: it may have
   * committed (a retry with its batch id finds it). False when nothing was written.
   */
  readonly uncertain: boolean;
  constructor(
    failure: StorageFailure,
    message: string,
    options?: {
      cause?: unknown;
      busy?: boolean;
      code?: string;
      problem?: string;
      uncertain?: boolean;
    },
  ) {
    super(message, options);
    this.failure = failure;
    this.busy = options?.busy ?? false;
    this.code = options?.code ?? "";
    this.problem = options?.problem ?? (this.code || failure);
    this.uncertain = options?.uncertain ?? false;
  }

  /**
   * `cause` as a storage error: itself when it is one (a backend classified
   * it), else an internal failure (a bug, not a fault of the storage).
   */
  static from(cause: unknown): StorageError {
    if (cause instanceof StorageError) return cause;
    return new StorageError("internal", `storage failure: ${String(cause)}`, { cause });
  }
}

/**
 * `target` with every method's failures, thrown or rejected, turned into
 * storage errors by `classify`: how a backend wraps the stores it hands out,
 * so that their driver errors never leave it unclassified.
 */
export function classifying<T extends object>(
  target: T,
  classify: (cause: unknown) => StorageError,
): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value: unknown = Reflect.get(object, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        try {
          const result: unknown = value.apply(object, args);
          return result instanceof Promise
            ? result.catch((cause) => Promise.reject(classify(cause)))
            : result;
        } catch (cause) {
          throw classify(cause);
        }
      };
    },
  });
}
