/* Studio: searchable model picker, streamed generation with Stop, and the final rendered result. */
(function () {
  "use strict";

  const Atelier = window.Atelier;

  /* ---- model picker: enhances the plain <select> into a searchable list with prices ------------ */
  function buildPicker(root) {
    const select = root.querySelector("[data-model-select]");
    if (!select) return;
    const options = Array.from(select.options).filter((o) => o.value);
    select.classList.add("hidden");

    const button = document.createElement("button");
    button.type = "button";
    button.className = "picker-button";
    button.setAttribute("aria-haspopup", "listbox");
    const name = document.createElement("span");
    name.className = "picker-name";
    const meta = document.createElement("span");
    meta.className = "picker-meta";
    const caret = document.createElement("span");
    caret.className = "picker-caret";
    caret.textContent = "▾";
    button.append(name, meta, caret);

    const panel = document.createElement("div");
    panel.className = "picker-panel hidden";
    const search = document.createElement("input");
    search.type = "search";
    search.placeholder = "Search " + options.length + " models…";
    search.setAttribute("aria-label", "Search models");
    const list = document.createElement("ul");
    list.className = "picker-list";
    list.setAttribute("role", "listbox");
    panel.append(search, list);
    root.append(button, panel);

    const describe = (o) => {
      const d = o.dataset;
      if (!d.prompt) return "";
      return "in " + d.prompt + " · out " + d.completion + " · " + d.context;
    };
    const showSelected = () => {
      const o = select.selectedOptions[0];
      if (o && o.value) {
        name.textContent = o.dataset.name || o.value;
        meta.textContent = describe(o);
      } else {
        name.textContent = "Choose a model…";
        meta.textContent = "";
      }
    };
    let active = 0;
    let shown = [];
    const render = () => {
      const terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      shown = options.filter((o) => {
        const hay = (o.value + " " + (o.dataset.name || "")).toLowerCase();
        return terms.every((t) => hay.includes(t));
      });
      list.replaceChildren();
      if (!shown.length) {
        const li = document.createElement("li");
        li.className = "picker-empty";
        li.textContent = "No model matches “" + search.value + "”";
        list.append(li);
        return;
      }
      active = Math.min(active, shown.length - 1);
      shown.slice(0, 200).forEach((o, i) => {
        const li = document.createElement("li");
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", i === active ? "true" : "false");
        const label = document.createElement("span");
        label.className = "opt-name";
        label.textContent = o.dataset.name || o.value;
        const id = document.createElement("span");
        id.className = "opt-id";
        id.textContent = o.value;
        label.append(id);
        const price = document.createElement("span");
        price.className = "opt-meta";
        price.textContent = describe(o);
        li.append(label, price);
        li.addEventListener("mousedown", (e) => { e.preventDefault(); choose(o); });
        list.append(li);
      });
    };
    const open = () => {
      panel.classList.remove("hidden");
      search.value = "";
      active = Math.max(0, options.indexOf(select.selectedOptions[0]));
      render();
      search.focus();
      const current = list.querySelector('[aria-selected="true"]');
      if (current) current.scrollIntoView({ block: "nearest" });
    };
    const close = () => panel.classList.add("hidden");
    const choose = (o) => {
      select.value = o.value;
      showSelected();
      close();
      button.focus();
    };
    button.addEventListener("click", () => (panel.classList.contains("hidden") ? open() : close()));
    search.addEventListener("input", () => { active = 0; render(); });
    search.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        active = Math.max(0, Math.min(shown.length - 1, active + (e.key === "ArrowDown" ? 1 : -1)));
        render();
        const current = list.querySelector('[aria-selected="true"]');
        if (current) current.scrollIntoView({ block: "nearest" });
      } else if (e.key === "Enter") {
        e.preventDefault();
        if (shown[active]) choose(shown[active]);
      } else if (e.key === "Escape") {
        close();
        button.focus();
      }
    });
    search.addEventListener("blur", () => window.setTimeout(close, 120));
    showSelected();
  }

  /* ---- streamed generation --------------------------------------------------------------------- */
  function setupComposer(form) {
    if (form.dataset.mode !== "text") return; // image and video use the plain form post
    const output = document.querySelector("[data-output]");
    const liveText = output.querySelector("[data-live-text]");
    const liveStatus = output.querySelector("[data-live-status]");
    const liveModel = output.querySelector("[data-live-model]");
    const liveLink = output.querySelector("[data-live-link]");
    const liveResult = output.querySelector("[data-live-result]");
    const head = output.querySelector("[data-live-head]");
    const generateButton = form.querySelector("[data-generate]");
    const stopButton = form.querySelector("[data-stop]");
    const urlFor = (attr, id) => form.getAttribute(attr).replace("GENID", encodeURIComponent(id));

    let controller = null;
    let generationId = null;
    let stopping = false;

    const setBusy = (busy) => {
      generateButton.disabled = busy;
      generateButton.textContent = busy ? "Generating…" : "Generate";
      stopButton.classList.toggle("hidden", !busy);
      liveText.classList.toggle("streaming", busy);
    };

    const showResult = async (id) => {
      // Swap the plain streamed text for the server-rendered (sanitized markdown) record.
      try {
        const response = await fetch(urlFor("data-result-url", id), { credentials: "same-origin" });
        if (!response.ok) {
          liveStatus.textContent = stopping ? "Stopped" : "Finished";
          liveStatus.className = "badge";
          return;
        }
        liveResult.innerHTML = await response.text();
        liveText.textContent = "";
        head.classList.add("hidden");
      } catch (e) { /* keep the streamed text */ }
    };

    const showError = (payload) => {
      const error = (payload && payload.error) || {};
      liveStatus.textContent = "Failed";
      liveStatus.className = "badge badge-failed";
      const box = document.createElement("div");
      box.className = "callout callout-error";
      const title = document.createElement("strong");
      title.className = "callout-title";
      title.textContent = error.message || "The generation failed.";
      box.append(title);
      if (error.code === "no_api_key" || error.code === "invalid_key") {
        const p = document.createElement("p");
        const a = document.createElement("a");
        a.href = "/settings#key";
        a.textContent = "Open Settings to add your OpenRouter key →";
        p.append(a);
        box.append(p);
      }
      liveResult.replaceChildren(box);
    };

    const run = async () => {
      const data = Object.fromEntries(new FormData(form).entries());
      if (!String(data.prompt || "").trim() || !data.model) { form.reportValidity(); return; }
      controller = new AbortController();
      generationId = null;
      stopping = false;
      output.classList.remove("hidden");
      head.classList.remove("hidden");
      liveText.textContent = "";
      liveResult.replaceChildren();
      liveStatus.textContent = "Starting…";
      liveStatus.className = "badge badge-running";
      liveModel.textContent = data.model;
      liveLink.classList.add("hidden");
      setBusy(true);
      let finished = false;
      try {
        const response = await fetch(form.dataset.streamUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-Requested-With": "fetch" },
          body: JSON.stringify(data),
          credentials: "same-origin",
          signal: controller.signal,
        });
        if (response.status === 401) {
          showError({ error: { message: "Atelier was restarted. Reopen it from the app to continue." } });
          return;
        }
        await Atelier.readEvents(response, (name, payload) => {
          if (name === "generation" && payload && payload.id) {
            generationId = payload.id;
            liveStatus.textContent = "Generating";
            liveLink.href = urlFor("data-detail-url", payload.id);
            liveLink.classList.remove("hidden");
          } else if (name === "delta" && payload && typeof payload.text === "string") {
            liveText.textContent += payload.text; // textContent: model output is never parsed as HTML here
          } else if (name === "done") {
            finished = true;
            if (payload && payload.id) generationId = payload.id;
          } else if (name === "error") {
            finished = true;
            const record = payload && payload.generation;
            if (record && record.id) generationId = record.id;
            else showError(payload);
          }
        });
      } catch (e) {
        if (!stopping) {
          showError({ error: { message: "The connection to Atelier broke. Whatever arrived is saved in the Library." } });
        }
      } finally {
        setBusy(false);
        controller = null;
        if (generationId && (finished || stopping || !liveResult.childElementCount)) await showResult(generationId);
        document.dispatchEvent(new CustomEvent("atelier:generated"));
      }
    };

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!controller) run();
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        if (!controller) run();
      }
    });
    stopButton.addEventListener("click", async () => {
      if (!controller) return;
      stopping = true;
      stopButton.disabled = true;
      try {
        if (generationId) await Atelier.post(urlFor("data-cancel-url", generationId));
      } catch (e) { /* the stream is cut below either way */ }
      // Give the engine a moment to end the stream with the cancelled record, then cut it.
      const current = controller;
      window.setTimeout(() => { if (current) current.abort(); }, 3000);
      stopButton.disabled = false;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-model-picker]").forEach(buildPicker);
    const form = document.querySelector("[data-composer]");
    if (form) setupComposer(form);
  });
})();
