// The seed document's portal steps, click by click, in Outpost's portal with
// headless Chromium: the hub's identities, Access control (IAM) role
// assignments for both identity types on an Event Hubs namespace and a
// storage account, networking with the trusted-services exception, message
// routing (endpoint, route, test route, change authentication type), file
// upload settings, the "in use" refusal, a Reader's refusals and sign-out.
// The Go test that runs this (test/e2e/portal_browser_test.go) creates the
// resources first and checks the outcome through the API afterwards.
//
//   PORTAL_GROUP, PORTAL_HUB, PORTAL_UAI, PORTAL_EH_NAMESPACE, PORTAL_EVENTHUB,
//   PORTAL_STORAGE, PORTAL_CONTAINER        names of the resources to use
//   PORTAL_READER_CLIENT_ID, PORTAL_READER_CLIENT_SECRET
//                                           a service principal with Reader
//   AZURE_CLIENT_ID, AZURE_CLIENT_SECRET    the operator
import { test, before, after } from "node:test";
import { createHmac } from "node:crypto";
import assert from "node:assert/strict";
import { requireEnv } from "./lib/env.mjs";
import { launch, portalURL, screenshot, axeCheck, keyboardReach, notice, refusal } from "./portal-browser.mjs";

const group = requireEnv("PORTAL_GROUP");
const hub = requireEnv("PORTAL_HUB");
const uai = requireEnv("PORTAL_UAI");
const ehNamespace = requireEnv("PORTAL_EH_NAMESPACE");
const eventHub = requireEnv("PORTAL_EVENTHUB");
const storage = requireEnv("PORTAL_STORAGE");
const container = requireEnv("PORTAL_CONTAINER");

async function signIn(page, clientId, secret) {
  await page.goto(portalURL("/portal/"));
  // No session: the portal sends the browser to sign-in.
  assert.match(page.url(), /\/portal\/signin\?next=/);
  await page.getByLabel("Service principal (client credentials)").check();
  await page.getByLabel("Application (client) ID").fill(clientId);
  await page.getByLabel("Client secret").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "All resources" }).waitFor();
}

async function openResource(page, name, blade) {
  await page.getByRole("navigation", { name: "Portal" }).getByRole("link", { name: "All resources" }).click();
  await page.getByRole("link", { name, exact: true }).click();
  if (blade) {
    await page.getByRole("navigation", { name }).getByRole("link", { name: blade, exact: true }).click();
  }
}

// Access control (IAM) → Add → Add role assignment → Role → Members →
// Review + assign, for a user-assigned identity or a resource's
// system-assigned identity.
async function addRoleAssignment(page, resource, role, member) {
  await openResource(page, resource, "Access control (IAM)");
  await page.getByRole("link", { name: "Add role assignment" }).click();
  await page.getByLabel("Search by role name or description").fill(role);
  await page.getByLabel(role, { exact: true }).check();
  if (member.userAssigned) {
    await page.getByLabel("User-assigned managed identity", { exact: true }).check();
    await page.getByLabel("Select members: user-assigned managed identity").selectOption({ label: member.userAssigned });
  } else {
    await page.getByLabel("All system-assigned managed identities").check();
    await page.getByLabel("Select members: system-assigned managed identity (by resource)").selectOption({ label: member.systemLabel });
  }
  await page.getByRole("button", { name: "Review + assign" }).click();
  await page.getByRole("heading", { name: /^Review \+ assign/ }).first().waitFor();
  if (!reviewChecked) {
    await screenshot(page, "iam-review");
    await axeCheck(page, "iam-review");
    await keyboardReach(page, "iam-review");
    reviewChecked = true;
  }
  await page.getByRole("button", { name: "Review + assign" }).click();
  assert.match(await notice(page), new RegExp(`Assigned ${role} to`));
}

async function networking(page, resource, access, trusted) {
  await openResource(page, resource, "Networking");
  await page.getByLabel(access).check();
  const box = page.getByLabel(/Allow trusted Microsoft services/);
  if (trusted) await box.check();
  else await box.uncheck();
  await page.getByRole("button", { name: "Save" }).click();
  assert.equal(await notice(page), "Saved the networking settings.");
}

// One browser for the whole file: the steps build on each other (the
// session, then what each step saved), so they run in order.
let browser;
let page;
let deviceConnectionString;
let reviewChecked = false;
before(async () => {
  browser = await launch();
  page = browser.page;
});
after(() => browser?.close());

test("sign-in page: accessible, keyboard reachable", async () => {
  await page.goto(portalURL("/portal/signin"));
  await screenshot(page, "signin");
  await axeCheck(page, "signin");
  await keyboardReach(page, "signin");
});

test("sign in as the operator", async () => {
  await signIn(page, requireEnv("AZURE_CLIENT_ID"), requireEnv("AZURE_CLIENT_SECRET"));
  await page.getByRole("link", { name: hub, exact: true }).waitFor();
  // The identity's tag holds a script tag; it shows as text and never runs.
  await page.getByText("<script>window.__portalXSS=1</script>").first().waitFor();
  assert.equal(await page.evaluate(() => window.__portalXSS), undefined);
  await screenshot(page, "all-resources");
  await axeCheck(page, "all-resources");
});

test("hub → Identity → System assigned: On, Save", async () => {
  await openResource(page, hub, "Identity");
  await page.getByRole("link", { name: "System assigned" }).click();
  await page.getByLabel("On", { exact: true }).check();
  await page.getByRole("button", { name: "Save" }).click();
  assert.equal(await notice(page), `Saved the identity settings of ${hub}.`);
  assert.match(await page.locator("#system-principal").textContent(), /^[0-9a-f-]{36}$/);
  await screenshot(page, "hub-identity-system");
  await axeCheck(page, "hub-identity-system");
  await keyboardReach(page, "hub-identity-system");
});

test("hub → Identity → User assigned: Associate", async () => {
  await page.getByRole("link", { name: "User assigned" }).click();
  await page.getByLabel("Associate a user-assigned managed identity").selectOption({ label: `${uai} (${group})` });
  await page.getByRole("button", { name: "Select" }).click();
  assert.equal(await notice(page), `Saved the identity settings of ${hub}.`);
  await page.getByRole("button", { name: `Remove ${uai}` }).waitFor();
  await screenshot(page, "hub-identity-user");
  await axeCheck(page, "hub-identity-user");
});

test("Event Hubs namespace → IAM: Azure Event Hubs Data Sender to both identities", async () => {
  await addRoleAssignment(page, ehNamespace, "Azure Event Hubs Data Sender", { userAssigned: uai });
  await addRoleAssignment(page, ehNamespace, "Azure Event Hubs Data Sender", { systemLabel: `${hub} (Microsoft.Devices/IotHubs)` });
  const rows = page.locator("#role-assignments tbody tr", { hasText: "Azure Event Hubs Data Sender" });
  assert.equal(await rows.count(), 2);
  await screenshot(page, "eventhubs-iam");
  await axeCheck(page, "eventhubs-iam");
  await page.getByRole("link", { name: "Add role assignment" }).click();
  await screenshot(page, "eventhubs-iam-add");
  await axeCheck(page, "eventhubs-iam-add");
  await keyboardReach(page, "eventhubs-iam-add");
});

test("Event Hubs namespace → Networking: selected networks, trusted services", async () => {
  await networking(page, ehNamespace, "Enabled from selected networks", true);
  await screenshot(page, "eventhubs-networking");
  await axeCheck(page, "eventhubs-networking");
});

test("hub → Message routing: Add endpoint (Event Hubs, user-assigned)", async () => {
  await openResource(page, hub, "Message routing");
  const form = page.locator("#add-endpoint");
  await form.getByLabel("Endpoint type").selectOption({ label: "Event Hubs" });
  await form.getByLabel("Endpoint name").fill("portal-eh");
  await form.getByLabel("Namespace or storage account").selectOption(ehNamespace);
  await form.getByLabel(/^Instance/).selectOption(eventHub);
  await form.getByLabel("User-assigned", { exact: true }).check();
  await form.getByLabel("User-assigned identity").selectOption({ label: uai });
  await form.getByRole("button", { name: "Create" }).click();
  assert.equal(await notice(page), "Created endpoint portal-eh.");
  const row = page.locator("#endpoints tbody tr", { hasText: "portal-eh" });
  assert.match(await row.textContent(), /User-assigned/);
  await screenshot(page, "hub-routing-endpoint");
  await axeCheck(page, "hub-routing");
  await keyboardReach(page, "hub-routing");
});

test("hub → Message routing: Add route with a condition, Test route", async () => {
  const form = page.locator("#add-route");
  await form.getByLabel("Route name").fill("portal-critical");
  await form.getByLabel("Data source").selectOption("DeviceMessages");
  await form.getByLabel("Endpoint", { exact: true }).selectOption("portal-eh");
  await form.getByLabel("Routing query").fill("level = 'critical'");
  await form.getByLabel(/^Application properties/).fill("level=critical");
  await form.getByRole("button", { name: "Test route" }).click();
  assert.match(await page.locator("#test-result").textContent(), /Route test result: true/);
  await page.locator("#add-route").getByLabel(/^Application properties/).fill("level=info");
  await page.locator("#add-route").getByRole("button", { name: "Test route" }).click();
  assert.match(await page.locator("#test-result").textContent(), /Route test result: false/);
  await page.locator("#add-route").getByRole("button", { name: "Save route" }).click();
  assert.equal(await notice(page), "Created route portal-critical.");
  await page.locator("#routes tbody tr", { hasText: "portal-critical" }).waitFor();
  await screenshot(page, "hub-routing-route");
});

test("hub → Message routing: Change authentication type to system-assigned", async () => {
  await page.getByLabel("Select endpoint portal-eh").check();
  const form = page.locator("form", { has: page.locator("#endpoints") });
  await form.getByLabel("System-assigned", { exact: true }).check();
  await form.getByRole("button", { name: "Change authentication type" }).click();
  assert.match(await notice(page), /Changed the authentication type/);
  const row = page.locator("#endpoints tbody tr", { hasText: "portal-eh" });
  assert.match(await row.textContent(), /System-assigned/);
  await screenshot(page, "hub-routing-changed-auth");
});

test("hub → Identity: System assigned Off is refused while an endpoint uses it", async () => {
  await openResource(page, hub, "Identity");
  await page.getByRole("link", { name: "System assigned" }).click();
  await page.getByLabel("Off", { exact: true }).check();
  await page.getByRole("button", { name: "Save" }).click();
  const r = await refusal(page);
  assert.match(r.message, /portal-eh/, `the refusal names the endpoint: ${JSON.stringify(r)}`);
  await screenshot(page, "hub-identity-in-use");
  await axeCheck(page, "hub-identity-in-use");
});

test("storage account → IAM: Storage Blob Data Contributor to both identities", async () => {
  await addRoleAssignment(page, storage, "Storage Blob Data Contributor", { userAssigned: uai });
  await addRoleAssignment(page, storage, "Storage Blob Data Contributor", { systemLabel: `${hub} (Microsoft.Devices/IotHubs)` });
  await screenshot(page, "storage-iam");
});

test("hub → File upload: user-assigned identity, Save", async () => {
  await openResource(page, hub, "File upload");
  const form = page.locator("#file-upload");
  await form.getByLabel("Storage account").selectOption(storage);
  await form.getByLabel("Container").selectOption(container);
  await form.getByLabel("Receive notifications for uploaded files").check();
  await form.getByLabel(/^SAS TTL/).fill("2");
  await form.getByLabel(/^Default TTL/).fill("3");
  await form.getByLabel(/^Maximum delivery count/).fill("5");
  await form.getByLabel("User-assigned", { exact: true }).check();
  await form.getByLabel("User-assigned identity").selectOption({ label: uai });
  await form.getByRole("button", { name: "Save" }).click();
  assert.equal(await notice(page), "Saved the file upload settings.");
  await screenshot(page, "hub-file-upload-user");
  await axeCheck(page, "hub-file-upload");
  await keyboardReach(page, "hub-file-upload");
});

test("hub → File upload: system-assigned, Save", async () => {
  const form = page.locator("#file-upload");
  await form.getByLabel("System-assigned", { exact: true }).check();
  await form.getByRole("button", { name: "Save" }).click();
  assert.equal(await notice(page), "Saved the file upload settings.");
  await screenshot(page, "hub-file-upload-system");
});

test("storage → Networking: selected networks; then the user-assigned identity is refused", async () => {
  await networking(page, storage, "Enabled from selected networks", true);
  await screenshot(page, "storage-networking");
  await axeCheck(page, "storage-networking");
  await openResource(page, hub, "File upload");
  const form = page.locator("#file-upload");
  await form.getByLabel("User-assigned", { exact: true }).check();
  await form.getByLabel("User-assigned identity").selectOption({ label: uai });
  await form.getByRole("button", { name: "Save" }).click();
  // The hub's save check is refused by the account's network rule: only
  // the system-assigned identity passes the trusted-services exception.
  const r = await refusal(page);
  assert.match(r.message, /network|public/i, `refusal ${JSON.stringify(r)}`);
  await screenshot(page, "hub-file-upload-user-refused");
  await axeCheck(page, "hub-file-upload-refused");
});

test("hub → Devices: add a device, its connection string; a <script> id is refused and shown as text", async () => {
  await openResource(page, hub, "Devices");
  const form = page.locator("#add-device");
  await form.getByLabel("Device ID").fill("<script>window.__portalXSS=2</script>");
  await form.getByRole("button", { name: "Save" }).click();
  const r = await refusal(page);
  assert.match(r.message, /<script>window\.__portalXSS=2<\/script>/);
  assert.equal(await page.evaluate(() => window.__portalXSS), undefined);
  await screenshot(page, "hub-devices-script-refused");
  await axeCheck(page, "hub-devices");
  await keyboardReach(page, "hub-devices");
  await page.locator("#add-device").getByLabel("Device ID").fill("portal-sensor");
  await page.locator("#add-device").getByRole("button", { name: "Save" }).click();
  assert.equal(await notice(page), "Created device portal-sensor.");
  const cs = await page.getByLabel("Primary connection string").inputValue();
  deviceConnectionString = cs;
  assert.match(cs, new RegExp(`^HostName=${hub}\\.[^;]+;DeviceId=portal-sensor;SharedAccessKey=[A-Za-z0-9+/=]{40,}$`));
  await screenshot(page, "hub-device-connection-string");
  await axeCheck(page, "hub-device");
  await page.getByRole("link", { name: "Back to devices" }).click();
  await page.locator("#devices").getByRole("link", { name: "portal-sensor" }).waitFor();
});

// sendAsDevice posts one device-to-cloud message over HTTPS with a SAS
// signed from the device's connection string, as the device SDKs do.
async function sendAsDevice(connectionString, body, properties) {
  const cs = Object.fromEntries(connectionString.split(";").map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]));
  const sr = encodeURIComponent(`${cs.HostName}/devices/${cs.DeviceId}`);
  const se = Math.floor(Date.now() / 1000) + 3600;
  const sig = createHmac("sha256", Buffer.from(cs.SharedAccessKey, "base64")).update(`${sr}\n${se}`).digest("base64");
  const headers = { authorization: `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`, "content-type": "application/json", "iothub-contenttype": "application/json" };
  for (const [k, v] of Object.entries(properties)) headers[`iothub-app-${k}`] = v;
  const resp = await fetch(`https://${cs.HostName}/devices/${encodeURIComponent(cs.DeviceId)}/messages/events?api-version=2021-04-12`, { method: "POST", headers, body });
  assert.equal(resp.status, 204, await resp.text());
}

test("hub → Telemetry: a device's message appears live, as text", async () => {
  await openResource(page, hub, "Telemetry");
  await page.getByText("Listening for device messages").waitFor();
  await sendAsDevice(deviceConnectionString, '{"note":"<img src=x onerror=window.__portalXSS=3>"}', { level: "info" });
  const row = page.locator("#telemetry tbody tr").first();
  await row.waitFor();
  assert.match(await row.textContent(), /portal-sensor/);
  assert.match(await row.textContent(), /<img src=x onerror=window.__portalXSS=3>/);
  assert.equal(await page.evaluate(() => window.__portalXSS), undefined);
  assert.equal(await page.locator("#telemetry img").count(), 0);
  await screenshot(page, "hub-telemetry");
  await axeCheck(page, "hub-telemetry");
});

test("hub → Message routing: the endpoint turns healthy once a routed message is delivered", async () => {
  await sendAsDevice(deviceConnectionString, '{"level":"critical"}', { level: "critical" });
  await openResource(page, hub, "Message routing");
  const health = page.locator("#endpoints tbody tr", { hasText: "portal-eh" }).locator(".health-healthy");
  for (let i = 0; i < 60 && (await health.count()) === 0; i++) {
    await new Promise((r) => setTimeout(r, 500));
    await page.reload();
  }
  await health.waitFor({ timeout: 1000 });
  assert.match(await page.locator("#endpoints tbody tr", { hasText: "portal-eh" }).textContent(), /last delivery/);
  // The traffic chart counts the route's match and the endpoint's
  // delivery, in its accessible name and its data table, and the
  // endpoint has a health strip.
  const chart = page.locator("#traffic-chart svg[role=img]");
  for (let i = 0; i < 20 && !/endpoint portal-eh delivered [1-9]/.test((await chart.getAttribute("aria-label")) ?? ""); i++) {
    await new Promise((r) => setTimeout(r, 500));
    await page.reload();
  }
  const label = await chart.getAttribute("aria-label");
  assert.match(label, /endpoint portal-eh delivered [1-9]/);
  assert.match(label, /route portal-critical matched [1-9]/);
  assert.equal(await page.locator("#traffic-data th[scope=col]", { hasText: "Route portal-critical" }).count(), 1);
  assert.match(await page.locator("#health-history svg[role=img]").first().getAttribute("aria-label"), /^Health history of portal-eh: .*healthy$/);
  await screenshot(page, "hub-routing-healthy");
  await axeCheck(page, "hub-routing-chart");
});

test("hub → Import/Export jobs: export with the system-assigned identity completes; the user-assigned one fails with its reason", async () => {
  await openResource(page, hub, "Import/Export jobs");
  let form = page.locator("#start-job");
  await form.getByLabel("Export devices").check();
  await form.getByLabel("Output container").selectOption(`${storage}/${container}`);
  await form.getByLabel(/^Identity/).selectOption({ label: "System-assigned" });
  await form.getByRole("button", { name: "Start" }).click();
  assert.equal(await notice(page), "Started the export job.");
  // The table refreshes itself while the job runs.
  await page.locator("#jobs tbody tr").first().locator(".job-status", { hasText: "completed" }).waitFor();
  await screenshot(page, "hub-jobs-export-completed");
  await axeCheck(page, "hub-jobs");
  await keyboardReach(page, "hub-jobs");
  form = page.locator("#start-job");
  await form.getByLabel("Export devices").check();
  await form.getByLabel("Output container").selectOption(`${storage}/${container}`);
  await form.getByLabel(/^Identity/).selectOption({ label: `User-assigned: ${uai}` });
  await form.getByRole("button", { name: "Start" }).click();
  const row = page.locator("#jobs tbody tr").first();
  await row.locator(".job-status", { hasText: "failed" }).waitFor();
  assert.match(await row.textContent(), /portal-uai/);
  await screenshot(page, "hub-jobs-export-failed");
});

test("Managed identities and the resource group's Deployments: accessible", async () => {
  await page.getByRole("navigation", { name: "Portal" }).getByRole("link", { name: "Managed identities" }).click();
  await page.locator("#user-assigned").getByRole("link", { name: uai, exact: true }).waitFor();
  await page.locator("#system-assigned").getByRole("link", { name: hub, exact: true }).waitFor();
  await screenshot(page, "managed-identities");
  await axeCheck(page, "managed-identities");
  await page.getByRole("navigation", { name: "Portal" }).getByRole("link", { name: "All resources" }).click();
  await page.locator("#groups").getByRole("link", { name: group, exact: true }).click();
  await page.getByRole("navigation", { name: group }).getByRole("link", { name: "Deployments" }).click();
  await page.locator("#deployments").waitFor();
  await screenshot(page, "group-deployments");
  await axeCheck(page, "group-deployments");
});

test("sign out", async () => {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  await page.goto(portalURL("/portal/"));
  assert.match(page.url(), /\/portal\/signin/);
});

test("a Reader sees the pages, and every change is refused with the RBAC message", async () => {
  await signIn(page, requireEnv("PORTAL_READER_CLIENT_ID"), requireEnv("PORTAL_READER_CLIENT_SECRET"));
  await openResource(page, hub, "Identity");
  await page.getByRole("link", { name: "User assigned" }).click();
  await page.getByRole("button", { name: `Remove ${uai}` }).click();
  let r = await refusal(page);
  assert.equal(r.code, "AuthorizationFailed");
  assert.match(r.message, /Microsoft\.Devices\/IotHubs\/write/);
  await screenshot(page, "reader-identity-refused");
  await axeCheck(page, "reader-identity-refused");

  await addRoleAssignmentRefused(page);
  r = await refusal(page);
  assert.equal(r.code, "AuthorizationFailed");
  assert.match(r.message, /roleAssignments\/write/);
  await screenshot(page, "reader-iam-refused");

  await networkingRefused(page);
});

async function addRoleAssignmentRefused(page) {
  await openResource(page, storage, "Access control (IAM)");
  await page.getByRole("link", { name: "Add role assignment" }).click();
  await page.getByLabel("Search by role name or description").fill("Reader");
  await page.getByLabel("Reader", { exact: true }).check();
  await page.getByLabel("User-assigned managed identity", { exact: true }).check();
  await page.getByLabel("Select members: user-assigned managed identity").selectOption({ label: uai });
  await page.getByRole("button", { name: "Review + assign" }).click();
  await page.getByRole("button", { name: "Review + assign" }).click();
}

async function networkingRefused(page) {
  await openResource(page, ehNamespace, "Networking");
  await page.getByLabel("Enabled from all networks").check();
  await page.getByRole("button", { name: "Save" }).click();
  const r = await refusal(page);
  assert.equal(r.code, "AuthorizationFailed");
  await screenshot(page, "reader-networking-refused");
}
