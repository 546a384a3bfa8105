// SPDX-License-Identifier: Apache-2.0
// k8s-validate: checks rendered Kubernetes manifests (multi-document YAML,
// files or stdin) against the Kubernetes API schemas, offline, the way
// `kubectl apply --validate=strict` would against a server:
//   - kubernetes-models: the API's OpenAPI schema compiled to validators
//     (types, enums, required fields, formats); it ignores unknown fields,
//     because the OpenAPI schema of Kubernetes does not forbid them;
//   - @kubernetes/client-node: the API's generated model classes, whose
//     attribute maps list every field of every type; walking the document
//     along them turns each unknown field (a typo) into an error.
// Both packages are generated from the Kubernetes OpenAPI document of a
// release that has native sidecars (initContainers[].restartPolicy).
// A document whose apiVersion/kind has no schema is an error, never skipped.
// Exit status: 0 all valid, 1 some invalid, 2 usage or unreadable input.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import * as k8s from "@kubernetes/client-node";

const SCALARS = new Set(["string", "number", "boolean", "Date", "any", "object", "IntOrString"]);
const ARRAY = /^Array<(.+)>$/;
const MAP = /^\{ \[key: string\]: (.+); \}$/;

// modelName: apps/v1 Deployment -> V1Deployment (client-node names models
// by version and kind; the groups used here have no clashing kinds).
function modelName(apiVersion, kind) {
    const version = apiVersion.split("/").pop();
    return version.charAt(0).toUpperCase() + version.slice(1) + kind;
}

// unknownFields: every key of `value` that its type does not declare, with
// its JSON path; recurses through arrays, maps and nested models.
function unknownFields(value, type, path, out) {
    if (value === null || value === undefined || SCALARS.has(type))
        return;
    let m = ARRAY.exec(type);
    if (m) {
        if (Array.isArray(value))
            value.forEach((v, i) => unknownFields(v, m[1], `${path}[${i}]`, out));
        return;
    }
    m = MAP.exec(type);
    if (m) {
        if (typeof value === "object")
            for (const [k, v] of Object.entries(value))
                unknownFields(v, m[1], `${path}.${k}`, out);
        return;
    }
    const model = k8s[type];
    if (!model || typeof model.getAttributeTypeMap !== "function") {
        out.push(`${path}: no model for type ${type}`);
        return;
    }
    if (typeof value !== "object" || Array.isArray(value))
        return; /* a type error: the schema validator reports it */
    const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
    for (const [k, v] of Object.entries(value)) {
        if (!attrs.has(k))
            out.push(`${path}.${k}: unknown field in ${type}`);
        else
            unknownFields(v, attrs.get(k), `${path}.${k}`, out);
    }
}

// schemaErrors: kubernetes-models' validator for the document's group,
// version and kind; module paths are kubernetes-models/<group>/<version>/<Kind>
// with the core group omitted.
async function schemaErrors(doc) {
    const mod = `kubernetes-models/${doc.apiVersion}/${doc.kind}`;
    let cls;
    try {
        cls = (await import(mod))[doc.kind];
    } catch {
        return [`no schema for ${doc.apiVersion} ${doc.kind}`];
    }
    try {
        new cls(doc).validate();
        return [];
    } catch (e) {
        return [e.message];
    }
}

// apiForm: the document as the API server decodes it. kustomize folds the
// base64 of Secret data at 70 columns; Go's base64 decoder (and so the API)
// skips the newlines, while the "byte" format check does not.
function apiForm(doc) {
    if (doc.kind !== "Secret" || typeof doc.data !== "object" || doc.data === null)
        return doc;
    const d = structuredClone(doc);
    for (const [k, v] of Object.entries(d.data))
        if (typeof v === "string")
            d.data[k] = v.replace(/[\r\n]/g, "");
    return d;
}

async function validate(doc) {
    if (typeof doc !== "object" || Array.isArray(doc))
        return ["document is not an object"];
    if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string")
        return ["apiVersion and kind are required strings"];
    const errors = await schemaErrors(apiForm(doc));
    if (errors.length && errors[0].startsWith("no schema"))
        return errors;
    unknownFields(doc, modelName(doc.apiVersion, doc.kind), "", errors);
    return errors;
}

async function main() {
    const files = process.argv.slice(2);
    if (files.length === 0) {
        console.error("usage: k8s-validate.mjs FILE.yaml... (- for stdin)");
        process.exit(2);
    }
    let docs = 0, bad = 0;
    for (const f of files) {
        let text;
        try {
            text = readFileSync(f === "-" ? 0 : f, "utf8");
        } catch (e) {
            console.error(`k8s-validate: ${f}: ${e.message}`);
            process.exit(2);
        }
        for (const doc of yaml.loadAll(text)) {
            if (doc === null || doc === undefined)
                continue;
            docs++;
            const errors = await validate(doc);
            if (errors.length === 0)
                continue;
            bad++;
            const id = `${doc.kind ?? "?"} ${doc.metadata?.namespace ?? "-"}/${doc.metadata?.name ?? "?"}`;
            for (const e of errors)
                console.log(`${f}: ${id}: ${e}`);
        }
    }
    console.log(`k8s-validate: ${docs - bad} valid, ${bad} invalid of ${docs} documents`);
    process.exit(bad === 0 && docs > 0 ? 0 : 1);
}

await main();
