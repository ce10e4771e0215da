// Telemetry for the routing tests, sent with the unmodified Azure IoT device
// SDK over MQTT: ROUTE_COUNT JSON messages {"seq", "temp"} with the
// application property "level" (critical for every third message), content
// type application/json and encoding utf-8 so $body conditions apply.
//
// Environment: IOTHUB_DEVICE_CONNECTION_STRING, ROUTE_COUNT.
import { test, after } from "node:test";
import device from "azure-iot-device";
import deviceMqtt from "azure-iot-device-mqtt";
import { requireEnv } from "./lib/env.mjs";

const { Client: DeviceClient, Message } = device;
const client = DeviceClient.fromConnectionString(requireEnv("IOTHUB_DEVICE_CONNECTION_STRING"), deviceMqtt.Mqtt);
const count = Number(requireEnv("ROUTE_COUNT"));

after(async () => {
  await client.close().catch(() => {});
});

test(`sends ${count} messages over MQTT`, async () => {
  await client.open();
  for (let i = 0; i < count; i++) {
    const m = new Message(JSON.stringify({ seq: i, temp: 20 + (i % 10) }));
    m.contentType = "application/json";
    m.contentEncoding = "utf-8";
    m.messageId = `route-${i}`;
    m.properties.add("level", i % 3 === 0 ? "critical" : "normal");
    await client.sendEvent(m);
  }
});
