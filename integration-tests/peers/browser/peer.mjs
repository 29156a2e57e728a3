// The other side of the browser test: one XMPP user with xmpp.js
// (@xmpp/client) over TCP with STARTTLS, the server's certificate
// verified (run.mjs starts this with NODE_EXTRA_CA_CERTS). Driven by
// run.mjs through JSON lines:
//
//   stdin:  {"op":"send","to":J,"body":B,"type":"chat"|"groupchat"}
//           {"op":"join","room":R,"nick":N}
//           {"op":"fetch","url":U}         (GET, answers with the bytes' hash)
//           {"op":"stop"}
//   stdout: {"event":"online","jid":J}
//           {"event":"message","from":F,"type":T,"body":B,"subject":S}
//           {"event":"presence","from":F,"type":T}
//           {"event":"fetched","status":N,"type":C,"length":L,"sha256":H}
//           {"event":"closed","reason":R}  (the server ended the stream)
//
// Arguments: C2S-PORT USER PASSWORD.
import { client, xml } from "@xmpp/client";
import { createHash } from "node:crypto";
import { createInterface } from "node:readline";

const [port, username, password] = process.argv.slice(2);
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const x = client({
  service: `xmpp://127.0.0.1:${port}`,
  domain: "localhost",
  username,
  password,
  resource: "peer",
});
// A kicked session must stay kicked: no reconnecting.
x.reconnect.stop();
// Why the stream ended: the stream error's condition and text when the
// server sent one (read off the wire), then whatever the library said.
let closed = false;
const reasons = [];
const close = (why) => {
  if (why) reasons.push(why);
  if (closed) return;
  closed = true;
  // Let a stream error read in the same turn join the reasons.
  setTimeout(() => emit({ event: "closed", reason: reasons.join("; ") }), 500);
};
x.on("element", (el) => {
  if (el.name === "stream:error" || (el.getName?.() === "error" && el.attrs?.xmlns === undefined)) {
    const condition = el.children.find((c) => typeof c !== "string" && c.name !== "text")?.name ?? "";
    const text = el.getChildText?.("text") ?? "";
    reasons.push(`${condition}${text ? `: ${text}` : ""}`);
  }
});
x.on("error", (e) => {
  const text = e?.element?.getChildText?.("text") ?? "";
  close(`${e?.condition || e?.message || e?.name || String(e)}${text ? `: ${text}` : ""}`);
});
x.on("offline", () => close("offline"));
x.on("disconnect", () => close("disconnected"));
x.on("stanza", (s) => {
  if (s.is("message")) {
    const body = s.getChildText("body");
    if (body !== null) {
      emit({
        event: "message",
        from: s.attrs.from,
        type: s.attrs.type ?? "normal",
        body,
        subject: s.getChildText("subject"),
      });
    }
  } else if (s.is("presence")) {
    emit({ event: "presence", from: s.attrs.from, type: s.attrs.type ?? "available" });
  }
});
x.on("online", async (jid) => {
  await x.send(xml("presence"));
  emit({ event: "online", jid: jid.toString() });
});

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch {
    return;
  }
  try {
    if (cmd.op === "send") {
      await x.send(xml("message", { to: cmd.to, type: cmd.type ?? "chat" }, xml("body", {}, cmd.body)));
    } else if (cmd.op === "join") {
      await x.send(
        xml("presence", { to: `${cmd.room}/${cmd.nick}` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })),
      );
    } else if (cmd.op === "fetch") {
      const r = await fetch(cmd.url);
      const bytes = Buffer.from(await r.arrayBuffer());
      emit({
        event: "fetched",
        status: r.status,
        type: r.headers.get("content-type"),
        length: bytes.length,
        sha256: createHash("sha256").update(bytes).digest("hex"),
      });
    } else if (cmd.op === "stop") {
      closed = true;
      await x.stop().catch(() => {});
      process.exit(0);
    }
  } catch (e) {
    emit({ event: "failed", op: cmd.op, reason: String(e?.message ?? e) });
  }
});
lines.on("close", () => process.exit(0));

x.start().catch((e) => {
  emit({ event: "failed", op: "login", reason: String(e?.message ?? e) });
  process.exit(1);
});
