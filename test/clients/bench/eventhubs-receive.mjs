// Receive throughput of the unmodified @azure/event-hubs consumer:
// EventHubConsumerClient.subscribe from the earliest position of every
// partition, counting events until EXPECTED_EVENTS have arrived. Prints one
// JSON line on stdout:
//
//   {"events":N,"seconds":S,"clientCpuSeconds":C,"connections":K,"duplicates":D,"errors":[…],
//    "partitions":P,"maxBatchSize":B,"prefetchCount":F}
//
// seconds runs from subscribe() to the processEvents call that reached the
// count — the connection and its CBS handshake are made before the clock
// starts (getPartitionIds), node's start-up and module loading are not in
// it. clientCpuSeconds is this process's user+system CPU over the same
// window. Bodies are parsed as JSON, as the SDK does by default. events
// counts each sequence number of a partition once; duplicates counts
// events delivered again. connections counts the TLS connections the SDK
// opened, the first included; errors are what processError was given. The
// SDK recovers from both by itself, on the clock.
//
// Driven by BenchmarkAMQPBuiltInReceive (test/bench/amqp_test.go); it can
// also run by hand against any endpoint.
//
// Environment:
//   EVENTHUB_CONNECTION_STRING  with EntityPath (an IoT hub's built-in
//                               endpoint, as the portal shows it)
//   EXPECTED_EVENTS             how many events to read (required)
//   MAX_BATCH_SIZE              subscribe's maxBatchSize; unset: the SDK's
//                               default (1), as the quickstarts run
//   PREFETCH_COUNT              subscribe's prefetchCount; unset: the SDK's
//                               default (3 × maxBatchSize)
//   TIMEOUT_SECONDS             give up after this long (default 300)
//   NODE_EXTRA_CA_CERTS         the server's CA
import tls from "node:tls";
import { EventHubConsumerClient, earliestEventPosition } from "@azure/event-hubs";

// Count the connections the SDK opens (rhea calls tls.connect for each, at
// connect time): more than one means it reconnected, which it does by
// itself after a connection error, without always telling processError.
let connections = 0;
const tlsConnect = tls.connect;
tls.connect = function (...args) {
  connections++;
  return tlsConnect.apply(this, args);
};

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`eventhubs-receive: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

function optionalInt(name) {
  const v = process.env[name];
  if (!v) return undefined;
  const n = Number.parseInt(v, 10);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`eventhubs-receive: ${name}=${v} is not a positive integer`);
    process.exit(2);
  }
  return n;
}

const connectionString = env("EVENTHUB_CONNECTION_STRING");
env("EXPECTED_EVENTS");
const expected = optionalInt("EXPECTED_EVENTS");
const maxBatchSize = optionalInt("MAX_BATCH_SIZE");
const prefetchCount = optionalInt("PREFETCH_COUNT");
const timeoutSeconds = optionalInt("TIMEOUT_SECONDS") ?? 300;

const client = new EventHubConsumerClient("$Default", connectionString, {
  // A server that answers wrongly should fail the run, not stall it.
  retryOptions: { maxRetries: 1, retryDelayInMs: 200, timeoutInMs: 30000 },
});

const partitionIds = await client.getPartitionIds();
const options = { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 5 };
if (maxBatchSize !== undefined) options.maxBatchSize = maxBatchSize;
if (prefetchCount !== undefined) options.prefetchCount = prefetchCount;

let events = 0;
let duplicates = 0;
const lastSequence = new Map();
const errors = [];
const cpuBefore = process.cpuUsage();
const start = process.hrtime.bigint();
let result;
try {
  result = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`read ${events} of ${expected} events within ${timeoutSeconds} s; errors: ${errors.join("; ") || "none"}`)),
      timeoutSeconds * 1000,
    );
    let done = false;
    const subscription = client.subscribe(
      {
        async processEvents(batch, context) {
          if (done) return;
          // Count each event once: after a reconnect the SDK resumes
          // after the last event it delivered, so nothing should repeat.
          let last = lastSequence.get(context.partitionId) ?? -1;
          for (const e of batch) {
            if (e.sequenceNumber <= last) {
              duplicates++;
              continue;
            }
            last = e.sequenceNumber;
            events++;
          }
          lastSequence.set(context.partitionId, last);
          if (events >= expected) {
            done = true;
            const seconds = Number(process.hrtime.bigint() - start) / 1e9;
            const cpu = process.cpuUsage(cpuBefore);
            clearTimeout(timer);
            resolve({ events, seconds, clientCpuSeconds: (cpu.user + cpu.system) / 1e6, connections, duplicates, errors });
            subscription.close().catch(() => {});
          }
        },
        // The SDK reports an error and recovers (reconnects and resumes
        // after the last event it delivered), as a quickstart's consumer
        // would: the errors are counted and reported, the clock runs on.
        async processError(err, context) {
          const where = context.partitionId ? `partition ${context.partitionId}` : "the connection";
          errors.push(`${where} after ${events} events: ${err?.name} ${err?.code ?? ""}: ${err?.message}`);
        },
      },
      options,
    );
  });
} catch (err) {
  console.error(`eventhubs-receive: ${err.message}`);
  await closeWithin(client, 2000);
  process.exit(1);
}
// The result first: closing may hang (an unsettled close with nothing else
// pending ends node with exit code 13).
console.log(
  JSON.stringify({
    ...result,
    partitions: partitionIds.length,
    maxBatchSize: maxBatchSize ?? null,
    prefetchCount: prefetchCount ?? null,
  }),
);
await closeWithin(client, 2000);
// The SDK may leave a reconnect timer or socket behind after close.
process.exit(0);

// closeWithin closes the client, giving up after ms.
function closeWithin(c, ms) {
  let timer;
  return Promise.race([
    c.close().catch(() => {}),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
