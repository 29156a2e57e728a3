// A real third-party client: xmpp.js (@xmpp/client), which implements
// SASL2 (XEP-0388), Bind 2 (XEP-0386), FAST (XEP-0484, HT-SHA-256-NONE),
// stream management (XEP-0198) with inline resumption, and XMPP over
// WebSocket (RFC 7395).
//
// Starts the real `switchboard` binary on a temporary home (port 0, a TCP
// and an HTTPS listener, an upload service) and runs, each in a child
// process that trusts the server's generated certificate
// (NODE_EXTRA_CA_CERTS: the certificate is verified, not ignored):
// client.mjs (fast reconnect over TCP), then client-ws.mjs (WebSocket,
// with Node's WebSocket, and file upload). Exits 0 on success, 1 with a
// reason.
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
const home = mkdtempSync(join(tmpdir(), "switchboard-xmppjs-"));
const config = join(home, "switchboard.xml");
writeFileSync(
  config,
  `<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <service id="upload.localhost" type="upload" max-file-size="1M"/>
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
  console.log(`xmpp.js: FAILED: ${msg}`);
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

let port = null;
let httpsPort = null;
const lines = createInterface({ input: server.stdout });
for await (const line of lines) {
  const m = line.match(/^listening c2s 127\.0\.0\.1:(\d+)$/);
  if (m) port = m[1];
  const h = line.match(/^listening https 127\.0\.0\.1:(\d+)$/);
  if (h) httpsPort = h[1];
  if (line.trim() === "ready") break;
}
if (!port || !httpsPort) fail("the server did not report its listening ports");

// Each scenario in a node of its own. Node 20 has the WebSocket of
// browsers behind a flag (on by default from 22); "localhost" must reach
// the IPv4 listener.
async function scenario(args) {
  const child = spawn(
    process.execPath,
    ["--experimental-websocket", "--dns-result-order=ipv4first", ...args],
    {
      stdio: "inherit",
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: join(home, "etc", "localhost.crt"),
      },
    },
  );
  return await new Promise((r) => child.on("exit", r));
}
let code = await scenario([join(here, "client.mjs"), port, home]);
if (code === 0) code = await scenario([join(here, "client-ws.mjs"), port, httpsPort, home]);
clearTimeout(deadline);
server.kill("SIGTERM");
const status = await new Promise((r) => server.on("exit", (c) => r(c)));
rmSync(home, { recursive: true, force: true });
if (code !== 0) process.exit(1);
if (status !== 0) {
  console.log(`xmpp.js: FAILED: server exit code ${status}`);
  process.exit(1);
}
