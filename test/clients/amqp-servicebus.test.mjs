// Unmodified @azure/service-bus (AMQP 1.0 over TLS on 5671) against an Outpost
// Service Bus namespace: queue messages received in peek-lock mode are
// completed (gone), abandoned (delivered again with deliveryCount 1) and
// dead-lettered (read from the dead-letter sub-queue with the reason and
// description); receive-and-delete takes messages without settling; a topic's
// subscription gets what is sent to the topic; renewMessageLock moves the
// lock's expiry; peekMessages reads without locking.
// The Go driver is TestNPMAMQPServiceBus (test/e2e/amqp_npm_test.go).
//
// Environment: SERVICEBUS_CONNECTION_STRING (namespace RootManageSharedAccessKey,
// no EntityPath), SERVICEBUS_QUEUE (empty), SERVICEBUS_TOPIC,
// SERVICEBUS_SUBSCRIPTION (a subscription of the topic, no filter).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ServiceBusClient } from "@azure/service-bus";
import { requireEnv } from "./lib/env.mjs";

const connectionString = requireEnv("SERVICEBUS_CONNECTION_STRING");
const queue = requireEnv("SERVICEBUS_QUEUE");
const topic = requireEnv("SERVICEBUS_TOPIC");
const subscription = requireEnv("SERVICEBUS_SUBSCRIPTION");

// Few, quick retries: a wrong answer should fail the test, not stall it.
const client = new ServiceBusClient(connectionString, {
  retryOptions: { maxRetries: 1, retryDelayInMs: 200, timeoutInMs: 10000 },
});
const closers = [];
function track(x) {
  closers.push(x);
  return x;
}
after(async () => {
  for (const c of closers.reverse()) await c.close().catch(() => {});
  await client.close().catch(() => {});
});

// Locks are renewed by the test itself, never behind its back.
const peekLock = { receiveMode: "peekLock", maxAutoLockRenewalDurationInMs: 0 };

/** Receives until n messages arrived or withinMs passed. */
async function receive(receiver, n, withinMs = 10000) {
  const deadline = Date.now() + withinMs;
  const got = [];
  while (got.length < n && Date.now() < deadline) {
    const wait = Math.max(100, Math.min(3000, deadline - Date.now()));
    got.push(...(await receiver.receiveMessages(n - got.length, { maxWaitTimeInMs: wait })));
  }
  return got;
}

/** Asserts that nothing arrives within ms. */
async function expectNothing(receiver, ms, what) {
  const extra = await receiver.receiveMessages(10, { maxWaitTimeInMs: ms });
  assert.deepEqual(extra.map((m) => m.messageId), [], what);
}

const ids = (msgs) => msgs.map((m) => m.messageId).sort();

test("peek-lock: complete, abandon (delivered again) and dead-letter", { timeout: 30000 }, async () => {
  const sender = track(client.createSender(queue));
  await sender.sendMessages(
    ["done", "again", "dead"].map((name, i) => ({
      body: { name, i },
      messageId: `pl-${name}`,
      contentType: "application/json",
      correlationId: `corr-${name}`,
      subject: "peek-lock",
      applicationProperties: { name, i },
    })),
  );
  const receiver = track(client.createReceiver(queue, peekLock));
  const first = await receive(receiver, 3);
  assert.deepEqual(ids(first), ["pl-again", "pl-dead", "pl-done"]);
  const byName = Object.fromEntries(first.map((m) => [m.body.name, m]));
  let lastSeq = -1;
  for (const m of first) {
    assert.deepEqual(m.body, { name: m.applicationProperties.name, i: m.applicationProperties.i });
    assert.equal(m.contentType, "application/json");
    assert.equal(m.correlationId, `corr-${m.body.name}`);
    assert.equal(m.subject, "peek-lock");
    assert.equal(m.deliveryCount, 0, `${m.messageId} deliveryCount on the first delivery`);
    assert.match(m.lockToken ?? "", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
    assert.ok(m.lockedUntilUtc instanceof Date && m.lockedUntilUtc.getTime() > Date.now(), `${m.messageId} lockedUntilUtc`);
    assert.ok(m.enqueuedTimeUtc instanceof Date);
    const seq = Number(m.sequenceNumber);
    assert.ok(seq > lastSeq, `sequence numbers ${first.map((x) => String(x.sequenceNumber))}`);
    lastSeq = seq;
  }

  await receiver.completeMessage(byName.done);
  await receiver.abandonMessage(byName.again);
  await receiver.deadLetterMessage(byName.dead, {
    deadLetterReason: "BadPayload",
    deadLetterErrorDescription: "the payload was not understood",
  });

  const again = await receive(receiver, 1);
  assert.deepEqual(ids(again), ["pl-again"]);
  assert.equal(again[0].deliveryCount, 1, "an abandoned message comes back with deliveryCount 1");
  assert.equal(String(again[0].sequenceNumber), String(byName.again.sequenceNumber));
  await receiver.completeMessage(again[0]);
  await expectNothing(receiver, 1500, "the queue is empty after complete, abandon+complete and dead-letter");

  const dlq = track(client.createReceiver(queue, { ...peekLock, subQueueType: "deadLetter" }));
  const dead = await receive(dlq, 1);
  assert.deepEqual(ids(dead), ["pl-dead"]);
  assert.equal(dead[0].deadLetterReason, "BadPayload");
  assert.equal(dead[0].deadLetterErrorDescription, "the payload was not understood");
  assert.deepEqual(dead[0].body, { name: "dead", i: 2 });
  await dlq.completeMessage(dead[0]);
  await expectNothing(dlq, 1000, "the dead-letter queue is empty after complete");
});

test("renewMessageLock moves the lock's expiry", { timeout: 30000 }, async () => {
  const sender = track(client.createSender(queue));
  await sender.sendMessages({ body: "renew me", messageId: "renew" });
  const receiver = track(client.createReceiver(queue, peekLock));
  const [m] = await receive(receiver, 1);
  assert.equal(m?.messageId, "renew");
  const before = m.lockedUntilUtc.getTime();
  await new Promise((r) => setTimeout(r, 1100));
  const renewed = await receiver.renewMessageLock(m);
  assert.ok(renewed instanceof Date, `renewMessageLock returned ${renewed}`);
  assert.ok(renewed.getTime() > before, `renewed to ${renewed.toISOString()}, was ${new Date(before).toISOString()}`);
  assert.equal(m.lockedUntilUtc.getTime(), renewed.getTime());
  await receiver.completeMessage(m);
});

test("peekMessages reads without locking", { timeout: 30000 }, async () => {
  const sender = track(client.createSender(queue));
  await sender.sendMessages([
    { body: "peek 1", messageId: "peek-1" },
    { body: "peek 2", messageId: "peek-2" },
  ]);
  const peeker = track(client.createReceiver(queue, peekLock));
  const peeked = await peeker.peekMessages(10);
  assert.deepEqual(ids(peeked), ["peek-1", "peek-2"]);
  for (const m of peeked) {
    assert.equal(m.lockToken, undefined, "a peeked message has no lock");
    assert.ok(Number(m.sequenceNumber) >= 0);
  }
  // Peeking locked nothing: a peek-lock receiver gets both at once.
  const receiver = track(client.createReceiver(queue, peekLock));
  const got = await receive(receiver, 2);
  assert.deepEqual(ids(got), ["peek-1", "peek-2"]);
  assert.deepEqual(got.map((m) => m.deliveryCount), [0, 0]);
  for (const m of got) await receiver.completeMessage(m);
});

test("receive-and-delete takes messages without settling", { timeout: 30000 }, async () => {
  const sender = track(client.createSender(queue));
  await sender.sendMessages([
    { body: "rad 1", messageId: "rad-1" },
    { body: "rad 2", messageId: "rad-2" },
  ]);
  const receiver = track(client.createReceiver(queue, { receiveMode: "receiveAndDelete" }));
  const got = await receive(receiver, 2);
  assert.deepEqual(ids(got), ["rad-1", "rad-2"]);
  assert.deepEqual(got.map((m) => m.body).sort(), ["rad 1", "rad 2"]);
  const check = track(client.createReceiver(queue, peekLock));
  await expectNothing(check, 1500, "receive-and-delete left messages behind");
});

test("a topic's subscription gets what is sent to the topic", { timeout: 30000 }, async () => {
  const sender = track(client.createSender(topic));
  await sender.sendMessages({ body: { hello: "subscribers" }, messageId: "topic-1", applicationProperties: { color: "red" } });
  const receiver = track(client.createReceiver(topic, subscription, peekLock));
  const [m] = await receive(receiver, 1);
  assert.equal(m?.messageId, "topic-1");
  assert.deepEqual(m.body, { hello: "subscribers" });
  assert.equal(m.applicationProperties.color, "red");
  await receiver.completeMessage(m);
  await expectNothing(receiver, 1000, "the subscription is empty after complete");
});
