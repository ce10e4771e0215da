// Unmodified @azure/event-hubs (AMQP 1.0 over TLS on 5671) against an Outpost
// event hub: what a producer sends (with a partition key, to a partition, with
// application properties, content type, message and correlation ids) is read
// back once, in order, with sequence numbers, offsets, enqueued times and
// partition keys; hub and partition properties agree with what was read;
// reading resumes after an offset, at a sequence number and at the end of the
// partition; a token credential (Azure Event Hubs Data Owner) works like the
// key; an owner-level (epoch) receiver takes a partition from a lower one; a
// wrong key is refused at once as unauthorized.
// The Go driver is TestNPMAMQPEventHubs (test/e2e/amqp_npm_test.go).
//
// Environment: EVENTHUB_CONNECTION_STRING (namespace RootManageSharedAccessKey,
// no EntityPath), EVENTHUB_NAME (4 partitions, nothing sent yet),
// EVENTHUB_HOST (the namespace's fully qualified name), and the AZURE_*
// variables of lib/env.mjs for credential().
import { test, after } from "node:test";
import assert from "node:assert/strict";
import {
  EventHubConsumerClient,
  EventHubProducerClient,
  earliestEventPosition,
  latestEventPosition,
} from "@azure/event-hubs";
import { credential, requireEnv } from "./lib/env.mjs";

const connectionString = requireEnv("EVENTHUB_CONNECTION_STRING");
const hubName = requireEnv("EVENTHUB_NAME");
const host = requireEnv("EVENTHUB_HOST");
const consumerGroup = "$Default";
// Few, quick retries: a server that answers wrongly should fail the test, not
// stall it for the SDK's default minute of back-off.
const clientOptions = { retryOptions: { maxRetries: 1, retryDelayInMs: 200, timeoutInMs: 10000 } };

const clients = [];
function track(client) {
  clients.push(client);
  return client;
}
// A client's close waits for the server's answers (detach, end, close);
// one that never comes is a server bug worth seeing, not a 90-second hang.
after(async () => {
  for (const [i, c] of clients.entries()) {
    const started = Date.now();
    let timer;
    const hung = new Promise((resolve) => {
      timer = setTimeout(() => resolve("hung"), 10000);
    });
    const outcome = await Promise.race([c.close().then(() => "closed", (e) => `failed: ${e?.message}`), hung]);
    clearTimeout(timer);
    assert.equal(outcome, "closed", `client ${i} (${c.constructor.name}) close ${outcome} after ${Date.now() - started} ms`);
  }
});

const producer = track(new EventHubProducerClient(connectionString, hubName, clientOptions));
const consumer = track(new EventHubConsumerClient(consumerGroup, connectionString, hubName, clientOptions));

/** Rejects with a message naming what did not happen in time. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function summary(e) {
  return { p: e.partitionId, seq: e.sequenceNumber, off: e.offset, key: e.partitionKey, props: e.properties };
}

/**
 * Subscribes (to one partition, or to all when partitionId is undefined) and
 * collects events until `until(events)` holds, then keeps listening for
 * settleMs so that extra events would be seen too. `ready` resolves at the
 * first processEvents call (with maxWaitTimeInSeconds 1 the SDK calls it with
 * an empty batch once the link is up and idle), so a test can send after the
 * receiver is attached.
 */
function subscribe(client, { partitionId, startPosition, until, settleMs = 1000, timeoutMs = 20000, ownerLevel }) {
  const events = [];
  let markReady;
  const ready = new Promise((resolve) => (markReady = resolve));
  let subscription;
  let finished = false;
  let settleTimer;
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => finish(new Error(`timed out after ${timeoutMs} ms with ${events.length} events: ${JSON.stringify(events.map(summary))}`)),
      timeoutMs,
    );
    function finish(err) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(settleTimer);
      Promise.resolve(subscription?.close())
        .catch(() => {})
        .then(() => (err ? reject(err) : resolve(events)));
    }
    const handlers = {
      async processEvents(batch, context) {
        markReady();
        for (const e of batch) events.push(Object.assign(e, { partitionId: context.partitionId }));
        if (!settleTimer && until(events)) settleTimer = setTimeout(() => finish(), settleMs);
      },
      async processError(err, context) {
        finish(new Error(`processError (partition ${context.partitionId}): ${err?.code ?? err?.name}: ${err?.message}`));
      },
    };
    const options = { startPosition, maxBatchSize: 100, maxWaitTimeInSeconds: 1, ownerLevel };
    subscription =
      partitionId === undefined ? client.subscribe(handlers, options) : client.subscribe(partitionId, handlers, options);
  });
  return { ready, done };
}

const atLeast = (n) => (events) => events.length >= n;
const has = (pred) => (events) => events.some(pred);

// What the first test read, for the properties test.
let firstRead;

test("sendBatch with a partition key and to a partition; read back from earliest", { timeout: 30000 }, async () => {
  const keyed = [0, 1, 2].map((i) => ({
    body: { kind: "keyed", i },
    properties: { kind: "keyed", i, flag: i % 2 === 0 },
    contentType: "application/json",
    messageId: `keyed-${i}`,
    correlationId: `corr-${i}`,
  }));
  const pinned = [0, 1, 2].map((i) => ({
    body: `pinned ${i}`,
    properties: { kind: "pinned", i },
    messageId: `pinned-${i}`,
  }));
  const started = Date.now();
  await producer.sendBatch(keyed, { partitionKey: "device-7" });
  await producer.sendBatch(pinned, { partitionId: "1" });
  // A batch object, the other way of sending.
  const batch = await producer.createBatch({ partitionId: "1" });
  assert.ok(batch.tryAdd({ body: "pinned 3", properties: { kind: "pinned", i: 3 }, messageId: "pinned-3" }));
  await producer.sendBatch(batch);

  const { done } = subscribe(consumer, { startPosition: earliestEventPosition, until: atLeast(7) });
  const events = await done;
  assert.equal(events.length, 7, `read ${JSON.stringify(events.map(summary))}`);

  const k = events.filter((e) => e.properties?.kind === "keyed");
  const p = events.filter((e) => e.properties?.kind === "pinned");
  assert.equal(k.length, 3);
  assert.equal(p.length, 4);
  // One key, one partition, the order it was sent in.
  assert.equal(new Set(k.map((e) => e.partitionId)).size, 1, `keyed events on ${k.map((e) => e.partitionId)}`);
  for (const [i, e] of k.entries()) {
    assert.deepEqual(e.body, { kind: "keyed", i });
    assert.deepEqual(e.properties, { kind: "keyed", i, flag: i % 2 === 0 });
    assert.equal(e.partitionKey, "device-7");
    assert.equal(e.contentType, "application/json");
    assert.equal(e.messageId, `keyed-${i}`);
    assert.equal(e.correlationId, `corr-${i}`);
  }
  for (const [i, e] of p.entries()) {
    assert.equal(e.partitionId, "1");
    assert.equal(e.body, `pinned ${i}`);
    assert.deepEqual(e.properties, { kind: "pinned", i });
    assert.equal(e.messageId, `pinned-${i}`);
    assert.equal(e.partitionKey ?? null, null, "an event sent to a partition has no partition key");
  }
  // Per partition: sequence numbers count up by one from 0, offsets are
  // decimal strings that grow, enqueued times are now.
  const byPartition = new Map();
  for (const e of events) {
    if (!byPartition.has(e.partitionId)) byPartition.set(e.partitionId, []);
    byPartition.get(e.partitionId).push(e);
  }
  for (const [pid, list] of byPartition) {
    list.forEach((e, i) => {
      assert.equal(e.sequenceNumber, i, `partition ${pid} event ${i}: ${JSON.stringify(summary(e))}`);
      assert.equal(typeof e.offset, "string");
      assert.match(e.offset, /^\d+$/);
      if (i > 0) assert.ok(BigInt(e.offset) > BigInt(list[i - 1].offset), `offsets of partition ${pid} do not grow`);
      assert.ok(e.enqueuedTimeUtc instanceof Date);
      const t = e.enqueuedTimeUtc.getTime();
      assert.ok(t >= started - 5000 && t <= Date.now() + 5000, `enqueuedTimeUtc ${e.enqueuedTimeUtc.toISOString()}`);
    });
  }
  firstRead = byPartition;
});

test("getEventHubProperties and getPartitionProperties agree with what was read", { timeout: 20000 }, async () => {
  assert.ok(firstRead, "needs the events of the first test");
  const hub = await producer.getEventHubProperties();
  assert.equal(hub.name, hubName);
  assert.deepEqual(hub.partitionIds, ["0", "1", "2", "3"]);
  assert.ok(hub.createdOn instanceof Date && !Number.isNaN(hub.createdOn.getTime()));
  assert.deepEqual(await consumer.getPartitionIds(), ["0", "1", "2", "3"]);

  for (const pid of hub.partitionIds) {
    const props = await consumer.getPartitionProperties(pid);
    assert.equal(props.partitionId, pid);
    assert.equal(props.eventHubName, hubName);
    const read = firstRead.get(pid);
    if (read) {
      const last = read[read.length - 1];
      assert.equal(props.isEmpty, false, `partition ${pid}`);
      assert.equal(props.beginningSequenceNumber, 0, `partition ${pid}`);
      assert.equal(props.lastEnqueuedSequenceNumber, last.sequenceNumber, `partition ${pid}`);
      assert.equal(props.lastEnqueuedOffset, last.offset, `partition ${pid}`);
      assert.equal(props.lastEnqueuedOnUtc.getTime(), last.enqueuedTimeUtc.getTime(), `partition ${pid}`);
    } else {
      assert.equal(props.isEmpty, true, `partition ${pid}: ${JSON.stringify(props)}`);
      assert.equal(props.lastEnqueuedSequenceNumber, -1, `partition ${pid}`);
    }
  }
});

test("resuming after an offset, at an offset and after a sequence number", { timeout: 30000 }, async () => {
  await producer.sendBatch(
    [0, 1, 2].map((i) => ({ body: { resume: i }, properties: { kind: "resume", i } })),
    { partitionId: "2" },
  );
  const isResume = (i) => (e) => e.properties?.kind === "resume" && e.properties.i === i;
  const all = await subscribe(consumer, { partitionId: "2", startPosition: earliestEventPosition, until: has(isResume(2)), settleMs: 0 }).done;
  const second = all.find(isResume(1));
  const first = all.find(isResume(0));
  assert.ok(second && first, JSON.stringify(all.map(summary)));

  const exclusive = await subscribe(consumer, { partitionId: "2", startPosition: { offset: second.offset }, until: atLeast(1) }).done;
  assert.deepEqual(exclusive.map((e) => e.properties), [{ kind: "resume", i: 2 }], "exclusive offset");

  const inclusive = await subscribe(consumer, {
    partitionId: "2",
    startPosition: { offset: second.offset, isInclusive: true },
    until: atLeast(2),
  }).done;
  assert.deepEqual(inclusive.map((e) => e.properties.i), [1, 2], "inclusive offset");

  const bySeq = await subscribe(consumer, { partitionId: "2", startPosition: { sequenceNumber: first.sequenceNumber }, until: atLeast(2) }).done;
  assert.deepEqual(bySeq.map((e) => e.properties.i), [1, 2], "after a sequence number");
});

test("startPosition latest reads only what is sent after subscribing", { timeout: 30000 }, async () => {
  await producer.sendBatch([{ body: "before", properties: { kind: "latest", when: "before" } }], { partitionId: "3" });
  const sub = subscribe(consumer, {
    partitionId: "3",
    startPosition: latestEventPosition,
    until: has((e) => e.properties?.when === "after"),
  });
  await withTimeout(sub.ready, 15000, "the latest-position subscription to start");
  await producer.sendBatch([{ body: "after", properties: { kind: "latest", when: "after" } }], { partitionId: "3" });
  const events = await sub.done;
  assert.deepEqual(events.map((e) => e.body), ["after"]);
});

test("a token credential with Azure Event Hubs Data Owner sends and reads", { timeout: 30000 }, async () => {
  const cred = credential();
  const p = track(new EventHubProducerClient(host, hubName, cred, clientOptions));
  const c = track(new EventHubConsumerClient(consumerGroup, host, hubName, cred, clientOptions));
  const props = await p.getEventHubProperties();
  assert.deepEqual(props.partitionIds, ["0", "1", "2", "3"]);
  await p.sendBatch([{ body: { via: "token" }, properties: { kind: "token" } }], { partitionId: "0" });
  const events = await subscribe(c, {
    partitionId: "0",
    startPosition: earliestEventPosition,
    until: has((e) => e.properties?.kind === "token"),
    settleMs: 0,
  }).done;
  assert.deepEqual(events.find((e) => e.properties?.kind === "token").body, { via: "token" });
});

test("an owner-level receiver takes the partition from a lower one", { timeout: 30000 }, async () => {
  const low = track(new EventHubConsumerClient(consumerGroup, connectionString, hubName, clientOptions));
  const high = track(new EventHubConsumerClient(consumerGroup, connectionString, hubName, clientOptions));
  const lowErrors = [];
  const highErrors = [];
  let lowClosed;
  const closed = new Promise((resolve) => (lowClosed = resolve));
  let lowReady;
  const lowUp = new Promise((resolve) => (lowReady = resolve));
  let highReady;
  const highUp = new Promise((resolve) => (highReady = resolve));
  const options = { startPosition: latestEventPosition, maxWaitTimeInSeconds: 1 };
  const lowSub = low.subscribe(
    "0",
    {
      processEvents: async () => lowReady(),
      processError: async (err) => lowErrors.push(err),
      processClose: async (reason) => lowClosed(reason),
    },
    { ...options, ownerLevel: 1 },
  );
  try {
    await withTimeout(lowUp, 15000, "the owner level 1 receiver to start").catch((err) => {
      throw new Error(`${err.message}; its errors: ${lowErrors.map((e) => `${e.code ?? e.name}: ${e.message}`).join("; ")}`);
    });
    const highSub = high.subscribe(
      "0",
      { processEvents: async () => highReady(), processError: async (err) => highErrors.push(err) },
      { ...options, ownerLevel: 2 },
    );
    try {
      await withTimeout(highUp, 15000, "the owner level 2 receiver to start").catch((err) => {
        throw new Error(`${err.message}; its errors: ${highErrors.map((e) => `${e.code ?? e.name}: ${e.message}`).join("; ")}`);
      });
      const reason = await withTimeout(closed, 15000, "the owner level 1 receiver to be disconnected");
      assert.equal(reason, "OwnershipLost");
      assert.ok(lowErrors.length > 0, "the displaced receiver got no error");
      const err = lowErrors[0];
      assert.equal(err.code, "ReceiverDisconnectedError", `${err.code ?? err.name}: ${err.message}`);
      assert.deepEqual(highErrors.map((e) => `${e.code}: ${e.message}`), []);
    } finally {
      await highSub.close();
    }
  } finally {
    await lowSub.close();
  }
});

test("a wrong key is refused as unauthorized, without hanging", { timeout: 30000 }, async () => {
  const bad = connectionString.replace(/SharedAccessKey=[^;]+/, "SharedAccessKey=" + Buffer.alloc(32, 7).toString("base64"));
  assert.notEqual(bad, connectionString);
  const noRetry = { retryOptions: { maxRetries: 0, timeoutInMs: 10000 } };
  const p = track(new EventHubProducerClient(bad, hubName, noRetry));
  const unauthorized = (err) => {
    assert.equal(err?.code, "UnauthorizedError", `${err?.code ?? err?.name}: ${err?.message}`);
    return true;
  };
  await assert.rejects(withTimeout(p.getEventHubProperties(), 20000, "getEventHubProperties with a wrong key"), unauthorized);
  await assert.rejects(withTimeout(p.sendBatch([{ body: "x" }], { partitionId: "0" }), 20000, "sendBatch with a wrong key"), unauthorized);
});
