// The scenario run.mjs starts: see there. Arguments: PORT HOME.
import { client, xml } from "@xmpp/client";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [port, home] = process.argv.slice(2);
const service = `xmpp://127.0.0.1:${port}`;
const agentId = "5f1e9c9e-2a1b-4c1e-9b7a-3a2f4f7e9d10";

function fail(msg) {
  console.log(`xmpp.js: FAILED: ${msg}`);
  process.exit(1);
}

function withTimeout(p, what, ms = 20_000) {
  return Promise.race([
    p,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`timed out: ${what}`)), ms),
    ),
  ]).catch((e) => fail(e.message));
}

async function waitForLog(text) {
  const path = join(home, "logs", "switchboard.log");
  for (let i = 0; i < 400; i++) {
    try {
      if (readFileSync(path, "utf8").includes(text)) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`the server never logged ${JSON.stringify(text)}`);
}

// Everything each client sends, to check which protocol it used.
function recordSent(x) {
  const sent = [];
  x.on("send", (el) => sent.push(el.toString()));
  return sent;
}

function makeClient(username, password, token) {
  const x = client({
    service,
    domain: "localhost",
    username,
    password,
    resource: "phone",
    userAgent: xml("user-agent", { id: agentId }, xml("software", {}, "switchboard-test")),
  });
  x.on("error", () => {});
  // The token store: in memory here, as an app would keep it on disk.
  let saved = token;
  x.fast.saveToken = async (t) => {
    saved = t;
  };
  x.fast.fetchToken = async () => saved;
  x.fast.deleteToken = async () => {
    saved = null;
  };
  x.savedToken = () => saved;
  return x;
}

const inbox = [];
const bob = client({ service, domain: "localhost", username: "bob", password: "bob-pw", resource: "desk" });
bob.on("error", () => {});
await withTimeout(bob.start(), "bob online");

// 1. Password login over SASL2 with Bind 2 and stream management; a FAST
//    token comes back in the same success.
const phone = makeClient("alice", "alice-pw", null);
const sent1 = recordSent(phone);
phone.on("stanza", (s) => {
  if (s.is("message") && s.getChildText("body")) inbox.push(s.getChildText("body"));
});
const jid = await withTimeout(phone.start(), "alice online (password)");
const auth1 = sent1.find((s) => s.startsWith("<authenticate"));
if (!auth1 || !auth1.includes("urn:xmpp:sasl:2")) fail(`no SASL2 authenticate: ${sent1.slice(0, 4)}`);
if (!auth1.includes("urn:xmpp:bind:0")) fail(`no Bind 2 request: ${auth1}`);
if (sent1.some((s) => s.includes("urn:ietf:params:xml:ns:xmpp-bind"))) fail("bound the old way too");
if (!jid.toString().startsWith("alice@localhost/phone/")) fail(`bound as ${jid}`);
if (!phone.streamManagement.enabled || !phone.streamManagement.id) fail("stream management not enabled inline");
const token = phone.savedToken();
if (!token?.token) fail("no FAST token was issued");

// 2. The network drops (no stream close); bob writes meanwhile; xmpp.js
//    reconnects by itself and resumes inline, with the token.
bob.send(xml("message", { to: jid.toString(), type: "chat", id: "m1" }, xml("body", {}, "one")));
await withTimeout(new Promise((r) => { const t = setInterval(() => { if (inbox.includes("one")) { clearInterval(t); r(); } }, 20); }), "message one");
const resumed = new Promise((r) => phone.streamManagement.once("resumed", r));
const sentBefore = sent1.length;
// The socket under the wrapper, destroyed: no stream close, no TLS close_notify.
phone.socket.socket.destroy();
await waitForLog("session hibernates");
bob.send(xml("message", { to: jid.toString(), type: "chat", id: "m2" }, xml("body", {}, "two")));
await withTimeout(resumed, "the session resumed");
const auth2 = sent1.slice(sentBefore).find((s) => s.startsWith("<authenticate"));
if (!auth2?.includes("HT-SHA-256-NONE")) fail(`the reconnect did not use the FAST token: ${auth2}`);
if (!auth2.includes("<resume")) fail(`no inline resumption: ${auth2}`);
await withTimeout(new Promise((r) => { const t = setInterval(() => { if (inbox.includes("two")) { clearInterval(t); r(); } }, 20); }), "message two after resuming");
// A ping round trip: anything duplicated would have arrived before it.
await withTimeout(phone.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", "urn:xmpp:ping"))), "ping");
if (JSON.stringify(inbox) !== JSON.stringify(["one", "two"])) fail(`alice got ${JSON.stringify(inbox)}`);
await phone.stop();

// 3. A new process of the same app: a wrong password, but the stored
//    token logs it in (in one round trip, no SCRAM).
const again = makeClient("alice", "not-the-password", phone.savedToken());
const sent3 = recordSent(again);
await withTimeout(again.start(), "alice online with the token alone");
const auth3 = sent3.find((s) => s.startsWith("<authenticate"));
if (!auth3?.includes("HT-SHA-256-NONE")) fail(`not a token login: ${auth3}`);
await again.stop();
await bob.stop();
console.log("xmpp.js 0.14: SASL2 + Bind 2 + FAST token, inline stream management, connection cut and resumed with the token, every message once: OK");
process.exit(0);
