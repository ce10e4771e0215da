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
  // Radio groups that choose which block of inputs applies: sign-in
  // (name=kind → data-kind) and the Members tab (name=memberType → data-member).
  const toggles = [["kind", "data-kind"], ["memberType", "data-member"], ["authenticationType", "data-auth"]];
  for (const [name, attr] of toggles) {
    const radios = document.querySelectorAll(`input[type=radio][name=${name}]`);
    if (radios.length === 0) continue;
    const update = () => {
      const chosen = document.querySelector(`input[type=radio][name=${name}]:checked`);
      for (const block of document.querySelectorAll(`[${attr}]`)) {
        block.hidden = chosen !== null && !block.getAttribute(attr).split(" ").includes(chosen.value);
      }
    };
    for (const r of radios) r.addEventListener("change", update);
    update();
  }
});
