// Unmodified Azure IoT device SDK file upload (client.uploadToBlob:
// getBlobSharedAccessSignature, the blob upload with @azure/storage-blob,
// notifyBlobUploadStatus) against an Outpost hub, over each transport named.
// The Go driver (test/e2e/iothub_fileupload_test.go) configures the hub's
// storage and checks the blobs and the file notifications.
//
// Environment: IOTHUB_DEVICE_CONNECTION_STRING, UPLOAD_TRANSPORTS ("mqtt,http"),
// UPLOAD_BYTES, UPLOAD_PREFIX (blob name prefix), UPLOAD_EXPECT ("ok" or
// "refused": the storage service must refuse the upload and the SDK surface it).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import device from "azure-iot-device";
import deviceMqtt from "azure-iot-device-mqtt";
import deviceHttp from "azure-iot-device-http";
import { requireEnv } from "./lib/env.mjs";

const { Client: DeviceClient } = device;
const transports = { mqtt: deviceMqtt.Mqtt, http: deviceHttp.Http };
const deviceCS = requireEnv("IOTHUB_DEVICE_CONNECTION_STRING");
const names = requireEnv("UPLOAD_TRANSPORTS").split(",");
const size = Number(requireEnv("UPLOAD_BYTES"));
const prefix = requireEnv("UPLOAD_PREFIX");
const expect = requireEnv("UPLOAD_EXPECT");
const clients = [];

after(async () => {
  for (const c of clients) await c.close().catch(() => {});
});

// content is deterministic, so the Go side can check the blob byte for byte.
function content(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

for (const name of names) {
  test(`uploadToBlob over ${name} (${size} bytes, expect ${expect})`, async () => {
    const client = DeviceClient.fromConnectionString(deviceCS, transports[name]);
    clients.push(client);
    await client.open();
    const data = content(size);
    const upload = client.uploadToBlob(`${prefix}/${name}.bin`, Readable.from([data]), data.length);
    if (expect === "ok") {
      await upload;
    } else {
      // Storage refuses the blob upload; the SDK tells the hub (isSuccess
      // false, the storage status code) and rejects with this error.
      await assert.rejects(upload, (err) => {
        assert.equal(err?.constructor?.name, "BlobUploadNotificationError", String(err));
        assert.match(String(err.message), /UploadToBlob failed/);
        return true;
      });
    }
  });
}
