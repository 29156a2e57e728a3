// The scenario run.mjs starts: see there. Arguments: HTTPS-PORT HOME
// BINARY CONFIG.
//
// 1. Alice logs in over BOSH (XEP-0124/0206), Bob over WebSocket (RFC
//    7395) with stream management (XEP-0198) on; both with SCRAM.
// 2. They chat both ways; `switchboard users online` (the admin socket)
//    lists both sessions.
// 3. Bob's WebSocket is cut without a </close/>: the server keeps his
//    session (it logs the hibernation), Alice writes meanwhile, strophe
//    reconnects and resumes on a new WebSocket, and the message arrives
//    once, with nothing else after it up to a ping round trip.
// 4. Alice logs out over BOSH (a terminate body): her session is gone
//    from the server's list, and Bob's ping to her old address fails.
import "./xhr.mjs";
import { Strophe, $msg, $iq } from "strophe.js";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [httpsPort, home, binary, config] = process.argv.slice(2);
// strophe logs every request at debug level; warnings and errors only.
Strophe.setLogLevel(Strophe.LogLevel.WARN);
const origin = `https://localhost:${httpsPort}`;

function fail(msg) {
  console.log(`strophe.js: FAILED: ${msg}`);
  process.exit(1);
}

function withTimeout(p, what, ms = 20_000) {
  return Promise.race([
    p,
    new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), ms)),
  ]).catch((e) => fail(`${what}: ${e.message ?? e}`));
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

// How many log lines contain `text`.
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
  await until(() => logCount(text) > before, `the server logs ${JSON.stringify(text)}`);
}

function online() {
  const r = spawnSync(binary, ["-H", home, "-c", config, "users", "online"], { encoding: "utf8" });
  if (r.status !== 0) fail(`users online: ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l);
}

// A strophe connection with what it sent and the chat bodies it got.
function connection(service, options = {}) {
  const conn = new Strophe.Connection(service, options);
  conn.sent = [];
  conn.bodies = [];
  conn.rawOutput = (data) => conn.sent.push(data);
  return conn;
}

// strophe drops every handler when a connection ends, so an application
// adds its handlers each time it is connected (before a resumed session's
// first stanza: the callback runs as the <resumed/> is handled).
function addHandlers(conn) {
  conn.addHandler(
    (m) => {
      const body = m.getElementsByTagName("body")[0];
      if (body) conn.bodies.push(body.textContent);
      return true;
    },
    null,
    "message",
    "chat",
  );
}

// Connects (or reconnects) and resolves on CONNECTED; any failure fails.
function connect(conn, jid, password, what) {
  return withTimeout(
    new Promise((resolve) => {
      conn.connect(jid, password, (status, condition) => {
        if (status === Strophe.Status.CONNECTED) {
          addHandlers(conn);
          resolve();
        }
        else if (
          status === Strophe.Status.AUTHFAIL ||
          status === Strophe.Status.CONNFAIL ||
          status === Strophe.Status.ERROR
        ) {
          fail(`${what}: status ${status} ${condition ?? ""}`);
        } else if (status === Strophe.Status.DISCONNECTED) {
          conn.disconnected?.();
        }
      });
    }),
    what,
  );
}

function ping(conn, to) {
  return new Promise((resolve) => {
    conn.sendIQ(
      $iq({ type: "get", to }).c("ping", { xmlns: "urn:xmpp:ping" }),
      (r) => resolve({ ok: true, r }),
      (e) => resolve({ ok: false, e }),
      10_000,
    );
  });
}

// 1. Logins.
const alice = connection(`${origin}/http-bind`);
await connect(alice, "alice@localhost/bosh", "alice-pw", "alice logs in over BOSH");
if (!(alice._proto instanceof Strophe.Bosh)) fail("strophe did not pick its BOSH transport");
const bob = connection(`wss://localhost:${httpsPort}/xmpp-websocket`, {
  enableStreamManagement: true,
});
await connect(bob, "bob@localhost/ws", "bob-pw", "bob logs in over WebSocket");
if (!(bob._proto instanceof Strophe.Websocket)) fail("strophe did not pick its WebSocket transport");
for (const [who, conn] of [
  ["alice", alice],
  ["bob", bob],
]) {
  const auth = conn.sent.find((s) => s.includes("<auth "));
  if (!auth || !/mechanism=["']SCRAM-SHA-/.test(auth)) fail(`${who} did not log in with SCRAM: ${auth}`);
}
if (alice.jid !== "alice@localhost/bosh" || bob.jid !== "bob@localhost/ws") {
  fail(`bound ${alice.jid} and ${bob.jid}`);
}
await until(() => bob.sm?.state.enabled && bob.sm.state.resumeSupported, "stream management enabled");

// 2. Chat both ways, and the server's own list of sessions.
alice.send($msg({ to: bob.jid, type: "chat" }).c("body").t("hello over BOSH"));
await until(() => bob.bodies.includes("hello over BOSH"), "bob gets alice's message");
bob.send($msg({ to: alice.jid, type: "chat" }).c("body").t("hello over WebSocket"));
await until(() => alice.bodies.includes("hello over WebSocket"), "alice gets bob's message");
const sessions = online();
for (const jid of ["alice@localhost/bosh", "bob@localhost/ws"]) {
  if (!sessions.includes(jid)) fail(`users online lacks ${jid}: ${sessions}`);
}

// 3. The WebSocket is cut (no close frame), the session hibernates, and
//    strophe resumes it on a new WebSocket.
const hibernated = logCount("session hibernates");
const gone = new Promise((r) => (bob.disconnected = r));
bob._proto.socket.terminate();
await withTimeout(gone, "strophe notices the WebSocket is gone");
await waitForLog("session hibernates", hibernated);
alice.send($msg({ to: "bob@localhost/ws", type: "chat" }).c("body").t("while you were away"));
// The message reaches the hibernating session (a ping round trip on
// Alice's side orders it before anything later).
if (!(await ping(alice, "localhost")).ok) fail("alice's ping");
bob.disconnected = null;
const before = bob.sent.length;
await connect(bob, "bob@localhost/ws", "bob-pw", "bob reconnects");
if (!bob.hasResumed()) fail("the session was not resumed");
const again = bob.sent.slice(before);
if (!again.some((s) => s.includes("<resume ") && s.includes("urn:xmpp:sm:3"))) {
  fail("strophe sent no <resume/>");
}
if (again.some((s) => s.includes("urn:ietf:params:xml:ns:xmpp-bind"))) {
  fail("strophe bound a new resource instead of resuming");
}
await until(() => bob.bodies.includes("while you were away"), "the message kept for bob");
// Nothing else: after a ping round trip Bob has exactly the two messages.
if (!(await ping(bob, "localhost")).ok) fail("bob's ping after resuming");
if (JSON.stringify(bob.bodies) !== JSON.stringify(["hello over BOSH", "while you were away"])) {
  fail(`bob got ${JSON.stringify(bob.bodies)}`);
}
bob.send($msg({ to: alice.jid, type: "chat" }).c("body").t("back again"));
await until(() => alice.bodies.includes("back again"), "alice hears from the resumed session");

// 4. Alice logs out over BOSH: a terminate body, then her session is gone.
const out = new Promise((r) => (alice.disconnected = r));
alice.disconnect("bye");
await withTimeout(out, "alice logs out");
if (!alice.sent.some((s) => /type=["']terminate["']/.test(s))) fail("strophe sent no terminate");
await until(() => !online().includes("alice@localhost/bosh"), "alice's session ends on the server");
const after = await ping(bob, "alice@localhost/bosh");
if (after.ok) fail("a ping to alice's old session was answered");
if (!online().includes("bob@localhost/ws")) fail("bob's session went away too");
const bobOut = new Promise((r) => (bob.disconnected = r));
bob.disconnect("bye");
await withTimeout(bobOut, "bob logs out");

console.log(
  "strophe.js 5.0 in Node: BOSH login with SCRAM, chat with a WebSocket client, BOSH logout; " +
    "WebSocket login with stream management, the WebSocket cut and the session resumed, every message once: OK",
);
process.exit(0);
