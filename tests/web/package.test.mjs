// podium.js as an npm package (docs/podium-js.md "As an npm package"): the declarations in
// types/ are what tsc makes of the JSDoc, and `npm pack`'s tarball installs offline into a
// fresh folder, imports as `podium-client` in node and typechecks a TypeScript file.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import * as podium from "../../src/podium/web/podium.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");
// Each step takes a few seconds; the whole file stays well under a minute.
const STEP_MS = 60_000;
const TIMEOUT_MS = 120_000;
const NPM_ENV = { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false" };

let scratch;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "podium-client-"));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** `command args` in `cwd`; resolves to `{ code, stdout, output }` (output: stdout and stderr). */
async function exec(command, args, cwd) {
  try {
    const { stdout, stderr } = await run(command, args, { cwd, env: NPM_ENV, timeout: STEP_MS });
    return { code: 0, stdout, output: stdout + stderr };
  } catch (error) {
    // A command that could not start, or was killed at STEP_MS, fails the test as it is.
    if (typeof error.code !== "number") throw error;
    return { code: error.code, stdout: error.stdout, output: `${error.stdout}${error.stderr}` };
  }
}

async function filesUnder(folder) {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(folder, join(entry.parentPath, entry.name)))
    .sort();
}

/** A fresh folder with a package.json of its own, to install into. */
async function appFolder(name) {
  const folder = join(scratch, name);
  await mkdir(folder);
  await writeFile(join(folder, "package.json"), JSON.stringify({ private: true, type: "module" }));
  return folder;
}

/** The names `podium-client` exports, imported by node from inside `folder`. */
async function exportedNames(folder) {
  const script = 'const m = await import("podium-client"); console.log(JSON.stringify(Object.keys(m).sort()));';
  const { code, stdout, output } = await exec(process.execPath, ["--input-type=module", "-e", script], folder);
  assert.equal(code, 0, output);
  return JSON.parse(stdout);
}

const USES_THE_TYPES = `import { Client, PodiumError, type CallEvent, type Capability, type ConnectionState } from "podium-client";

const client = new Client({ token: "a.b.c", baseUrl: "http://127.0.0.1:8000" });
const call = client.call("audio_room", "town-hall");
const wanted: Capability = "send-audio";
const may: boolean = call.permission(wanted).canRequestPermission;
call.on("call.permission_request", (event) => event.request.id.toUpperCase());
call.on("media.track_added", (event) => event.track.kind);
call.on("*", (event: CallEvent) => event.seq);
client.onConnectionStateChange((state: ConnectionState) => state);
const held: boolean = call.state.ownCapabilities.has("send-audio");
export const summary = [may, held, PodiumError.name];
`;

// Line 4: a capability that does not exist is a type error.
const MISUSES_THE_TYPES = `import { Client } from "podium-client";

const call = new Client({ token: "a.b.c" }).call("audio_room", "x");
call.permission("fly");
`;

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    strict: true,
    noEmit: true,
    target: "es2022",
    module: "nodenext",
    moduleResolution: "nodenext",
    lib: ["es2022", "dom"],
    types: [],
  },
  files: ["uses.ts", "misuses.ts"],
};

test("the declarations in types/ are what tsc writes from the JSDoc (else: npm run types)", { timeout: TIMEOUT_MS }, async () => {
  const out = join(scratch, "types");
  const args = [TSC, "-p", "tsconfig.json", "--noEmit", "false", "--declaration", "--emitDeclarationOnly", "--outDir", out];
  const { code, output } = await exec(process.execPath, args, ROOT);
  assert.equal(code, 0, output);
  const committed = join(ROOT, "types");
  const files = await filesUnder(out);
  assert.deepEqual(await filesUnder(committed), files);
  for (const file of files) {
    const expected = await readFile(join(out, file), "utf8");
    assert.equal(await readFile(join(committed, file), "utf8"), expected, `types/${file} is stale: run npm run types`);
  }
});

test("npm pack's tarball installs offline, imports as podium-client and typechecks", { timeout: TIMEOUT_MS }, async () => {
  const packed = await exec("npm", ["pack", "--json", "--pack-destination", scratch], ROOT);
  assert.equal(packed.code, 0, packed.output);
  const [{ filename, files }] = JSON.parse(packed.stdout);
  const paths = files.map((file) => file.path);
  assert.ok(paths.includes("src/podium/web/podium.js") && paths.includes("types/podium.d.ts"), paths.join(" "));
  assert.ok(paths.every((path) => !path.startsWith("tests/") && !path.startsWith("src/podium/web/ui/")), paths.join(" "));

  const app = await appFolder("app");
  const installed = await exec("npm", ["install", "--offline", "--no-audit", "--no-fund", join(scratch, filename)], app);
  assert.equal(installed.code, 0, installed.output);
  assert.deepEqual(await exportedNames(app), Object.keys(podium).sort());

  await writeFile(join(app, "uses.ts"), USES_THE_TYPES);
  await writeFile(join(app, "misuses.ts"), MISUSES_THE_TYPES);
  await writeFile(join(app, "tsconfig.json"), JSON.stringify(CONSUMER_TSCONFIG));
  const checked = await exec(process.execPath, [TSC, "-p", "tsconfig.json"], app);
  const errors = checked.output.split("\n").filter((line) => line.includes("error TS"));
  assert.equal(errors.length, 1, checked.output);
  assert.match(errors[0], /^misuses\.ts\(4,17\): error TS2345: Argument of type '"fly"'/);
});

test("npm install of the repository folder makes podium-client importable", { timeout: TIMEOUT_MS }, async () => {
  const app = await appFolder("linked");
  const installed = await exec("npm", ["install", "--offline", "--no-audit", "--no-fund", ROOT], app);
  assert.equal(installed.code, 0, installed.output);
  assert.deepEqual(await exportedNames(app), Object.keys(podium).sort());
});
