// Outpost portal: progressive enhancement only. Every page works without
// this script; it filters the role list and hides the inputs that do not
// apply to the current choice.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // <input type=search data-filter="selector">: hide the matches whose
  // text does not contain the query.
  for (const input of document.querySelectorAll("input[data-filter]")) {
    const items = document.querySelectorAll(input.dataset.filter);
    input.addEventListener("input", () => {
      const q = input.value.trim().toLowerCase();
      for (const li of items) {
        li.hidden = q !== "" && !li.textContent.toLowerCase().includes(q);
      }
    });
  }
  // Radio groups that choose which block of inputs applies, per form:
  // sign-in (name=kind → data-kind), the Members tab (name=memberType →
  // data-member), authentication types (name=authenticationType → data-auth).
  const toggles = [["kind", "data-kind"], ["memberType", "data-member"], ["authenticationType", "data-auth"]];
  for (const form of document.querySelectorAll("form")) {
    for (const [name, attr] of toggles) {
      const radios = form.querySelectorAll(`input[type=radio][name=${name}]`);
      if (radios.length === 0) continue;
      const update = () => {
        const chosen = form.querySelector(`input[type=radio][name=${name}]:checked`);
        for (const block of form.querySelectorAll(`fieldset[${attr}], div[${attr}]`)) {
          block.hidden = chosen !== null && !block.getAttribute(attr).split(" ").includes(chosen.value);
        }
      };
      for (const r of radios) r.addEventListener("change", update);
      update();
    }
    // Endpoint pickers: the namespace list follows the endpoint type, the
    // instance list follows the namespace.
    const type = form.querySelector("select[name=endpointType]");
    const ns = form.querySelector("select[name=namespace]");
    const inst = form.querySelector("select[name=instance]");
    if (type && ns && inst) {
      const update = () => {
        for (const o of ns.options) if (o.value) o.hidden = o.dataset.kind !== type.value;
        if (ns.selectedOptions[0] && ns.selectedOptions[0].hidden) ns.value = "";
        for (const o of inst.options) if (o.value) o.hidden = o.dataset.kind !== type.value || o.dataset.parent !== ns.value;
        if (inst.selectedOptions[0] && inst.selectedOptions[0].hidden) inst.value = "";
      };
      type.addEventListener("change", update);
      ns.addEventListener("change", update);
      update();
    }
    // File upload: the container list follows the storage account.
    const account = form.querySelector("select[name=account]");
    const container = form.querySelector("select[name=container]");
    if (account && container) {
      const update = () => {
        for (const o of container.options) if (o.value) o.hidden = o.dataset.parent !== account.value;
        if (container.selectedOptions[0] && container.selectedOptions[0].hidden) container.value = "";
      };
      account.addEventListener("change", update);
      update();
    }
  }
});

// A table with data-refresh="ms" (running import/export jobs) reloads its
// rows from the same page until nothing runs any more.
document.addEventListener("DOMContentLoaded", () => {
  const table = document.querySelector("table[data-refresh]");
  if (!table) return;
  const every = Number(table.dataset.refresh) || 2000;
  const tick = async () => {
    const resp = await fetch(location.href, { credentials: "same-origin" });
    if (!resp.ok) return;
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    const fresh = doc.getElementById(table.id);
    if (!fresh) return;
    table.tBodies[0].replaceWith(fresh.tBodies[0]);
    if (fresh.hasAttribute("data-refresh")) setTimeout(tick, every);
    else table.removeAttribute("data-refresh");
  };
  setTimeout(tick, every);
});

// Hub → Telemetry: read the JSON-lines stream and add a row per message
// (as text: nothing from a device is ever parsed as HTML).
document.addEventListener("DOMContentLoaded", async () => {
  const table = document.querySelector("table[data-stream]");
  if (!table) return;
  const status = document.getElementById("telemetry-status");
  const resp = await fetch(table.dataset.stream, { credentials: "same-origin" });
  if (!resp.ok) {
    let text = `${resp.status} ${resp.statusText}`;
    try {
      const e = (await resp.json()).error;
      if (e) text = `${e.code}: ${e.message}`;
    } catch { /* not JSON */ }
    status.textContent = text;
    status.className = "error";
    return;
  }
  status.textContent = "Listening for device messages…";
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const ev = JSON.parse(line).event;
      const row = table.tBodies[0].insertRow(0);
      const app = ev.properties?.application ?? {};
      const cells = [ev.enqueuedTime, ev.origin, Object.entries(app).map(([k, v]) => `${k}=${v}`).join(", "),
        typeof ev.payload === "string" ? ev.payload : JSON.stringify(ev.payload)];
      for (const c of cells) row.insertCell().textContent = c;
      status.textContent = `${table.tBodies[0].rows.length} message(s) received; listening…`;
    }
  }
  status.textContent = "The stream ended; reload the page to listen again.";
});
