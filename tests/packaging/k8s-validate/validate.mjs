// SPDX-License-Identifier: Apache-2.0
// Validates rendered manifests (multi-document YAML, one file per kustomization) against the
// Kubernetes API schema shipped by the kubernetes-models package (4.5.x: Kubernetes 1.30 API,
// a superset of what 1.28 accepts for the fields used here), and checks the svidfs-specific
// invariants that a schema cannot express. Custom resources (ClusterSPIFFEID) are checked
// against a schema written here from the spire-controller-manager CRD's documented fields.
// The API schema (like the API server's) accepts unknown fields, so a misspelt optional field
// would pass; a strict pass therefore walks each object along the field lists of the typed
// models (kubernetes-models' .d.ts interfaces) and rejects any field the API does not define.
// Prints TAP: one line per object and per invariant.
// Usage: node validate.mjs NAME=FILE.yaml [NAME=FILE.yaml ...]
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import Ajv from 'ajv';

let n = 0;
let failed = 0;
const lines = [];
function tap(ok, name, detail) {
	n++;
	if (!ok) failed++;
	lines.push(`${ok ? 'ok' : 'not ok'} ${n} - ${name}`);
	if (!ok && detail)
		for (const l of String(detail).split('\n')) lines.push(`# ${l}`);
}

// ClusterSPIFFEID (spire.spiffe.io/v1alpha1): the fields we use and their types; unknown spec
// fields are rejected so a typo cannot pass.
const ajv = new Ajv({ allErrors: true });
const labelSelector = {
	type: 'object',
	additionalProperties: false,
	properties: {
		matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
		matchExpressions: { type: 'array' },
	},
};
const clusterSpiffeId = ajv.compile({
	type: 'object',
	required: ['apiVersion', 'kind', 'metadata', 'spec'],
	properties: {
		metadata: { type: 'object', required: ['name'] },
		spec: {
			type: 'object',
			required: ['spiffeIDTemplate'],
			additionalProperties: false,
			properties: {
				spiffeIDTemplate: { type: 'string', pattern: '^spiffe://' },
				namespaceSelector: labelSelector,
				podSelector: labelSelector,
				workloadSelectorTemplates: { type: 'array', items: { type: 'string' } },
				dnsNameTemplates: { type: 'array', items: { type: 'string' } },
				federatesWith: { type: 'array', items: { type: 'string' } },
				ttl: { type: 'string' },
				jwtTtl: { type: 'string' },
				className: { type: 'string' },
				admin: { type: 'boolean' },
				downstream: { type: 'boolean' },
				autoPopulateDNSNames: { type: 'boolean' },
				fallback: { type: 'boolean' },
				hint: { type: 'string' },
			},
		},
	},
});

// Field index: global interface name (IIoK8s...) -> { field: type }, from every .d.ts file.
const modulesDir = fileURLToPath(new URL('./node_modules/', import.meta.url));
const fieldIndex = new Map();
const rootAlias = new Map(); // "<file>" -> { localInterface: globalName }
function indexDir(dir) {
	for (const e of readdirSync(dir, { withFileTypes: true })) {
		const p = dir + '/' + e.name;
		if (e.isDirectory())
			indexDir(p);
		else if (e.name.endsWith('.d.ts'))
			indexFile(p);
	}
}
function indexFile(path) {
	const local = new Map();
	let cur = null;
	for (const line of readFileSync(path, 'utf8').split('\n')) {
		let m;
		if ((m = /^export interface (\w+)/.exec(line))) {
			cur = {};
			local.set(m[1], cur);
		} else if (cur && line === '}') {
			cur = null;
		} else if (cur && (m = /^    "([^"]+)"\??: (.*?);?$/.exec(line))) {
			cur[m[1]] = m[2];
		} else if ((m = /^export \{ (.*) \};$/.exec(line))) {
			const aliases = {};
			for (const pair of m[1].split(', ')) {
				const [a, b] = pair.split(' as ');
				if (local.has(a)) {
					fieldIndex.set(b, local.get(a));
					aliases[a] = b;
				}
			}
			rootAlias.set(path, aliases);
		}
	}
}
indexDir(modulesDir + 'kubernetes-models');
indexDir(modulesDir + '@kubernetes-models/apimachinery');

function unknownFields(obj, type, path, out) {
	const fields = fieldIndex.get(type);
	if (!fields || obj === null || typeof obj !== 'object' || Array.isArray(obj))
		return;
	for (const [k, v] of Object.entries(obj)) {
		if (!(k in fields)) {
			out.push(`${path}.${k}`);
			continue;
		}
		const t = fields[k];
		let m;
		if ((m = /^Array<(I\w+)>$/.exec(t)) && Array.isArray(v))
			v.forEach((e, i) => unknownFields(e, m[1], `${path}.${k}[${i}]`, out));
		else if (/^I\w+$/.test(t))
			unknownFields(v, t, `${path}.${k}`, out);
	}
}
function rootType(apiVersion, kind) {
	const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
	const file = `${modulesDir}kubernetes-models/${group ? group + '/' : ''}${version}/${kind}.d.ts`;
	return rootAlias.get(file)?.[`I${kind}`];
}

async function modelFor(apiVersion, kind) {
	const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
	const path = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
	const mod = await import(path);
	return mod[kind];
}

async function validateObject(src, obj) {
	const id = `${src}: ${obj.kind} ${obj.metadata?.namespace ? obj.metadata.namespace + '/' : ''}${obj.metadata?.name}`;
	if (obj.apiVersion === 'spire.spiffe.io/v1alpha1' && obj.kind === 'ClusterSPIFFEID') {
		const ok = clusterSpiffeId(obj);
		tap(ok, `${id} validates (ClusterSPIFFEID schema)`, ok ? '' : ajv.errorsText(clusterSpiffeId.errors));
		return;
	}
	let Model;
	try {
		Model = await modelFor(obj.apiVersion, obj.kind);
	} catch (e) {
		Model = undefined;
	}
	if (!Model) {
		tap(false, `${id}: no schema for ${obj.apiVersion} ${obj.kind}`);
		return;
	}
	try {
		new Model(obj).validate();
		tap(true, `${id} validates against the Kubernetes API schema`);
	} catch (e) {
		tap(false, `${id} validates against the Kubernetes API schema`, e.message);
	}
	const root = rootType(obj.apiVersion, obj.kind);
	const unknown = [];
	if (root)
		unknownFields(obj, root, '', unknown);
	tap(!!root && unknown.length === 0, `${id} has no field the API does not define`,
		root ? `unknown: ${unknown.join(', ')}` : `no field list for ${obj.apiVersion} ${obj.kind}`);
}

function find(objs, kind, name) {
	return objs.find((o) => o.kind === kind && (!name || o.metadata?.name === name));
}

// Invariants of the svidfs deployment that the API schema does not capture.
function checkSvidfs(src, objs) {
	const drv = find(objs, 'CSIDriver', 'csi.svidfs.spiffe.io');
	if (drv) {
		const s = drv.spec;
		tap(s.podInfoOnMount === true && s.attachRequired === false &&
			JSON.stringify(s.volumeLifecycleModes) === '["Ephemeral"]' && s.fsGroupPolicy === 'File',
			`${src}: CSIDriver is ephemeral-only, podInfoOnMount, no attach, fsGroupPolicy File`);
	}
	const ds = find(objs, 'DaemonSet', 'svidfs');
	if (!ds)
		return;
	const pod = ds.spec.template.spec;
	const c = Object.fromEntries(pod.containers.map((x) => [x.name, x]));
	const vols = Object.fromEntries((pod.volumes || []).map((v) => [v.name, v]));
	const mountOf = (ctr, name) => (c[ctr]?.volumeMounts || []).find((m) => m.name === name);
	tap(pod.hostPID === true, `${src}: DaemonSet uses hostPID (caller cgroup check)`);
	tap(['svidfs', 'svidfs-csi', 'node-driver-registrar', 'livenessprobe'].every((x) => c[x]),
		`${src}: DaemonSet runs svidfs, svidfs-csi, node-driver-registrar, livenessprobe`);
	tap(vols['fuse-device']?.hostPath?.path === '/dev/fuse' && !!mountOf('svidfs', 'fuse-device'),
		`${src}: svidfs gets /dev/fuse`);
	tap(mountOf('svidfs', 'svidfs-mount')?.mountPropagation === 'Bidirectional' &&
		mountOf('svidfs-csi', 'kubelet-pods')?.mountPropagation === 'Bidirectional' &&
		vols['kubelet-pods']?.hostPath?.path === '/var/lib/kubelet/pods',
		`${src}: FUSE mount and /var/lib/kubelet/pods propagate Bidirectional`);
	// Kubernetes rejects Bidirectional propagation in a container that is not privileged.
	const bidi = pod.containers.filter((x) => (x.volumeMounts || []).some((m) => m.mountPropagation === 'Bidirectional'));
	tap(bidi.every((x) => x.securityContext?.privileged === true),
		`${src}: every container with a Bidirectional mount is privileged (API requirement)`);
	tap(pod.containers.filter((x) => x.securityContext?.privileged).map((x) => x.name).sort().join(',') === 'svidfs,svidfs-csi',
		`${src}: only svidfs and svidfs-csi are privileged`);
	tap(vols['registration-dir']?.hostPath?.path === '/var/lib/kubelet/plugins_registry' &&
		vols['plugin-dir']?.hostPath?.path === '/var/lib/kubelet/plugins/csi.svidfs.spiffe.io',
		`${src}: kubelet plugin registration and plugin directories`);
	tap(!!vols['spire-admin-socket']?.hostPath && mountOf('svidfs', 'spire-admin-socket')?.readOnly === true,
		`${src}: SPIRE agent admin socket directory mounted read-only`);
	tap(pod.containers.every((x) => x.resources?.requests?.cpu && x.resources?.requests?.memory),
		`${src}: every container has resource requests`);
	tap(!!c['svidfs']?.livenessProbe && !!c['svidfs-csi']?.livenessProbe,
		`${src}: svidfs and svidfs-csi have liveness probes`);
	const sa = find(objs, 'ServiceAccount', pod.serviceAccountName);
	tap(!!sa && sa.metadata.namespace === ds.metadata.namespace,
		`${src}: the DaemonSet's ServiceAccount is rendered in its namespace`);
	const ru = ds.spec.updateStrategy?.rollingUpdate;
	tap(ds.spec.updateStrategy?.type === 'RollingUpdate' && ru && 'maxSurge' in ru,
		`${src}: RollingUpdate with an explicit maxSurge`);
}

function checkWorkload(src, objs) {
	for (const p of objs.filter((o) => o.kind === 'Pod')) {
		const v = (p.spec.volumes || []).find((x) => x.csi?.driver === 'csi.svidfs.spiffe.io');
		tap(!!v && v.csi.readOnly === true && !!v.csi.volumeAttributes?.['svidfs.spiffe.io/layout'],
			`${src}: Pod ${p.metadata.name} has a read-only svidfs inline volume with a layout`);
		const mounted = p.spec.containers.some((c) => (c.volumeMounts || []).some((m) => m.name === v?.name && m.mountPath === '/run/spiffe' && m.readOnly));
		tap(mounted, `${src}: Pod ${p.metadata.name} reads its identity at /run/spiffe`);
	}
}

for (const arg of process.argv.slice(2)) {
	const eq = arg.indexOf('=');
	const src = arg.slice(0, eq);
	const text = readFileSync(arg.slice(eq + 1), 'utf8');
	const docs = parseAllDocuments(text);
	const objs = [];
	let parseErr = '';
	for (const d of docs) {
		if (d.errors.length)
			parseErr += d.errors.map((e) => e.message).join('\n');
		const o = d.toJS();
		if (o)
			objs.push(o);
	}
	tap(!parseErr && objs.length > 0, `${src}: renders to ${objs.length} objects`, parseErr);
	for (const o of objs)
		await validateObject(src, o);
	checkSvidfs(src, objs);
	checkWorkload(src, objs);
}
console.log(`1..${n}`);
for (const l of lines)
	console.log(l);
process.exit(failed ? 1 : 0);
