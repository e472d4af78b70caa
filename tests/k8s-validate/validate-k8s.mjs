#!/usr/bin/env node
// Offline validation of Kubernetes manifests (kubectl cannot validate without a cluster).
//
//   node validate-k8s.mjs PATH...        (files or directories; directories are searched
//                                          recursively for *.yaml / *.yml)
//
// Every YAML document of every file is checked in two passes:
//   1. schema: kubernetes-models' validators (generated from the Kubernetes OpenAPI):
//      types, required fields, enum values, formats. They accept unknown fields.
//   2. unknown fields: the document becomes `const d: Kind = {...}` typed with
//      kubernetes-types and `tsc --noEmit --strict` rejects any property the type
//      does not have (TypeScript's excess-property check), and wrong types.
// Files used as strategic-merge patches by a kustomization are partial objects: they get
// pass 2 only, against a deep-partial type. kustomization.yaml files are checked for
// their referenced files existing; if `kubectl` is on PATH, each kustomization (not the
// Components) is also rendered with `kubectl kustomize` (offline) and the output is
// validated with both passes. Helm values files (*values.yaml, no apiVersion/kind) are
// reported as skipped, never as passed.
//
// Output: one line per check, then `N passed, M failed`; exit status 1 if M > 0.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const typesDir = path.join(here, "node_modules", "kubernetes-types");
const tscJs = require.resolve("typescript/bin/tsc");

let passed = 0;
let failed = 0;
let skipped = 0;
const pass = (what) => { passed++; console.log(`ok    ${what}`); };
const fail = (what, why) => {
	failed++;
	console.log(`FAIL  ${what}`);
	for (const line of [].concat(why)) {
		console.log(`        ${line}`);
	}
};
const skip = (what, why) => { skipped++; console.log(`skip  ${what}: ${why}`); };

function listYaml(p) {
	const st = fs.statSync(p);
	if (st.isFile()) {
		return [p];
	}
	const out = [];
	for (const e of fs.readdirSync(p, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
		const full = path.join(p, e.name);
		if (e.isDirectory()) {
			if (e.name !== "node_modules" && !e.name.startsWith(".")) {
				out.push(...listYaml(full));
			}
		} else if (/\.ya?ml$/.test(e.name)) {
			out.push(full);
		}
	}
	return out;
}

const isKustomization = (f) => /^kustomization\.ya?ml$/.test(path.basename(f));

// group/version -> module paths
function modelModule(apiVersion) {
	const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
	return group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
}
function typesModule(apiVersion) {
	const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
	return path.join(typesDir, group.split(".")[0], version);
}

// Pass 1. Returns a list of error strings (empty = valid).
async function schemaCheck(doc) {
	let mod;
	try {
		mod = await import(modelModule(doc.apiVersion));
	} catch {
		return [`no schema for apiVersion ${doc.apiVersion}`];
	}
	const Cls = mod[doc.kind];
	if (typeof Cls !== "function") {
		return [`no schema for kind ${doc.kind} in ${doc.apiVersion}`];
	}
	try {
		new Cls(doc).validate();
		return [];
	} catch (e) {
		const errs = e && Array.isArray(e.errors) ? e.errors : null;
		if (errs && errs.length) {
			return errs.map((x) => `schema: ${x.instancePath || "/"} ${x.message}${x.params && x.params.allowedValues ? ` (${x.params.allowedValues.join(", ")})` : ""}`);
		}
		return [`schema: ${e && e.message ? e.message.split("\n").join(" ") : String(e)}`];
	}
}

// Pass 2 is run once for all documents; entries are queued here.
const tsQueue = [];
function queueTypeCheck(label, doc, partial) {
	const tmod = typesModule(doc.apiVersion);
	if (!fs.existsSync(`${tmod}.d.ts`)) {
		fail(`${label} (types)`, `no TypeScript type for apiVersion ${doc.apiVersion}`);
		return;
	}
	tsQueue.push({ label, doc, partial, tmod });
}

function runTypeChecks() {
	if (tsQueue.length === 0) {
		return;
	}
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-validate-"));
	try {
		const files = [];
		tsQueue.forEach((q, i) => {
			const name = `doc${i}.ts`;
			const typeRef = q.partial ? `DeepPartial<T.${q.doc.kind}>` : `T.${q.doc.kind}`;
			const src = [
				`// ${q.label}`,
				`import type * as T from ${JSON.stringify(q.tmod)};`,
				q.partial
					? "type DeepPartial<X> = X extends (infer U)[] ? DeepPartial<U>[] : X extends object ? { [K in keyof X]?: DeepPartial<X[K]> } : X;"
					: "",
				`export const d: ${typeRef} = ${JSON.stringify(q.doc, null, 2)};`,
				"",
			].join("\n");
			fs.writeFileSync(path.join(dir, name), src);
			files.push(name);
		});
		fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({
			compilerOptions: {
				noEmit: true, strict: true, skipLibCheck: true, target: "es2020",
				module: "commonjs", moduleResolution: "node", types: [],
			},
			files,
		}));
		const r = spawnSync(process.execPath, [tscJs, "-p", "tsconfig.json", "--pretty", "false"],
			{ cwd: dir, encoding: "utf8" });
		const out = `${r.stdout || ""}${r.stderr || ""}`;
		const perFile = new Map();
		const unmatched = [];
		for (const line of out.split("\n")) {
			const m = /^doc(\d+)\.ts\((\d+),\d+\): (.*)$/.exec(line);
			if (m) {
				const i = Number(m[1]);
				const srcLine = fs.readFileSync(path.join(dir, `doc${i}.ts`), "utf8").split("\n")[Number(m[2]) - 1] || "";
				if (!perFile.has(i)) {
					perFile.set(i, []);
				}
				perFile.get(i).push(`types: ${m[3]}  [at: ${srcLine.trim()}]`);
			} else if (line.trim() !== "") {
				unmatched.push(line);
			}
		}
		if (r.status !== 0 && perFile.size === 0) {
			fail("tsc", unmatched.length ? unmatched : [`tsc exited ${r.status}`]);
		}
		tsQueue.forEach((q, i) => {
			if (perFile.has(i)) {
				fail(`${q.label} (types${q.partial ? ", patch" : ""})`, perFile.get(i));
			} else if (r.status === 0 || perFile.size > 0) {
				pass(`${q.label} (types${q.partial ? ", patch" : ""})`);
			}
		});
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

function loadDocs(file, text) {
	try {
		return { docs: yaml.loadAll(text) };
	} catch (e) {
		return { error: `yaml: ${e.message.split("\n")[0]}` };
	}
}

function docLabel(file, i, doc) {
	const name = doc && doc.metadata && doc.metadata.name ? doc.metadata.name : "?";
	return `${file}#${i + 1} ${doc && doc.kind ? doc.kind : "?"}/${name}`;
}

// Kustomization: referenced files must exist; collect patch files.
function checkKustomization(file, k, patchFiles, renderDirs) {
	const dir = path.dirname(file);
	const errs = [];
	const refs = [];
	for (const r of [].concat(k.resources || [], k.components || [], k.bases || [])) {
		refs.push(r);
	}
	for (const p of [].concat(k.patches || [], k.patchesJson6902 || [])) {
		if (p && p.path) {
			refs.push(p.path);
			if (!Array.isArray(yaml.load(fs.existsSync(path.join(dir, p.path)) ? fs.readFileSync(path.join(dir, p.path), "utf8") : "null"))) {
				patchFiles.add(path.resolve(dir, p.path));
			}
		}
	}
	for (const p of [].concat(k.patchesStrategicMerge || [])) {
		if (typeof p === "string" && !p.includes("\n")) {
			refs.push(p);
			patchFiles.add(path.resolve(dir, p));
		}
	}
	for (const r of refs) {
		if (typeof r !== "string") {
			errs.push(`bad reference ${JSON.stringify(r)}`);
		} else if (/^[a-z]+:\/\//i.test(r) || r.startsWith("github.com/")) {
			errs.push(`remote reference ${r} (not allowed: validation is offline)`);
		} else if (!fs.existsSync(path.join(dir, r))) {
			errs.push(`referenced path does not exist: ${r}`);
		}
	}
	if (!["Kustomization", "Component"].includes(k.kind || "Kustomization")) {
		errs.push(`unexpected kind ${k.kind}`);
	}
	if (errs.length) {
		fail(`${file} (kustomization references)`, errs);
	} else {
		pass(`${file} (kustomization references: ${refs.length})`);
	}
	if ((k.kind || "Kustomization") === "Kustomization") {
		renderDirs.push(dir);
	}
}

async function checkDoc(label, doc, partial) {
	if (doc === null || doc === undefined) {
		return;
	}
	if (typeof doc !== "object" || Array.isArray(doc) || !doc.apiVersion || !doc.kind) {
		fail(label, "not a Kubernetes object (apiVersion and kind required)");
		return;
	}
	if (!partial) {
		const errs = await schemaCheck(doc);
		if (errs.length) {
			fail(`${label} (schema)`, errs);
		} else {
			pass(`${label} (schema)`);
		}
	}
	queueTypeCheck(label, doc, partial);
}

async function main() {
	const args = process.argv.slice(2);
	if (args.length === 0) {
		console.error("usage: validate-k8s.mjs PATH...");
		process.exit(2);
	}
	const files = [];
	for (const a of args) {
		if (!fs.existsSync(a)) {
			fail(a, "no such file or directory");
			continue;
		}
		files.push(...listYaml(a));
	}
	if (files.length === 0 && failed === 0) {
		fail(args.join(" "), "no YAML files found");
	}

	// kustomizations first: they say which files are patches
	const patchFiles = new Set();
	const renderDirs = [];
	for (const f of files.filter(isKustomization)) {
		const { docs, error } = loadDocs(f, fs.readFileSync(f, "utf8"));
		if (error) {
			fail(f, error);
			continue;
		}
		checkKustomization(f, docs[0] || {}, patchFiles, renderDirs);
	}

	for (const f of files.filter((x) => !isKustomization(x))) {
		const { docs, error } = loadDocs(f, fs.readFileSync(f, "utf8"));
		if (error) {
			fail(f, error);
			continue;
		}
		const partial = patchFiles.has(path.resolve(f));
		for (let i = 0; i < docs.length; i++) {
			const doc = docs[i];
			if (doc && typeof doc === "object" && !doc.apiVersion && !doc.kind && /values\.ya?ml$/.test(f)) {
				skip(`${f}#${i + 1}`, "Helm values file, not a Kubernetes object");
				continue;
			}
			await checkDoc(docLabel(f, i, doc), doc, partial);
		}
	}

	// render kustomizations offline, validate the output
	const kubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
	if (renderDirs.length && kubectl.status !== 0) {
		skip("kustomize render", "kubectl not found; rendered output not checked");
	} else {
		for (const d of renderDirs) {
			let out;
			try {
				out = execFileSync("kubectl", ["kustomize", d], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
			} catch (e) {
				fail(`${d} (kubectl kustomize)`, String(e.stderr || e.message).trim().split("\n"));
				continue;
			}
			const { docs, error } = loadDocs(d, out);
			if (error) {
				fail(`${d} (kubectl kustomize)`, error);
				continue;
			}
			pass(`${d} (kubectl kustomize: ${docs.length} objects)`);
			for (let i = 0; i < docs.length; i++) {
				await checkDoc(`rendered:${docLabel(d, i, docs[i])}`, docs[i], false);
			}
		}
	}

	runTypeChecks();
	if (skipped) {
		console.log(`${skipped} skipped (listed above; not counted as passed)`);
	}
	console.log(`${passed} passed, ${failed} failed`);
	process.exit(failed > 0 ? 1 : 0);
}

main().catch((e) => {
	console.error(e && e.stack ? e.stack : String(e));
	console.log(`${passed} passed, ${failed + 1} failed`);
	process.exit(1);
});
