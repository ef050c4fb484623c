// Validates rendered Kubernetes manifests offline against the Kubernetes
// API schemas, in two passes per object:
//
//  1. schema: the JSON-schema validators that the kubernetes-models package
//     generates from Kubernetes' OpenAPI spec (and, for the Prometheus
//     Operator's ServiceMonitor, @kubernetes-models/prometheus-operator from
//     the CRD's openAPIV3Schema), run with ajv: required fields, types,
//     enums, formats and patterns.
//  2. strict: the same packages' TypeScript declarations, checked by the
//     TypeScript compiler with every object as a typed literal, so a field
//     the API does not know (a typo such as `readinesProbe`) is an error, as
//     with `kubeconform -strict` or the API server's strict field validation.
//
// An object whose apiVersion/kind has no schema fails: nothing is skipped.
//
//   node validate.mjs FILE.yaml...     validate every document in the files
//   node validate.mjs --self-test      show that broken objects are rejected
//
// Exit status: 0 when every object passes, 1 otherwise.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));

// API groups served by CRDs, mapped to the npm package with their models.
const crdPackages = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

// Returns {specifier, typeName} of the model for an apiVersion and kind.
function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" ||
      !/^[A-Za-z0-9]+$/.test(kind)) {
    throw new Error("apiVersion and kind must be set");
  }
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  const pkg = crdPackages[group] ??
      (group === "" || !group.includes(".") || group.endsWith(".k8s.io")
           ? "kubernetes-models" : null);
  if (pkg === null) throw new Error(`no schema for API group ${group}`);
  const groupDir = group === "" ? "" : `${group}/`;
  return { specifier: `${pkg}/${groupDir}${version}/${kind}`, typeName: `I${kind}` };
}

async function loadModel(specifier, kind) {
  let mod;
  try {
    mod = await import(specifier);
  } catch (e) {
    if (e.code === "ERR_MODULE_NOT_FOUND" || e.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") {
      throw new Error(`no schema for this apiVersion/kind (${specifier})`);
    }
    throw e;
  }
  if (typeof mod[kind] !== "function") throw new Error(`no model ${kind} in ${specifier}`);
  return mod[kind];
}

function describe(doc, source) {
  const name = doc?.metadata?.name ?? "(no name)";
  return `${source}: ${doc?.apiVersion ?? "?"} ${doc?.kind ?? "?"} ${name}`;
}

// Pass 1. Returns a list of error strings for one object.
async function schemaErrors(doc) {
  const { specifier } = modelFor(doc.apiVersion, doc.kind);
  const Model = await loadModel(specifier, doc.kind);
  try {
    new Model(structuredClone(doc)).validate();
    return [];
  } catch (e) {
    return [e.message];
  }
}

// Pass 2 over all objects at once (one compiler run). Returns a Map from the
// object's index to its error strings.
function strictErrors(docs) {
  const lines = [];
  const spans = [];  // [firstLine, lastLine] per doc, 0-based, in the TS file
  const imports = new Map();
  docs.forEach((doc) => {
    const { specifier, typeName } = modelFor(doc.apiVersion, doc.kind);
    const alias = `T${imports.size}`;
    if (!imports.has(specifier)) imports.set(specifier, { alias, typeName });
  });
  for (const [specifier, { alias, typeName }] of imports) {
    lines.push(`import type { ${typeName} as ${alias} } from ${JSON.stringify(specifier)};`);
  }
  docs.forEach((doc, i) => {
    const { specifier } = modelFor(doc.apiVersion, doc.kind);
    const first = lines.length;
    const body = JSON.stringify(doc, null, 2).split("\n");
    body[0] = `export const object${i}: ${imports.get(specifier).alias} = ${body[0]}`;
    body[body.length - 1] += ";";
    lines.push(...body);
    spans.push([first, lines.length - 1]);
  });

  // Inside node_modules: module resolution finds the packages from there,
  // and git ignores it should a run be interrupted.
  const dir = fs.mkdtempSync(path.join(here, "node_modules", ".strata-strict-"));
  const file = path.join(dir, "objects.ts");
  fs.writeFileSync(file, lines.join("\n") + "\n");
  const errors = new Map();
  try {
    const program = ts.createProgram([file], {
      noEmit: true,
      strict: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: [],
    });
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
      let index = -1;
      let where = "";
      if (d.file && d.file.fileName === file.replaceAll(path.sep, "/") && d.start !== undefined) {
        const { line } = d.file.getLineAndCharacterOfPosition(d.start);
        index = spans.findIndex(([a, b]) => line >= a && line <= b);
        where = ` (at: ${lines[line].trim()})`;
      }
      if (!errors.has(index)) errors.set(index, []);
      errors.get(index).push(text + where);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return errors;
}

// Validates [{doc, source}] and prints one line per object. Returns the
// number of failed objects.
async function validateAll(items, { quiet = false } = {}) {
  let failed = 0;
  const checkable = [];  // objects whose apiVersion/kind has a model
  for (const item of items) {
    item.errors = [];
    try {
      item.errors.push(...await schemaErrors(item.doc));
      checkable.push(item);
    } catch (e) {
      item.errors.push(e.message);
    }
  }
  const strict = checkable.length > 0 ? strictErrors(checkable.map((i) => i.doc)) : new Map();
  for (const [index, errs] of strict) {
    if (index < 0) {
      // Not attributable to one object: a problem with the check itself.
      throw new Error(`strict check failed: ${errs.join("; ")}`);
    }
    checkable[index].errors.push(...errs.map((e) => `strict: ${e}`));
  }
  for (const item of items) {
    if (item.errors.length > 0) {
      failed++;
      if (!quiet) {
        console.log(`FAIL ${describe(item.doc, item.source)}`);
        for (const e of item.errors) console.log(`     ${e}`);
      }
    } else if (!quiet) {
      console.log(`ok   ${describe(item.doc, item.source)}`);
    }
  }
  return failed;
}

function readItems(files) {
  const items = [];
  for (const f of files) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(f, "utf8"));
    for (const d of docs) {
      if (d.errors.length > 0) throw new Error(`${f}: YAML: ${d.errors[0].message}`);
      const doc = d.toJS();
      if (doc === null || doc === undefined) continue;
      items.push({ doc, source: path.basename(f) });
    }
  }
  return items;
}

// Known-bad objects that must each be rejected, and one that must pass: a
// check that the validator is not a no-op.
async function selfTest() {
  const pod = (spec) => ({ apiVersion: "v1", kind: "Pod", metadata: { name: "t" }, spec });
  const c = { name: "c", image: "i" };
  const cases = [
    ["valid pod", true, pod({ containers: [c] })],
    ["missing required field", false, pod({ containers: [{ image: "i" }] })],
    ["wrong type", false, pod({ containers: [{ ...c, ports: [{ containerPort: "x" }] }] })],
    ["value outside an enum", false,
     { apiVersion: "apps/v1", kind: "StatefulSet", metadata: { name: "t" },
       spec: { serviceName: "s", podManagementPolicy: "Sometimes",
               selector: { matchLabels: { a: "b" } },
               template: { metadata: { labels: { a: "b" } }, spec: { containers: [c] } } } }],
    ["unknown field (typo)", false, pod({ containers: [{ ...c, readinesProbe: {} }] })],
    ["unknown kind", false, { apiVersion: "apps/v1", kind: "NoSuchKind", metadata: { name: "t" } }],
    ["unknown API group", false, { apiVersion: "example.com/v1", kind: "Thing", metadata: { name: "t" } }],
    ["bad CRD field value", false,
     { apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor", metadata: { name: "t" },
       spec: { selector: {}, endpoints: [{ port: "metrics", interval: "often" }] } }],
  ];
  let wrong = 0;
  for (const [name, shouldPass, doc] of cases) {
    const failed = await validateAll([{ doc, source: "self-test" }], { quiet: true });
    const ok = (failed === 0) === shouldPass;
    if (!ok) wrong++;
    console.log(`${ok ? "ok  " : "FAIL"} self-test: ${name} ${shouldPass ? "accepted" : "rejected"}` +
                (ok ? "" : " -- validator got it wrong"));
  }
  return wrong;
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length === 0) {
    console.error("usage: node validate.mjs FILE.yaml... | --self-test");
    return 2;
  }
  if (args[0] === "--self-test") return (await selfTest()) === 0 ? 0 : 1;
  const items = readItems(args);
  if (items.length === 0) {
    console.error("validate.mjs: no objects in the input");
    return 1;
  }
  const failed = await validateAll(items);
  console.log(`manifests: ${items.length - failed} objects valid, ${failed} invalid`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
