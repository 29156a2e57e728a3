// The web side in a real browser: headless Chromium (Debian's chromium,
// driven by playwright-core) against the real `switchboard` binary.
//
// (a) The chat page: converse.js logs alice in over WebSocket, chats with
//     bob (xmpp.js over TCP, peer.mjs), uploads an image that bob fetches
//     and compares, and joins a room at conference.localhost where bob
//     is too.
// (b) The admin console: boss logs in, creates dave (who then logs in
//     over XMPP), sees dave's session, sends an announcement that dave
//     and bob receive, and kicks dave, whose client sees its stream
//     closed.
//
// Every step checks something a user sees: text on the page, a message
// received. Screenshots of each step go to OUTDIR (CI artifacts), and of
// every page on failure. Exits 0 on success, 1 with the failed step;
// bounded by an overall timeout.
//
// Usage: node run.mjs PATH/TO/switchboard OUTDIR

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const binary = resolve(process.argv[2] ?? "target/debug/switchboard");
const out = resolve(process.argv[3] ?? join(tmpdir(), "switchboard-browser"));
mkdirSync(out, { recursive: true });
// Screenshots of an earlier run would be mistaken for this one's.
for (const f of readdirSync(out)) if (f.endsWith(".png")) rmSync(join(out, f));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const STEP_MS = 30_000;
const TOTAL_MS = 300_000;

const home = mkdtempSync(join(tmpdir(), "switchboard-browser-"));
const config = join(home, "switchboard.xml");
writeFileSync(
  config,
  `<switchboard>
  <host name="localhost"><admin>boss@localhost</admin><registration>off</registration></host>
  <service id="conference.localhost" type="muc"/>
  <service id="upload.localhost" type="upload" max-file-size="1M"/>
  <listen><c2s addr="127.0.0.1:0"/><https addr="127.0.0.1:0"/></listen>
  <web chat-dir="${join(here, "node_modules", "converse.js")}"/>
  <tls required="true"/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
`,
);
const base = ["-H", home, "-c", config];
for (const user of ["alice", "bob", "boss"]) {
  const r = spawnSync(binary, [...base, "user", "add", `${user}@localhost`], { input: `${user}-pw\n` });
  if (r.status !== 0) {
    console.log(`browser: FAILED: user add ${user}: ${r.stderr}`);
    process.exit(1);
  }
}

const server = spawn(binary, [...base, "run"], { stdio: ["ignore", "pipe", "inherit"] });
const peers = [];
let browser = null;
const pages = {};

async function cleanup() {
  for (const p of peers) p.kill();
  if (browser) await browser.close().catch(() => {});
  try {
    server.kill("SIGTERM");
  } catch {}
}

async function fail(msg) {
  console.log(`browser: FAILED: ${msg}`);
  for (const [name, page] of Object.entries(pages)) {
    await page
      .screenshot({ path: join(out, `failure-${name}.png`), fullPage: true, timeout: 5000 })
      .catch(() => {});
  }
  try {
    const log = readFileSync(join(home, "logs", "switchboard.log"), "utf8");
    console.log("--- the server's log (last lines) ---");
    console.log(log.split("\n").slice(-40).join("\n"));
  } catch {}
  await cleanup();
  process.exit(1);
}

setTimeout(() => fail(`the whole run took over ${TOTAL_MS / 1000} s`), TOTAL_MS).unref();

let c2sPort = null;
let httpsPort = null;
const lines = createInterface({ input: server.stdout });
for await (const line of lines) {
  const m = line.match(/^listening c2s 127\.0\.0\.1:(\d+)$/);
  if (m) c2sPort = m[1];
  const h = line.match(/^listening https 127\.0\.0\.1:(\d+)$/);
  if (h) httpsPort = h[1];
  if (line.trim() === "ready") break;
}
if (!c2sPort || !httpsPort) await fail("the server did not report its listening ports");
const origin = `https://localhost:${httpsPort}`;

/// One XMPP user in a child process (peer.mjs), trusting the server's
/// certificate; its events are kept for `waitFor`.
function peer(user, password) {
  const child = spawn(process.execPath, ["--dns-result-order=ipv4first", join(here, "peer.mjs"), c2sPort, user, password], {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: join(home, "etc", "localhost.crt") },
  });
  const events = [];
  const waiting = new Set();
  createInterface({ input: child.stdout }).on("line", (l) => {
    try {
      events.push(JSON.parse(l));
    } catch {
      return;
    }
    for (const w of waiting) w();
  });
  const p = {
    user,
    events,
    kill: () => child.kill(),
    send: (cmd) => child.stdin.write(JSON.stringify(cmd) + "\n"),
    // The first event (not yet taken) that `pred` accepts; taken.
    waitFor: (what, pred) =>
      new Promise((res, rej) => {
        const check = () => {
          const i = events.findIndex((e) => !e.taken && pred(e));
          if (i >= 0) {
            events[i].taken = true;
            waiting.delete(check);
            clearTimeout(t);
            res(events[i]);
          } else {
            const failed = events.find((e) => e.event === "failed");
            if (failed) {
              waiting.delete(check);
              clearTimeout(t);
              rej(new Error(`${user}: ${failed.op} failed: ${failed.reason}`));
            }
          }
        };
        const t = setTimeout(() => {
          waiting.delete(check);
          rej(new Error(`${user} never got ${what}; got ${JSON.stringify(events)}`));
        }, STEP_MS);
        waiting.add(check);
        check();
      }),
  };
  peers.push(p);
  return p;
}

let stepNo = 0;
async function step(name, fn) {
  stepNo += 1;
  try {
    await fn();
    console.log(`browser: ok ${stepNo} ${name}`);
  } catch (e) {
    await fail(`step ${stepNo} (${name}): ${e?.stack ?? e}`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(out, `${String(stepNo).padStart(2, "0")}-${name}.png`), fullPage: true });
}

/// Waits until `text` is visible on the page.
async function sees(page, text, within = page) {
  await within.getByText(text, { exact: false }).first().waitFor({ state: "visible", timeout: STEP_MS });
}

/// A 16×16 PNG, made here (solid blue), so the test ships no binary file.
function png() {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const w = 16;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(w, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array(w).fill([38, 128, 194]).flat())]);
  const raw = Buffer.concat(Array(w).fill(row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
  ],
});
// The server's certificate is self-signed, made at its first start; the
// browser is told to accept it (the peers verify it properly).
const newPage = async (name) => {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP_MS);
  pages[name] = page;
  return page;
};

// ---------------------------------------------------------------- (a)

const chat = await newPage("chat");
const bob = peer("bob", "bob-pw");

await step("converse.js logs alice in over WebSocket", async () => {
  await chat.goto(`${origin}/`);
  await chat.locator("#converse-login-jid").fill("alice");
  await chat.locator("#converse-login-password").fill("alice-pw");
  await chat.locator("#converse-login [type=submit]").click();
  await chat.locator("converse-user-profile .username").getByText("alice@localhost").waitFor();
  await bob.waitFor("being online", (e) => e.event === "online");
  await shot(chat, "converse-logged-in");
});

await step("bob's message shows in converse, alice's answer reaches bob", async () => {
  bob.send({ op: "send", to: "alice@localhost", body: "Hello Alice, this is Bob on xmpp.js" });
  // The contact list shows bob with an unread message; opening it shows
  // the message.
  await chat.locator('a.open-chat[data-jid="bob@localhost"]').first().click();
  await sees(chat, "Hello Alice, this is Bob on xmpp.js");
  const box = chat.locator('converse-chat[jid="bob@localhost"]');
  const text = box.locator("textarea.chat-textarea");
  await text.fill("Hi Bob, from a browser");
  await text.press("Enter");
  const m = await bob.waitFor("alice's answer", (e) => e.event === "message" && e.body === "Hi Bob, from a browser");
  if (!m.from.startsWith("alice@localhost/")) throw new Error(`the answer came from ${m.from}`);
  await sees(chat, "Hi Bob, from a browser");
  await shot(chat, "converse-chat");
});

const image = png();
await step("alice uploads an image in the chat; bob fetches the same bytes", async () => {
  const box = chat.locator('converse-chat[jid="bob@localhost"]');
  await box.locator("input.fileupload").setInputFiles({ name: "blue.png", mimeType: "image/png", buffer: image });
  const m = await bob.waitFor("the upload's link", (e) => e.event === "message" && /^https:\/\/.*\/upload\//.test(e.body));
  bob.send({ op: "fetch", url: m.body.trim() });
  const f = await bob.waitFor("the fetched file", (e) => e.event === "fetched");
  const want = createHash("sha256").update(image).digest("hex");
  if (f.status !== 200 || f.sha256 !== want || f.type !== "image/png") {
    throw new Error(`fetched ${JSON.stringify(f)}, wanted 200 image/png ${want}`);
  }
  // Converse shows the image inline from the same URL.
  await box.locator(`img[src="${m.body.trim()}"]`).first().waitFor({ state: "attached" });
  await shot(chat, "converse-upload");
});

await step("alice joins a room at conference.localhost and talks with bob there", async () => {
  const room = "lobby@conference.localhost";
  await chat.locator("converse-rooms-list .dropdown-toggle").first().click();
  await chat.locator(".show-add-muc-modal").first().click();
  const modal = chat.locator("converse-add-muc-modal, #add-chatrooms-modal").first();
  await modal.locator('input[name="chatroom"]').fill(room);
  const nick = modal.locator('input[name="nickname"]');
  if (await nick.count()) await nick.fill("alice");
  await modal.locator('[type="submit"]').first().click();
  const muc = chat.locator(`converse-muc[jid="${room}"]`);
  await muc.locator("textarea.chat-textarea").waitFor();
  bob.send({ op: "join", room, nick: "bob" });
  await bob.waitFor("his presence in the room", (e) => e.event === "presence" && e.from === `${room}/bob`);
  bob.send({ op: "send", to: room, type: "groupchat", body: "Morning, room!" });
  await sees(chat, "Morning, room!", muc);
  const text = muc.locator("textarea.chat-textarea");
  await text.fill("Hello from the browser, room");
  await text.press("Enter");
  const m = await bob.waitFor(
    "alice's groupchat message",
    (e) => e.event === "message" && e.type === "groupchat" && e.body === "Hello from the browser, room",
  );
  if (!m.from.startsWith(`${room}/`)) throw new Error(`it came from ${m.from}`);
  await shot(chat, "converse-room");
});

// ---------------------------------------------------------------- (b)

const admin = await newPage("admin");
let dave = null;

await step("the admin console logs boss in", async () => {
  await admin.goto(`${origin}/admin/`);
  await sees(admin, "Log in with the XMPP account of an administrator");
  await admin.locator('input[name="jid"]').fill("boss@localhost");
  await admin.locator('input[name="password"]').fill("boss-pw");
  await admin.getByRole("button", { name: "Log in" }).click();
  await admin.getByRole("heading", { name: "Server status" }).waitFor();
  // Alice (converse) and bob are online.
  const sessions = Number(await admin.locator("#sessions").innerText());
  if (!(sessions >= 2)) throw new Error(`the status page shows ${sessions} sessions`);
  await sees(admin, "conference.localhost");
  await shot(admin, "admin-status");
});

await step("the console creates dave, who logs in over XMPP", async () => {
  await admin.getByRole("link", { name: "Users" }).click();
  const form = admin.locator('form[action="/admin/users/add"]');
  await form.locator('input[name="user"]').fill("dave");
  await form.locator('input[name="password"]').fill("dave-pw");
  await form.getByRole("button", { name: "Create" }).click();
  await sees(admin, "dave@localhost is created.");
  await admin.locator("td.jid", { hasText: "dave@localhost" }).waitFor();
  dave = peer("dave", "dave-pw");
  await dave.waitFor("being online", (e) => e.event === "online");
  await shot(admin, "admin-users");
});

await step("the console shows dave's session", async () => {
  await admin.getByRole("link", { name: "Sessions" }).click();
  await admin.locator("td.jid", { hasText: "dave@localhost/peer" }).waitFor();
  await sees(admin, "bob@localhost/peer");
  await shot(admin, "admin-sessions");
});

await step("an announcement from the console reaches dave, bob and alice", async () => {
  await admin.getByRole("link", { name: "Announcements" }).click();
  const form = admin.locator('form[action="/admin/announce"]');
  await form.locator('input[name="subject"]').fill("Maintenance");
  await form.locator('textarea[name="body"]').fill("The server restarts at five.");
  await form.getByRole("button", { name: "Send announcement" }).click();
  await sees(admin, "The announcement was sent to");
  for (const p of [dave, bob]) {
    const m = await p.waitFor("the announcement", (e) => e.event === "message" && e.body === "The server restarts at five.");
    if (m.from !== "localhost" || m.subject !== "Maintenance") throw new Error(`${p.user} got ${JSON.stringify(m)}`);
  }
  // Converse lists the server under "Announcements"; opening it shows the
  // text.
  await chat.locator("converse-headlines-feeds-list").getByText("localhost").first().click();
  await sees(chat, "The server restarts at five.");
  await shot(admin, "admin-announce");
  await shot(chat, "converse-announcement");
});

await step("the console kicks dave; his client sees the stream closed", async () => {
  await admin.getByRole("link", { name: "Sessions" }).click();
  const row = admin.locator("tr", { has: admin.locator("td.jid", { hasText: "dave@localhost/peer" }) });
  await row.getByRole("button", { name: "Kick" }).click();
  await sees(admin, "1 session(s) closed.");
  const closed = await dave.waitFor("the end of his stream", (e) => e.event === "closed");
  // xmpp.js reports the stream error it read, unless the socket's end
  // overtook it; the server says whom it kicked either way.
  const log = readFileSync(join(home, "logs", "switchboard.log"), "utf8");
  const kickedDave = log.split("\n").some((l) => l.includes("kicked by an administrator") && l.includes("dave@localhost/peer"));
  if (!/policy-violation/.test(closed.reason) && !kickedDave) {
    throw new Error(`dave's stream ended with "${closed.reason}", and the server logged no kick`);
  }
  console.log(`browser: dave's client: ${closed.reason}`);
  // The session leaves the table as its connection ends, just after the
  // page above was made: the list, reloaded, no longer has it.
  for (let i = 0; ; i++) {
    await admin.getByRole("link", { name: "Sessions" }).click();
    await sees(admin, "sessions online.");
    if ((await admin.locator("td.jid", { hasText: "dave@localhost" }).count()) === 0) break;
    if (i === 40) throw new Error("dave is still listed after the kick");
    await admin.waitForTimeout(250);
  }
  await sees(admin, "bob@localhost/peer");
  await shot(admin, "admin-kicked");
});

await cleanup();
const status = await new Promise((r) => (server.exitCode !== null ? r(server.exitCode) : server.on("exit", r)));
rmSync(home, { recursive: true, force: true });
if (status !== 0) {
  console.log(`browser: FAILED: the server exited with ${status}`);
  process.exit(1);
}
console.log(`browser: screenshots in ${out}`);
console.log(`browser: ${stepNo} passed, 0 failed`);
process.exit(0);
