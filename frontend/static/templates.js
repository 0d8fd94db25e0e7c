/* Templates editor: the variables found and a live preview, refreshed as the user types. */
(function () {
  "use strict";

  const form = document.getElementById("template-form");
  if (!form) return;
  const url = form.dataset.previewUrl;
  const list = document.querySelector("[data-variables]");
  const empty = document.querySelector("[data-variables-empty]");
  const output = document.querySelector("[data-preview-output]");
  const errorBox = document.querySelector("[data-preview-error]");
  let timer = null;
  let sequence = 0;

  function syncVariables(names) {
    const existing = new Map();
    list.querySelectorAll("input[data-sample]").forEach((input) => existing.set(input.dataset.sample, input));
    list.querySelectorAll("[data-sample-field]").forEach((field) => {
      if (!names.includes(field.dataset.sampleField)) field.remove();
    });
    names.forEach((name) => {
      if (existing.has(name)) return;
      const field = document.createElement("div");
      field.className = "field";
      field.dataset.sampleField = name;
      const label = document.createElement("label");
      label.htmlFor = "sample-" + name;
      label.textContent = name;
      const input = document.createElement("input");
      input.type = "text";
      input.id = "sample-" + name;
      input.name = "sample__" + name;
      input.dataset.sample = name;
      input.setAttribute("form", "template-form");
      input.placeholder = "Sample value";
      input.addEventListener("input", schedule);
      field.append(label, input);
      list.append(field);
    });
    empty.hidden = names.length > 0;
  }

  async function refresh() {
    const mine = ++sequence;
    let answer;
    try {
      const response = await Atelier.post(url, new FormData(form));
      answer = await response.json();
    } catch (e) {
      return; // the engine is restarting; the next keystroke tries again
    }
    if (mine !== sequence) return; // a newer preview is on its way
    if (answer.error) {
      errorBox.hidden = false;
      errorBox.querySelector("p").textContent = answer.error.message;
      return;
    }
    errorBox.hidden = true;
    syncVariables(answer.variables || []);
    output.textContent = (answer.system ? "System: " + answer.system + "\n\n" : "") + (answer.prompt || "");
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  // Fields rendered by the server for a saved template.
  list.querySelectorAll("input[name^='sample__']").forEach((input) => {
    input.dataset.sample = input.name.slice("sample__".length);
    input.parentElement.dataset.sampleField = input.dataset.sample;
    input.addEventListener("input", schedule);
  });
  form.addEventListener("input", schedule);
  refresh();
})();
