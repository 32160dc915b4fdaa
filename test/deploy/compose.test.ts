// backends: sqlite only: the compose files and Collector configuration, read as data
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

/**
 * No Docker engine and no OpenTelemetry Collector run on these machines, so
 * the compose files and the Collector's configuration are checked as data:
 * they parse, what they mount exists, what they wire together agrees, and
 * the `otlp` profile stays optional. That a Collector 0.131 accepts the
 * configuration is not proven here.
 */
const DEPLOY = join(import.meta.dirname, "..", "..", "deploy");
const COMPOSE_FILES = ["compose.yml", "compose.replicas.yml"];
const COLLECTOR_IMAGE = /^otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/;

interface Service {
  image?: string;
  build?: unknown;
  profiles?: string[];
  command?: string[];
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  depends_on?: string[] | Record<string, { condition?: string; required?: boolean }>;
}

function compose(file: string): { text: string; services: Record<string, Service> } {
  const text = readFileSync(join(DEPLOY, file), "utf8");
  // `<<: *replica` merge keys, as Compose reads them.
  return {
    text,
    services: (parse(text, { merge: true }) as { services: Record<string, Service> }).services,
  };
}

/** Whether a component id (`type` or `type/name`) that a pipeline names is defined in its section. */
function defined(section: Record<string, unknown> | undefined, id: string): boolean {
  return section !== undefined && Object.hasOwn(section, id);
}

describe.each(COMPOSE_FILES)("deploy/%s", (file) => {
  const { text, services } = compose(file);

  it("should mount only files and directories that exist", () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(":")[0] as string;
        if (source.startsWith("."))
          expect(existsSync(join(DEPLOY, source)), `${name}: ${source}`).toBe(true);
      }
    }
  });

  it("should pin every image it pulls to a version", () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.image === undefined) continue;
      expect(service.image, name).toMatch(/:[0-9v][\w.-]*$/);
      expect(service.image, name).not.toMatch(/:latest$/);
    }
  });

  it("should start the default services without the otlp profile", () => {
    // Compose refuses a service that requires one of an inactive profile.
    for (const [name, service] of Object.entries(services)) {
      if (service.profiles !== undefined) continue;
      const deps = service.depends_on ?? [];
      const entries = Array.isArray(deps)
        ? deps.map((d) => [d, {}] as const)
        : Object.entries(deps);
      for (const [dep, options] of entries) {
        const target = services[dep];
        expect(target, `${name} depends on ${dep}`).toBeDefined();
        if (target?.profiles !== undefined) {
          expect(options, `${name} → ${dep}`).toMatchObject({ required: false });
        }
      }
    }
  });

  it("should run the OpenTelemetry Collector in the otlp profile, on the OTLP ports", () => {
    const collector = services["otel-collector"] as Service;
    expect(collector.profiles).toEqual(["otlp"]);
    expect(collector.image).toMatch(COLLECTOR_IMAGE);
    expect(collector.volumes).toEqual([
      "./otel-collector/config.yaml:/etc/otelcol-contrib/config.yaml:ro",
    ]);
    expect(collector.command).toEqual(["--config=/etc/otelcol-contrib/config.yaml"]);
    expect(collector.ports).toEqual(["4317:4317", "4318:4318", "8889:8889"]);
  });

  it("should pass the OTLP settings to the service and document an endpoint the Collector serves", () => {
    const emitters = Object.entries(services).filter(([, s]) => s.build !== undefined);
    expect(emitters.length).toBeGreaterThan(0);
    for (const [name, service] of emitters) {
      // Compose's interpolation, passed through from the shell (empty: unset).
      const passed = (variable: string) => `\${${variable}:-}`;
      expect(service.environment, name).toMatchObject({
        OTEL_EXPORTER_OTLP_ENDPOINT: passed("OTEL_EXPORTER_OTLP_ENDPOINT"),
        OTEL_EXPORTER_OTLP_PROTOCOL: passed("OTEL_EXPORTER_OTLP_PROTOCOL"),
      });
    }
    const documented =
      /OTEL_EXPORTER_OTLP_ENDPOINT=http:\/\/([\w-]+):(\d+) docker compose -f deploy\/(\S+) --profile otlp up/.exec(
        text,
      );
    expect(documented?.slice(1)).toEqual(["otel-collector", "4318", file]);
  });
});

describe("deploy/otel-collector/config.yaml", () => {
  interface CollectorConfig {
    receivers: Record<string, { protocols: Record<string, { endpoint: string }> }>;
    processors?: Record<string, unknown>;
    exporters: Record<string, { endpoint?: string }>;
    extensions?: Record<string, unknown>;
    service: {
      extensions?: string[];
      pipelines: Record<
        string,
        { receivers: string[]; processors?: string[]; exporters: string[] }
      >;
    };
  }
  const config = parse(
    readFileSync(join(DEPLOY, "otel-collector", "config.yaml"), "utf8"),
  ) as CollectorConfig;

  it("should receive OTLP over gRPC on 4317 and HTTP on 4318, on every interface", () => {
    expect(config.receivers.otlp?.protocols).toEqual({
      grpc: { endpoint: "0.0.0.0:4317" },
      http: { endpoint: "0.0.0.0:4318" },
    });
  });

  it("should define every component its pipelines and extensions name", () => {
    expect(Object.keys(config.service.pipelines)).toEqual(["metrics"]);
    for (const pipeline of Object.values(config.service.pipelines)) {
      for (const id of pipeline.receivers) expect(defined(config.receivers, id), id).toBe(true);
      for (const id of pipeline.processors ?? [])
        expect(defined(config.processors, id), id).toBe(true);
      for (const id of pipeline.exporters) expect(defined(config.exporters, id), id).toBe(true);
    }
    for (const id of config.service.extensions ?? [])
      expect(defined(config.extensions, id), id).toBe(true);
  });

  it("should serve what it received on the port the compose files publish", () => {
    expect(config.exporters.prometheus?.endpoint).toBe("0.0.0.0:8889");
    for (const file of COMPOSE_FILES) {
      expect(compose(file).services["otel-collector"]?.ports).toContain("8889:8889");
    }
  });
});
