// XMPP over WebSocket (RFC 7395) with xmpp.js, as a web client would use
// it, and file upload (XEP-0363) with Node's own HTTP client (fetch).
// run.mjs starts it with Node's WebSocket (the one browsers' API has).
// Arguments: C2S-PORT HTTPS-PORT HOME.
import { client, xml } from "@xmpp/client";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [c2sPort, httpsPort, home] = process.argv.slice(2);

function fail(msg) {
  console.log(`xmpp.js over WebSocket: FAILED: ${msg}`);
  process.exit(1);
}

function withTimeout(p, what, ms = 20_000) {
  return Promise.race([
    p,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  ]).catch((e) => fail(`${what}: ${e.message}`));
}

// How many log lines contain `text` (another scenario may have run on
// the same server before this one).
function logCount(text) {
  try {
    return readFileSync(join(home, "logs", "switchboard.log"), "utf8")
      .split("\n")
      .filter((l) => l.includes(text)).length;
  } catch {
    return 0;
  }
}

async function waitForLog(text, before) {
  for (let i = 0; i < 400; i++) {
    if (logCount(text) > before) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`the server never logged ${JSON.stringify(text)}`);
}

function until(cond, what) {
  return withTimeout(
    new Promise((r) => {
      const t = setInterval(() => {
        if (cond()) {
          clearInterval(t);
          r();
        }
      }, 20);
    }),
    what,
  );
}

// 1. Discovery (XEP-0156): the page knows only the domain and the web
//    server; host-meta names the WebSocket endpoint.
const origin = `https://localhost:${httpsPort}`;
const meta = await withTimeout(
  fetch(`${origin}/.well-known/host-meta.json`).then((r) => r.json()),
  "host-meta.json",
);
const link = meta.links?.find((l) => l.rel === "urn:xmpp:alt-connections:websocket");
if (!link) fail(`no WebSocket link in host-meta.json: ${JSON.stringify(meta)}`);
const service = link.href;
if (service !== `wss://localhost:${httpsPort}/xmpp-websocket`) fail(`host-meta names ${service}`);

// 2. Alice logs in over the WebSocket (SASL2, Bind 2, stream management
//    inline, as over TCP); Bob over TCP.
const bob = client({
  service: `xmpp://127.0.0.1:${c2sPort}`,
  domain: "localhost",
  username: "bob",
  password: "bob-pw",
  resource: "desk",
});
bob.on("error", () => {});
const bobInbox = [];
bob.on("stanza", (s) => {
  if (s.is("message") && s.getChildText("body")) bobInbox.push(s.getChildText("body"));
});
const bobJid = (await withTimeout(bob.start(), "bob online over TCP")).toString();

const alice = client({
  service,
  domain: "localhost",
  username: "alice",
  password: "alice-pw",
  resource: "browser",
});
alice.on("error", () => {});
const sent = [];
alice.on("send", (el) => sent.push(el.toString()));
const aliceInbox = [];
alice.on("stanza", (s) => {
  if (s.is("message") && s.getChildText("body")) aliceInbox.push(s.getChildText("body"));
});
const jid = await withTimeout(alice.start(), "alice online over WebSocket");
if (!(alice.socket?.socket instanceof WebSocket)) fail("xmpp.js did not pick its WebSocket transport");
if (!sent.some((s) => s.startsWith("<authenticate") && s.includes("urn:xmpp:sasl:2"))) {
  fail("no SASL2 login over the WebSocket");
}
if (!alice.streamManagement.enabled || !alice.streamManagement.id) {
  fail("stream management not enabled over the WebSocket");
}

alice.send(xml("message", { to: bobJid, type: "chat" }, xml("body", {}, "hello from the browser")));
await until(() => bobInbox.includes("hello from the browser"), "bob gets alice's message");
bob.send(xml("message", { to: jid.toString(), type: "chat" }, xml("body", {}, "one")));
await until(() => aliceInbox.includes("one"), "alice gets message one");

// 3. The WebSocket goes away without </close>: the session hibernates,
//    Bob writes meanwhile, xmpp.js reconnects and resumes on a new
//    WebSocket, and each message arrives once.
const resumed = new Promise((r) => alice.streamManagement.once("resumed", r));
const hibernated = logCount("session hibernates");
alice.socket.socket.close();
await waitForLog("session hibernates", hibernated);
bob.send(xml("message", { to: jid.toString(), type: "chat" }, xml("body", {}, "two")));
await withTimeout(resumed, "the session resumed on a new WebSocket");
await until(() => aliceInbox.includes("two"), "message two after resuming");
await withTimeout(
  alice.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", "urn:xmpp:ping"))),
  "ping",
);
if (JSON.stringify(aliceInbox) !== JSON.stringify(["one", "two"])) {
  fail(`alice got ${JSON.stringify(aliceInbox)}`);
}

// 4. A picture shared by upload: a slot over the WebSocket, the file PUT
//    with fetch, the link sent to Bob, who fetches it.
const picture = Buffer.alloc(300_000);
for (let i = 0; i < picture.length; i++) picture[i] = (i * 7) % 256;
const slot = await withTimeout(
  alice.iqCaller.request(
    xml(
      "iq",
      { type: "get", to: "upload.localhost" },
      xml("request", {
        xmlns: "urn:xmpp:http:upload:0",
        filename: "cat.png",
        size: String(picture.length),
        "content-type": "image/png",
      }),
    ),
  ),
  "an upload slot",
);
const put = slot.getChild("slot").getChild("put").attrs.url;
const get = slot.getChild("slot").getChild("get").attrs.url;
const stored = await withTimeout(
  fetch(put, { method: "PUT", body: picture, headers: { "Content-Type": "image/png" } }),
  "the PUT",
);
if (stored.status !== 201) fail(`PUT answered ${stored.status}: ${await stored.text()}`);
alice.send(xml("message", { to: bobJid, type: "chat" }, xml("body", {}, get)));
await until(() => bobInbox.includes(get), "bob gets the link");
const fetched = await withTimeout(fetch(get), "the GET");
if (fetched.status !== 200) fail(`GET answered ${fetched.status}`);
if (fetched.headers.get("content-type") !== "image/png") {
  fail(`GET content type ${fetched.headers.get("content-type")}`);
}
const body = Buffer.from(await fetched.arrayBuffer());
if (!body.equals(picture)) fail(`GET returned ${body.length} different bytes`);
const forged = await withTimeout(
  fetch(put.replace(/sig=[0-9a-f]/, (m) => (m.endsWith("0") ? "sig=1" : "sig=0")), {
    method: "PUT",
    body: picture,
    headers: { "Content-Type": "image/png" },
  }),
  "a forged PUT",
);
if (forged.status !== 403) fail(`a forged PUT answered ${forged.status}`);

await alice.stop();
await bob.stop();
console.log(
  "xmpp.js 0.14 over WebSocket: host-meta discovery, SASL2 + Bind 2 + stream management, chat with a TCP client, " +
    "WebSocket dropped and the session resumed on a new one, every message once, a file uploaded and fetched: OK",
);
process.exit(0);
