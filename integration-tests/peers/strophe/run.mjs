// A second real client library for the web side: strophe.js, in Node
// with the setup its README gives (ws for WebSocket, @xmldom/xmldom for
// the DOM) and xhr.mjs for BOSH (Node has no XMLHttpRequest).
//
// Starts the real `switchboard` binary on a temporary home (port 0, a TCP
// and an HTTPS listener), adds the users, and runs client.mjs in a child
// process that trusts the server's generated certificate
// (NODE_EXTRA_CA_CERTS: the certificate is verified, not ignored). The
// whole run is bounded to 120 s. Exits 0 on success, 1 with a reason.
//
// Usage: node run.mjs PATH/TO/switchboard

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const binary = resolve(process.argv[2] ?? "target/debug/switchboard");
const home = mkdtempSync(join(tmpdir(), "switchboard-strophe-"));
const config = join(home, "switchboard.xml");
writeFileSync(
  config,
  `<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <listen><c2s addr="127.0.0.1:0"/><https addr="127.0.0.1:0"/></listen>
  <tls required="true"/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
`,
);
const base = ["-H", home, "-c", config];
for (const user of ["alice", "bob"]) {
  const r = spawnSync(binary, [...base, "user", "add", `${user}@localhost`], {
    input: `${user}-pw\n`,
  });
  if (r.status !== 0) fail(`user add ${user}: ${r.stderr}`);
}

function fail(msg) {
  console.log(`strophe.js: FAILED: ${msg}`);
  cleanup();
  process.exit(1);
}

const server = spawn(binary, [...base, "run"], {
  stdio: ["ignore", "pipe", "inherit"],
});
function cleanup() {
  try {
    server.kill("SIGTERM");
  } catch {}
}
const deadline = setTimeout(() => fail("timed out after 120 s"), 120_000);

let httpsPort = null;
const lines = createInterface({ input: server.stdout });
for await (const line of lines) {
  const h = line.match(/^listening https 127\.0\.0\.1:(\d+)$/);
  if (h) httpsPort = h[1];
  if (line.trim() === "ready") break;
}
if (!httpsPort) fail("the server did not report its HTTPS port");

// "localhost" must reach the IPv4 listener.
const child = spawn(
  process.execPath,
  ["--dns-result-order=ipv4first", join(here, "client.mjs"), httpsPort, home, binary, config],
  {
    stdio: "inherit",
    env: { ...process.env, NODE_EXTRA_CA_CERTS: join(home, "etc", "localhost.crt") },
  },
);
const code = await new Promise((r) => child.on("exit", r));
clearTimeout(deadline);
server.kill("SIGTERM");
const status = await new Promise((r) => server.on("exit", (c) => r(c)));
rmSync(home, { recursive: true, force: true });
if (code !== 0) process.exit(1);
if (status !== 0) {
  console.log(`strophe.js: FAILED: server exit code ${status}`);
  process.exit(1);
}
