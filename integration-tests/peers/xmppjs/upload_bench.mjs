// Upload throughput (XEP-0363): a 100 MiB file PUT to the web side and
// fetched back, with the server's resident memory before, after and at
// its peak, to show the body is streamed (memory stays flat) at near disk
// speed. Not part of .ci/run; run it by hand, on a release build for
// figures worth comparing:
//
//   node integration-tests/peers/xmppjs/upload_bench.mjs target/release/switchboard [MiB]
//
// The server runs on a temporary home, port 0; the certificate it
// generates is trusted explicitly (verified, not ignored).

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { client, xml } from "@xmpp/client";

const [binary = "target/release/switchboard", mibArg = "100", role, c2s, https, pid, home] =
  process.argv.slice(2);
const mib = Number(mibArg);

if (role !== "measure") {
  // The server on a temporary home, then this script again in a node
  // that trusts its certificate.
  const home = mkdtempSync(join(tmpdir(), "switchboard-upload-bench-"));
  const config = join(home, "switchboard.xml");
  writeFileSync(
    config,
    `<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <service id="upload.localhost" type="upload" max-file-size="${mib + 1}M" quota="${2 * mib + 2}M"/>
  <listen><c2s addr="127.0.0.1:0"/><https addr="127.0.0.1:0"/></listen>
  <tls required="true"/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
`,
  );
  const base = ["-H", home, "-c", config];
  spawnSync(binary, [...base, "user", "add", "alice@localhost"], { input: "alice-pw\n" });
  const server = spawn(binary, [...base, "run"], { stdio: ["ignore", "pipe", "ignore"] });
  let c2s, https;
  for await (const line of createInterface({ input: server.stdout })) {
    let m = line.match(/^listening c2s 127\.0\.0\.1:(\d+)$/);
    if (m) c2s = m[1];
    m = line.match(/^listening https 127\.0\.0\.1:(\d+)$/);
    if (m) https = m[1];
    if (line.trim() === "ready") break;
  }
  const child = spawn(
    process.execPath,
    ["--dns-result-order=ipv4first", fileURLToPath(import.meta.url), binary, mibArg, "measure", c2s, https, String(server.pid), home],
    { stdio: "inherit", env: { ...process.env, NODE_EXTRA_CA_CERTS: join(home, "etc", "localhost.crt") } },
  );
  const code = await new Promise((r) => child.on("exit", r));
  server.kill("SIGTERM");
  await new Promise((r) => server.on("exit", r));
  rmSync(home, { recursive: true, force: true });
  process.exit(code);
}

const ca = readFileSync(join(home, "etc", "localhost.crt"));
const kib = (field) =>
  Number(readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`${field}:\\s+(\\d+)`))[1]);

// A slot over XMPP.
const x = client({
  service: `xmpp://127.0.0.1:${c2s}`,
  domain: "localhost",
  username: "alice",
  password: "alice-pw",
});
x.on("error", () => {});
await x.start();
const size = mib * 1024 * 1024;
const slot = await x.iqCaller.request(
  xml(
    "iq",
    { type: "get", to: "upload.localhost" },
    xml("request", {
      xmlns: "urn:xmpp:http:upload:0",
      filename: "big.bin",
      size: String(size),
      "content-type": "application/octet-stream",
    }),
  ),
);
const put = new URL(slot.getChild("slot").getChild("put").attrs.url);
const get = new URL(slot.getChild("slot").getChild("get").attrs.url);

function send(method, url, body) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        servername: "localhost",
        port: url.port,
        path: url.pathname + url.search,
        method,
        ca,
        headers: body
          ? { "Content-Type": "application/octet-stream", "Content-Length": String(size) }
          : {},
      },
      (res) => {
        let n = 0;
        res.on("data", (c) => (n += c.length));
        res.on("end", () => resolve({ status: res.statusCode, bytes: n }));
      },
    );
    req.on("error", reject);
    if (body) {
      const chunk = Buffer.alloc(1 << 20, 7);
      let left = mib;
      const pump = () => {
        while (left > 0) {
          left -= 1;
          if (!req.write(chunk)) return req.once("drain", pump);
        }
        req.end();
      };
      pump();
    } else {
      req.end();
    }
  });
}

const before = kib("VmRSS");
let t = performance.now();
const up = await send("PUT", put, true);
const putS = (performance.now() - t) / 1000;
t = performance.now();
const down = await send("GET", get, false);
const getS = (performance.now() - t) / 1000;
console.log(`PUT ${mib} MiB: ${up.status} in ${putS.toFixed(2)} s, ${(mib / putS).toFixed(1)} MiB/s (fsync included)`);
console.log(`GET ${down.bytes} bytes: ${down.status} in ${getS.toFixed(2)} s, ${(mib / getS).toFixed(1)} MiB/s`);
console.log(`server RSS: ${before} kB before, ${kib("VmRSS")} kB after, ${kib("VmHWM")} kB at its peak`);
await x.stop();
process.exit(up.status === 201 && down.status === 200 && down.bytes === size ? 0 : 1);
