// Checkpoints as real applications keep them: an EventHubConsumerClient
// with @azure/eventhubs-checkpointstore-blob, whose checkpoints and
// ownership live in a container of Outpost's own blob service, reads an
// embedded event hub, checkpoints part-way, stops, and a new client with
// the same store resumes after the checkpoint — each event read once.
// The Go driver is TestNPMAMQPEventHubsCheckpoints (test/e2e/amqp_npm_test.go).
//
// Environment: EVENTHUB_CONNECTION_STRING (namespace, no EntityPath),
// EVENTHUB_NAME, CHECKPOINT_CONTAINER_URL (a container URL with a SAS).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition } from "@azure/event-hubs";
import { BlobCheckpointStore } from "@azure/eventhubs-checkpointstore-blob";
import { ContainerClient } from "@azure/storage-blob";
import { requireEnv } from "./lib/env.mjs";

const connectionString = requireEnv("EVENTHUB_CONNECTION_STRING");
const eventHub = requireEnv("EVENTHUB_NAME");
const container = new ContainerClient(requireEnv("CHECKPOINT_CONTAINER_URL"));
const retryOptions = { maxRetries: 1, retryDelayInMs: 200, timeoutInMs: 10000 };
const clients = [];
after(async () => {
  for (const c of clients) await c.close().catch(() => {});
});

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// read subscribes with the blob checkpoint store until n events arrived,
// checkpointing after each batch when checkpoint is true.
async function read(n, checkpoint) {
  // Greedy, every second: claim every partition at once instead of one per
  // 10-second cycle (the default balanced strategy).
  const consumer = new EventHubConsumerClient("$Default", connectionString, eventHub, new BlobCheckpointStore(container), {
    retryOptions,
    loadBalancingOptions: { strategy: "greedy", updateIntervalInMs: 1000 },
  });
  clients.push(consumer);
  const events = [];
  await withTimeout(
    new Promise((resolve, reject) => {
      let done = false;
      const subscription = consumer.subscribe(
        {
          async processEvents(batch, context) {
            if (done || batch.length === 0) return;
            const take = batch.slice(0, n - events.length);
            events.push(...take);
            if (checkpoint) await context.updateCheckpoint(take[take.length - 1]);
            if (events.length >= n) {
              done = true;
              subscription.close().then(resolve, reject);
            }
          },
          async processError(err, context) {
            if (done) return;
            done = true;
            subscription.close().catch(() => {});
            reject(new Error(`processError (partition ${context.partitionId}): ${err?.code ?? err?.name}: ${err?.message}`));
          },
        },
        { startPosition: earliestEventPosition, maxBatchSize: 4, maxWaitTimeInSeconds: 1 },
      );
    }),
    30000,
    `reading ${n} events (read ${events.length})`,
  );
  await consumer.close();
  return events;
}

test("a second consumer resumes after the first one's blob checkpoint", { timeout: 60000 }, async () => {
  const producer = new EventHubProducerClient(connectionString, eventHub, { retryOptions });
  clients.push(producer);
  const batch = await producer.createBatch({ partitionId: "0" });
  for (let i = 0; i < 10; i++) assert.ok(batch.tryAdd({ body: { i } }), `event ${i} fits`);
  await producer.sendBatch(batch);

  const first = await read(4, true);
  assert.deepEqual(first.map((e) => e.body.i), [0, 1, 2, 3]);

  const stored = await new BlobCheckpointStore(container).listCheckpoints(
    producer.fullyQualifiedNamespace, eventHub, "$Default");
  const cp = stored.find((c) => c.partitionId === "0");
  assert.ok(cp, `checkpoints in the container: ${JSON.stringify(stored)}`);
  assert.equal(cp.sequenceNumber, first[3].sequenceNumber);
  assert.equal(String(cp.offset), String(first[3].offset));

  const second = await read(6, false);
  assert.deepEqual(second.map((e) => e.body.i), [4, 5, 6, 7, 8, 9], "resumed after the checkpoint, nothing twice");
});
