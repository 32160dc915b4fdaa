// backends: sqlite only: the Helm chart, rendered; its one start runs the chart's SQLite settings
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  CHART,
  helmBinaries,
  type Manifest,
  one,
  render,
  runHelm,
  typeCheckManifests,
} from "../support/helm.js";
import { spawnService } from "../support/process.js";

/** Helm 3 and Helm 4, the official binaries (`.ci/helm` says where they come from). */
const HELMS = helmBinaries();

/** One replica on its SQLite file: the chart's defaults. */
const SQLITE = {};
/** Three replicas on PostgreSQL and Redis, keys as values, scraped through a ServiceMonitor. */
const REPLICAS = {
  replicaCount: 3,
  database: { url: "postgres://metrics:s3cret@db:5432/metrics" },
  redis: { url: "redis://cache:6379" },
  apiKeys: { byService: { "auth-server": "key-auth", registry: "key-registry" }, admin: "key-adm" },
  secretEnv: { OTEL_EXPORTER_OTLP_HEADERS: "api-key=vendor" },
  config: { LOG_LEVEL: "debug", METRICS_RATE_LIMIT: 5000 },
  serviceMonitor: { enabled: true, labels: { release: "kube-prometheus-stack" } },
};
/** Everything secret from Secrets the operator manages. */
const EXISTING_SECRETS = {
  replicaCount: 2,
  database: { existingSecret: "metrics-db", existingSecretKey: "url" },
  redis: { existingSecret: "metrics-redis" },
  apiKeys: { existingSecret: "metrics-keys" },
};
const EPHEMERAL = { persistence: { enabled: false } };
const EXISTING_CLAIM = { persistence: { existingClaim: "metrics-data" } };
const CASES = { SQLITE, REPLICAS, EXISTING_SECRETS, EPHEMERAL, EXISTING_CLAIM };

/** The one container of the Deployment's pods. */
function container(deployment: Manifest) {
  const containers = deployment.spec.template.spec.containers;
  expect(containers).toHaveLength(1);
  return containers[0];
}

/** The environment the ConfigMap and the chart's Secret give the container, decoded. */
function environment(manifests: Manifest[]): Record<string, string> {
  const env: Record<string, string> = { ...one(manifests, "ConfigMap").data };
  for (const secret of manifests.filter((m) => m.kind === "Secret")) {
    for (const [name, value] of Object.entries<string>(secret.data)) {
      env[name] = Buffer.from(value, "base64").toString("utf8");
    }
  }
  return env;
}

/**
 * What every release must hold together: the Deployment's selector and the
 * Service's select its pods; the Service's two ports reach named container
 * ports 8890 and 9465; the probes ask /readyz and /healthz on 8890; every
 * ConfigMap, Secret, claim and volume referenced is rendered (or is the
 * operator's); the pod runs as a non-root uid on a read-only root filesystem
 * with /tmp writable.
 */
function checkWiring(manifests: Manifest[]): void {
  const deployment = one(manifests, "Deployment");
  const service = one(manifests, "Service");
  const podLabels = deployment.spec.template.metadata.labels;
  expect(podLabels).toMatchObject(deployment.spec.selector.matchLabels);
  expect(podLabels).toMatchObject(service.spec.selector);

  const c = container(deployment);
  const ports = Object.fromEntries(
    c.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]),
  );
  expect(ports).toEqual({ ingest: 8890, metrics: 9465 });
  expect(
    service.spec.ports.map((p: { name: string; port: number; targetPort: string }) => [
      p.name,
      p.port,
      ports[p.targetPort],
    ]),
  ).toEqual([
    ["ingest", 8890, 8890],
    ["metrics", 9465, 9465],
  ]);
  expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "ingest" });
  expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "ingest" });

  const rendered = (kind: string) =>
    manifests.filter((m) => m.kind === kind).map((m) => m.metadata.name);
  for (const from of c.envFrom) {
    if (from.configMapRef) expect(rendered("ConfigMap")).toContain(from.configMapRef.name);
  }
  const pod = deployment.spec.template.spec;
  const volumes = new Map(pod.volumes.map((v: { name: string }) => [v.name, v]));
  for (const mount of c.volumeMounts) expect(volumes.has(mount.name)).toBe(true);
  for (const volume of pod.volumes) {
    const claim = volume.persistentVolumeClaim?.claimName;
    if (claim && claim !== "metrics-data")
      expect(rendered("PersistentVolumeClaim")).toContain(claim);
  }

  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
  expect(c.securityContext).toMatchObject({
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
  });
  expect(c.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
  expect(volumes.get("tmp")).toEqual({ name: "tmp", emptyDir: {} });
  expect(pod.automountServiceAccountToken).toBe(false);
  // Past METRICS_SHUTDOWN_TIMEOUT_MS (10 s) and its 2 s overrun guard.
  expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(12);
}

describe.each(HELMS)("the Helm chart, with Helm $version", (helm) => {
  it("should pass helm lint --strict with each set of values", async () => {
    for (const [name, values] of Object.entries(CASES)) {
      const lint = await runHelm(helm, "lint", values);
      expect(lint.code, `${name}: ${lint.stdout}${lint.stderr}`).toBe(0);
      expect(lint.stdout).toContain("0 chart(s) failed");
    }
  });

  it("should run one replica on SQLite on a PersistentVolumeClaim by default", async () => {
    const manifests = await render(helm, SQLITE);
    expect(manifests.map((m) => m.kind).sort()).toEqual([
      "ConfigMap",
      "Deployment",
      "PersistentVolumeClaim",
      "Service",
    ]);
    checkWiring(manifests);
    const deployment = one(manifests, "Deployment");
    expect(deployment.spec.replicas).toBe(1);
    // Never two processes on one SQLite file, not even during an upgrade.
    expect(deployment.spec.strategy).toEqual({ type: "Recreate" });
    const env = environment(manifests);
    expect(env).toEqual({
      SQLITE_DB_PATH: "/var/lib/mcp-metrics/metrics.db",
      TMPDIR: "/tmp",
      LOG_LEVEL: "info",
    });
    const c = container(deployment);
    expect(c.volumeMounts).toContainEqual({
      name: "data",
      mountPath: dirname(env.SQLITE_DB_PATH as string),
    });
    expect(c.image).toBe(`mcp-metrics-service:${packageVersion()}`);
    expect(c.resources).toEqual({
      requests: { cpu: "250m", memory: "256Mi" },
      limits: { memory: "512Mi" },
    });
    const claim = one(manifests, "PersistentVolumeClaim");
    expect(claim.spec).toEqual({
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: "10Gi" } },
    });
    expect(claim.metadata.annotations).toEqual({ "helm.sh/resource-policy": "keep" });
  });

  it("should run replicas on PostgreSQL and Redis, keys in a Secret, scraped by a ServiceMonitor", async () => {
    const manifests = await render(helm, REPLICAS);
    expect(manifests.map((m) => m.kind).sort()).toEqual([
      "ConfigMap",
      "Deployment",
      "Secret",
      "Service",
      "ServiceMonitor",
    ]);
    checkWiring(manifests);
    const deployment = one(manifests, "Deployment");
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.strategy.type).toBe("RollingUpdate");
    expect(container(deployment).volumeMounts).toEqual([{ name: "tmp", mountPath: "/tmp" }]);
    expect(environment(manifests)).toEqual({
      TMPDIR: "/tmp",
      LOG_LEVEL: "debug",
      METRICS_RATE_LIMIT: "5000",
      METRICS_API_KEY_AUTH_SERVER: "key-auth",
      METRICS_API_KEY_REGISTRY: "key-registry",
      METRICS_ADMIN_API_KEY: "key-adm",
      DATABASE_URL: "postgres://metrics:s3cret@db:5432/metrics",
      REDIS_URL: "redis://cache:6379",
      OTEL_EXPORTER_OTLP_HEADERS: "api-key=vendor",
    });
    const secret = one(manifests, "Secret");
    expect(container(deployment).envFrom).toContainEqual({
      secretRef: { name: secret.metadata.name },
    });
    // Nothing secret in the ConfigMap.
    expect(JSON.stringify(one(manifests, "ConfigMap"))).not.toMatch(/s3cret|key-auth|key-adm/);

    const monitor = one(manifests, "ServiceMonitor");
    const service = one(manifests, "Service");
    expect(monitor.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(monitor.metadata.labels).toMatchObject({ release: "kube-prometheus-stack" });
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.namespaceSelector).toEqual({ matchNames: ["observability"] });
    expect(monitor.spec.endpoints).toEqual([
      { port: "metrics", path: "/metrics", interval: "30s", scrapeTimeout: "10s" },
    ]);
    expect(service.spec.ports.map((p: { name: string }) => p.name)).toContain("metrics");
  });

  it("should take DATABASE_URL, REDIS_URL and the keys from the operator's Secrets", async () => {
    const manifests = await render(helm, EXISTING_SECRETS);
    expect(manifests.map((m) => m.kind).sort()).toEqual(["ConfigMap", "Deployment", "Service"]);
    checkWiring(manifests);
    const c = container(one(manifests, "Deployment"));
    expect(c.env).toEqual([
      { name: "DATABASE_URL", valueFrom: { secretKeyRef: { name: "metrics-db", key: "url" } } },
      {
        name: "REDIS_URL",
        valueFrom: { secretKeyRef: { name: "metrics-redis", key: "REDIS_URL" } },
      },
    ]);
    expect(c.envFrom).toContainEqual({ secretRef: { name: "metrics-keys" } });
  });

  it("should keep SQLite on an emptyDir without persistence, or on the operator's claim", async () => {
    const ephemeral = await render(helm, EPHEMERAL);
    checkWiring(ephemeral);
    expect(ephemeral.map((m) => m.kind)).not.toContain("PersistentVolumeClaim");
    const pod = one(ephemeral, "Deployment").spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: "data", emptyDir: {} });

    const claimed = await render(helm, EXISTING_CLAIM);
    checkWiring(claimed);
    expect(claimed.map((m) => m.kind)).not.toContain("PersistentVolumeClaim");
    expect(one(claimed, "Deployment").spec.template.spec.volumes).toContainEqual({
      name: "data",
      persistentVolumeClaim: { claimName: "metrics-data" },
    });
  });

  it("should refuse several replicas on SQLite, saying what to set", async () => {
    const result = await runHelm(helm, "template", { replicaCount: 2 });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      "replicaCount is 2, but replicas must share one database: set database.url (DATABASE_URL, postgres://...) or database.existingSecret. On SQLite keep replicaCount at 1.",
    );
  });

  it("should refuse values that cannot work, naming them", async () => {
    const refusals: [object, string][] = [
      // values.schema.json: a misspelt key is an error, not ignored.
      [{ replicas: 3 }, "replicas"],
      [{ database: { url: "mysql://db/metrics" } }, "postgres"],
      [{ apiKeys: { byService: { Auth_Server: "k" } } }, "Auth_Server"],
      // The templates' own checks.
      [{ config: { METRICS_SERVICE_PORT: "9000" } }, "config.METRICS_SERVICE_PORT"],
      [{ config: { DATABASE_URL: "postgres://db/m" } }, "config.DATABASE_URL is a secret"],
      [
        { apiKeys: { existingSecret: "keys", admin: "k" } },
        "leave apiKeys.byService and apiKeys.admin empty",
      ],
    ];
    for (const [values, message] of refusals) {
      const result = await runHelm(helm, "template", values);
      expect(result.code, JSON.stringify(values)).not.toBe(0);
      expect(result.stderr).toContain(message);
    }
  });
});

describe("the Helm chart's rendered objects", () => {
  const helm = HELMS.at(-1);

  it("should type-check against the Kubernetes API types (kubernetes-types 1.30)", async () => {
    if (helm === undefined) throw new Error("no Helm binary");
    const manifests = (await Promise.all(Object.values(CASES).map((v) => render(helm, v)))).flat();
    expect(await typeCheckManifests(manifests)).toBe("");
  });

  it("should use package.json's version as the chart's appVersion", () => {
    const chart = parse(readFileSync(join(CHART, "Chart.yaml"), "utf8")) as { appVersion: string };
    expect(chart.appVersion).toBe(packageVersion());
  });

  it("should answer the chart's probes when run with the environment the chart gives it", async () => {
    if (helm === undefined) throw new Error("no Helm binary");
    const env = environment(await render(helm, SQLITE));
    const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-chart-env-"));
    const svc = await spawnService({
      ...env,
      // The volume and the emptyDir, here in a temporary directory.
      SQLITE_DB_PATH: join(dir, "data", "metrics.db"),
      TMPDIR: dir,
      METRICS_API_KEY_CHART: "chart-test-key",
    });
    try {
      for (const path of ["/readyz", "/healthz"]) {
        const response = await fetch(`${svc.url}${path}`);
        expect(response.status, path).toBe(200);
      }
    } finally {
      svc.child.kill("SIGTERM");
      await svc.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The service's version, from its one place. */
function packageVersion(): string {
  const root = join(import.meta.dirname, "..", "..");
  return (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string })
    .version;
}
