// A generic AMQP 1.0 client, rhea, against an Outpost event hub: no Azure SDK,
// no CBS. It connects over TLS with SASL PLAIN (username = the namespace's
// SAS key name, password = the key), reads the partition ids with a
// $management READ request, sends three messages to the event hub's address
// (one partition key, so one partition and in order), each accepted, and
// reads them back from {hub}/ConsumerGroups/$Default/Partitions/{p} with
// rhea's own selector filter from the start (rhea.filter.selector: the filter
// key is 'jms-selector'; the descriptor is the standard selector descriptor
// 0x0000468C00000004, so the server must match the filter by its
// descriptor, not its key). Attaching to an entity that does not exist is
// refused with a detach whose condition is amqp:not-found.
// The Go driver is TestNPMAMQPRhea (test/e2e/amqp_npm_test.go).
//
// Environment: EVENTHUB_HOST (namespace host name), EVENTHUB_NAME (nothing
// sent yet), EVENTHUB_KEY_NAME, EVENTHUB_KEY, AMQP_PORT (default 5671);
// the CA is trusted through NODE_EXTRA_CA_CERTS.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import rhea from "rhea";
import { requireEnv } from "./lib/env.mjs";

const host = requireEnv("EVENTHUB_HOST");
const hubName = requireEnv("EVENTHUB_NAME");
const keyName = requireEnv("EVENTHUB_KEY_NAME");
const key = requireEnv("EVENTHUB_KEY");
const port = Number(process.env.AMQP_PORT || "5671");

const connections = [];
after(() => {
  for (const c of connections) {
    try {
      c.close();
    } catch {
      // already gone
    }
  }
});

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Opens a connection with SASL PLAIN over TLS and waits for the open. */
async function connect() {
  const container = rhea.create_container({ id: `rhea-conformance-${process.pid}` });
  const conn = container.connect({
    host,
    port,
    transport: "tls",
    servername: host,
    hostname: host,
    username: keyName,
    password: key,
    reconnect: false,
    idle_time_out: 30000,
  });
  connections.push(conn);
  await withTimeout(
    new Promise((resolve, reject) => {
      conn.once("connection_open", resolve);
      conn.once("connection_error", (ctx) => {
        const e = ctx.error ?? ctx.connection.error;
        reject(new Error(`connection_error (a failed SASL outcome is amqp:unauthorized-access): ${e?.condition ?? ""} ${e?.description ?? e?.message ?? JSON.stringify(e)}`));
      });
      conn.once("disconnected", (ctx) => reject(new Error(`disconnected before open: ${ctx.error ?? "no error"}`)));
    }),
    15000,
    `AMQP open with SASL PLAIN to ${host}:${port}`,
  );
  return conn;
}

/**
 * Waits for the peer's attach, or its refusal. A refusal is an attach with a
 * null source (for our receiver) or target (for our sender), then a detach
 * with the error; rhea reports the attach as an open first. With graceMs, an
 * attach that does echo the terminus still counts as refused if a detach
 * with an error follows within that time (what a refusal test wants to see).
 */
function attached(link, graceMs = 0) {
  const prefix = link.is_receiver() ? "receiver" : "sender";
  return withTimeout(
    new Promise((resolve, reject) => {
      link.once(`${prefix}_open`, () => {
        const terminus = link.is_receiver() ? link.remote.attach?.source : link.remote.attach?.target;
        if (terminus) setTimeout(() => resolve(link), graceMs);
      });
      link.once(`${prefix}_error`, () => reject(Object.assign(new Error(`${prefix} refused: ${JSON.stringify(link.error)}`), { amqp: link.error })));
    }),
    10000 + graceMs,
    `attach of ${link.name}`,
  );
}

/** The bytes of a rhea message body: a data section, or whatever was sent. */
function bodyText(message) {
  const b = message.body;
  if (b && b.typecode === 0x75) return Buffer.from(b.content).toString();
  if (Buffer.isBuffer(b)) return b.toString();
  return typeof b === "string" ? b : JSON.stringify(b);
}

/** An Event Hubs SAS token, signed with the key string itself. */
function sasToken(resource) {
  const sr = encodeURIComponent(resource);
  const se = Math.floor(Date.now() / 1000) + 3600;
  const sig = encodeURIComponent(createHmac("sha256", key).update(`${sr}\n${se}`).digest("base64"));
  return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${se}&skn=${keyName}`;
}

async function partitionIds(conn) {
  const replyTo = `rhea-reply-${Date.now()}`;
  const receiver = conn.open_receiver({ source: { address: "$management" }, target: { address: replyTo }, credit_window: 10 });
  const sender = conn.open_sender({ target: { address: "$management" } });
  await Promise.all([attached(receiver), attached(sender)]);
  const response = new Promise((resolve) => receiver.once("message", (ctx) => resolve(ctx.message)));
  if (!sender.sendable()) await withTimeout(new Promise((r) => sender.once("sendable", r)), 10000, "credit on $management");
  sender.send({
    message_id: "rhea-read-1",
    reply_to: replyTo,
    application_properties: {
      operation: "READ",
      name: hubName,
      type: "com.microsoft:eventhub",
      security_token: sasToken(`sb://${host}/${hubName}`),
    },
    body: rhea.message.data_section(Buffer.from("[]")),
  });
  const m = await withTimeout(response, 10000, "the $management READ answer");
  assert.equal(m.correlation_id, "rhea-read-1");
  assert.equal(m.application_properties?.["status-code"], 200, JSON.stringify(m.application_properties));
  assert.equal(m.body?.name, hubName, JSON.stringify(m.body));
  receiver.close();
  sender.close();
  return m.body.partition_ids;
}

test("SASL PLAIN: send three messages to the hub and read them from their partition", { timeout: 30000 }, async () => {
  const conn = await connect();
  const ids = await partitionIds(conn);
  assert.ok(Array.isArray(ids) && ids.length >= 1, `partition_ids ${JSON.stringify(ids)}`);

  const sender = conn.open_sender({ target: { address: hubName } });
  await attached(sender);
  const outcomes = [];
  const allSettled = new Promise((resolve, reject) => {
    const settle = (state) => (ctx) => {
      outcomes.push({ id: ctx.delivery.id, state, error: ctx.delivery.remote_state?.error });
      if (outcomes.length === 3) resolve();
    };
    sender.on("accepted", settle("accepted"));
    sender.on("rejected", settle("rejected"));
    sender.on("released", settle("released"));
    sender.on("modified", settle("modified"));
    sender.once("sender_error", () => reject(new Error(`sender detached: ${JSON.stringify(sender.error)}`)));
  });
  for (let i = 0; i < 3; i++) {
    if (!sender.sendable()) await withTimeout(new Promise((r) => sender.once("sendable", r)), 10000, "credit to send");
    sender.send({
      message_id: `rhea-${i}`,
      message_annotations: { "x-opt-partition-key": "rhea" },
      application_properties: { client: "rhea", i },
      body: rhea.message.data_section(Buffer.from(`rhea message ${i}`)),
    });
  }
  await withTimeout(allSettled, 10000, "dispositions for the three messages");
  assert.deepEqual(outcomes.map((o) => o.state), ["accepted", "accepted", "accepted"], JSON.stringify(outcomes));

  const received = [];
  const gotAll = new Promise((resolve, reject) => {
    for (const p of ids) {
      const receiver = conn.open_receiver({
        source: {
          address: `${hubName}/ConsumerGroups/$Default/Partitions/${p}`,
          filter: rhea.filter.selector("amqp.annotation.x-opt-offset > '-1'"),
        },
        credit_window: 50,
      });
      receiver.on("message", (ctx) => {
        received.push({ partition: p, message: ctx.message });
        if (received.length === 3) setTimeout(resolve, 1000); // a duplicate would show up meanwhile
      });
      receiver.once("receiver_error", () => reject(new Error(`receiver for partition ${p} detached: ${JSON.stringify(receiver.error)}`)));
    }
  });
  await withTimeout(gotAll, 15000, `reading the three messages (read ${received.length})`);
  assert.equal(received.length, 3);
  assert.equal(new Set(received.map((r) => r.partition)).size, 1, "one partition key, one partition");
  received.forEach(({ message: m }, i) => {
    assert.equal(bodyText(m), `rhea message ${i}`);
    assert.equal(m.message_id, `rhea-${i}`);
    assert.deepEqual(m.application_properties, { client: "rhea", i });
    const ann = m.message_annotations ?? {};
    assert.equal(ann["x-opt-partition-key"], "rhea");
    assert.equal(Number(ann["x-opt-sequence-number"]), i, JSON.stringify(ann));
    assert.match(String(ann["x-opt-offset"]), /^\d+$/);
    assert.ok(ann["x-opt-enqueued-time"] instanceof Date, `x-opt-enqueued-time ${ann["x-opt-enqueued-time"]}`);
  });
});

test("attaching to an entity that does not exist is refused with amqp:not-found", { timeout: 30000 }, async () => {
  const conn = await connect();
  const missing = `no-such-hub-${Date.now()}`;
  const receiver = conn.open_receiver({ source: { address: `${missing}/ConsumerGroups/$Default/Partitions/0` } });
  await assert.rejects(attached(receiver, 2000), (err) => {
    assert.equal(err.amqp?.condition, "amqp:not-found", err.message);
    return true;
  });
  const sender = conn.open_sender({ target: { address: missing } });
  await assert.rejects(attached(sender, 2000), (err) => {
    assert.equal(err.amqp?.condition, "amqp:not-found", err.message);
    return true;
  });
  // The connection survives a refused attach.
  const ids = await partitionIds(conn);
  assert.ok(ids.length >= 1);
});
