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
    button.setAttribute("aria-expanded", "false");
    button.id = select.id + "-button";
    const name = document.createElement("span");
    name.className = "picker-name";
    name.id = select.id + "-chosen";
    const meta = document.createElement("span");
    meta.className = "picker-meta";
    meta.id = select.id + "-meta";
    const caret = document.createElement("span");
    caret.className = "picker-caret";
    caret.setAttribute("aria-hidden", "true");
    // The visible label names the button (not the hidden select); the chosen model completes the name.
    const label = select.id ? document.querySelector('label[for="' + select.id + '"]') : null;
    if (label) {
      label.id = label.id || select.id + "-label";
      label.htmlFor = button.id;
      button.setAttribute("aria-labelledby", label.id + " " + button.id);
    }
    caret.textContent = "▾";
    button.append(name, " ", meta, caret); // the space keeps the name readable: "GPT-4o in $0.15/M…"

    const panel = document.createElement("div");
    panel.className = "picker-panel hidden";
    const search = document.createElement("input");
    search.type = "search";
    search.placeholder = "Search " + options.length + " models…";
    search.setAttribute("aria-label", "Search models");
    search.setAttribute("role", "combobox");
    search.setAttribute("aria-autocomplete", "list");
    search.setAttribute("aria-expanded", "true");
    const list = document.createElement("ul");
    list.className = "picker-list";
    list.id = select.id + "-options";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Models");
    search.setAttribute("aria-controls", list.id);
    panel.append(search, list);
    root.append(button, panel);

    const textModels = root.closest("[data-composer]")?.dataset.mode === "text";
    const describe = (o) => {
      const d = o.dataset;
      if (!d.prompt || !textModels) return "";
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
      search.removeAttribute("aria-activedescendant");
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
        li.id = list.id + "-" + i;
        li.setAttribute("aria-selected", i === active ? "true" : "false");
        if (i === active) search.setAttribute("aria-activedescendant", li.id);
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
      button.setAttribute("aria-expanded", "true");
      search.value = "";
      active = Math.max(0, options.indexOf(select.selectedOptions[0]));
      render();
      search.focus();
      const current = list.querySelector('[aria-selected="true"]');
      if (current) current.scrollIntoView({ block: "nearest" });
    };
    const close = () => {
      panel.classList.add("hidden");
      button.setAttribute("aria-expanded", "false");
    };
    const choose = (o) => {
      select.value = o.value;
      select.dispatchEvent(new Event("change", { bubbles: true }));
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
        e.preventDefault();
        close();
        button.focus();
      }
    });
    search.addEventListener("blur", () => window.setTimeout(close, 120));
    showSelected();
  }

  /* ---- streamed generation --------------------------------------------------------------------- */
  function setupComposer(form) {
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
      // Keep keyboard focus on the action that is visible: Stop while running, Generate afterwards.
      const active = document.activeElement;
      const moveFocus = active === generateButton || active === stopButton || active === document.body || !active;
      generateButton.disabled = busy;
      generateButton.textContent = busy ? "Generating…" : "Generate";
      stopButton.classList.toggle("hidden", !busy);
      liveText.classList.toggle("streaming", busy);
      liveText.setAttribute("aria-busy", busy ? "true" : "false");
      if (moveFocus) (busy ? stopButton : generateButton).focus();
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
        Atelier.enhance(liveResult); // a queued result keeps following until it is answered
      } catch (e) { /* keep the streamed text */ }
    };

    const showError = (error) => {
      liveStatus.textContent = "Failed";
      liveStatus.className = "badge badge-failed";
      liveResult.replaceChildren(Atelier.errorCallout(error));
    };

    const run = async () => {
      const data = Object.fromEntries(new FormData(form).entries());
      if ((!String(data.prompt || "").trim() && !data.template_id) || !data.model) { form.reportValidity(); return; }
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
      Atelier.reveal(output);
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
          showError({ message: "Atelier was restarted. Reopen it from the app to continue." });
          return;
        }
        await Atelier.readEvents(response, Atelier.generationEvents({
          record: (record) => {
            if (!record.id || generationId) return;
            generationId = record.id;
            liveStatus.textContent = record.status === "queued" ? "Queued" : "Generating";
            liveLink.href = urlFor("data-detail-url", record.id);
            liveLink.classList.remove("hidden");
          },
          delta: (text) => {
            liveText.append(document.createTextNode(text)); // plain text: model output is never parsed as HTML here
          },
          end: (record, error) => {
            finished = true;
            if (record && record.id) generationId = record.id;
            else if (error) showError(error);
          },
        }));
      } catch (e) {
        if (!stopping) {
          showError({ message: "The connection to Atelier broke. Whatever arrived is saved in the Library." });
        }
      } finally {
        setBusy(false);
        controller = null;
        if (generationId && (finished || stopping || !liveResult.childElementCount)) await showResult(generationId);
        Atelier.reveal(output); // the whole answer, not just its top line
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

  /* ---- reference images: upload on pick / drop / paste, chips with Remove ----------------------- */
  function setupRefs(root) {
    const list = root.querySelector("[data-ref-list]");
    const add = root.querySelector("[data-ref-add]");
    const input = root.querySelector("[data-ref-input]");
    const error = root.querySelector("[data-ref-error]");
    const name = root.dataset.name;
    const max = Number(root.dataset.max || 1);
    const count = () => list.querySelectorAll("[data-ref]").length;
    const refresh = () => add.classList.toggle("hidden", count() >= max);
    const fail = (message) => {
      error.textContent = message;
      error.classList.remove("hidden");
    };
    const chip = (id, thumb) => {
      const li = document.createElement("li");
      li.className = "ref";
      li.dataset.ref = "";
      const img = document.createElement("img");
      img.src = thumb;
      img.alt = "Reference image";
      const hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = name;
      hidden.value = id;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "ref-remove";
      remove.dataset.refRemove = "";
      remove.setAttribute("aria-label", "Remove this image");
      remove.title = "Remove";
      remove.textContent = "×";
      li.append(img, hidden, remove);
      return li;
    };
    const upload = async (files) => {
      error.classList.add("hidden");
      for (const file of Array.from(files)) {
        if (count() >= max) { fail(max === 1 ? "Only one image fits here." : "At most " + max + " images."); break; }
        const pending = document.createElement("li");
        pending.className = "ref ref-pending";
        pending.innerHTML = '<span class="spinner" aria-hidden="true"></span>';
        list.insertBefore(pending, add);
        try {
          const response = await fetch(root.dataset.uploadUrl, {
            method: "POST",
            headers: { "Content-Type": file.type || "application/octet-stream", "X-Requested-With": "fetch", Accept: "application/json" },
            body: file,
            credentials: "same-origin",
          });
          const answer = await response.json().catch(() => ({}));
          if (!response.ok) {
            fail((answer.error && answer.error.message) || (response.status === 413 ? "This image is too large." : "The image could not be added."));
            pending.remove();
            continue;
          }
          pending.replaceWith(chip(answer.id, answer.thumb));
        } catch (e) {
          pending.remove();
          fail("The image could not be added: Atelier did not answer.");
        }
        refresh();
      }
      refresh();
    };
    input.addEventListener("change", () => {
      const files = input.files;
      if (files && files.length) upload(files).finally(() => { input.value = ""; });
    });
    list.addEventListener("click", (event) => {
      const remove = event.target.closest("[data-ref-remove]");
      if (!remove) return;
      remove.closest("[data-ref]").remove();
      error.classList.add("hidden");
      refresh();
    });
    root.addEventListener("dragover", (event) => { event.preventDefault(); root.classList.add("dragging"); });
    root.addEventListener("dragleave", () => root.classList.remove("dragging"));
    root.addEventListener("drop", (event) => {
      event.preventDefault();
      root.classList.remove("dragging");
      if (event.dataTransfer && event.dataTransfer.files.length) upload(event.dataTransfer.files);
    });
    root.atelierUpload = upload;
  }

  /* ---- video options follow the chosen model ---------------------------------------------------- */
  function setupVideoOptions(form) {
    const select = form.querySelector("[data-model-select]");
    if (!select) return;
    const fill = (id, values, format, keepBlank) => {
      const el = form.querySelector("#" + id);
      if (!el) return;
      const previous = el.value;
      const blank = keepBlank ? el.querySelector('option[value=""]') : null;
      el.replaceChildren();
      if (blank) el.append(blank);
      values.forEach((v) => {
        const o = document.createElement("option");
        o.value = String(v);
        o.textContent = format ? format(v) : String(v);
        el.append(o);
      });
      if (values.map(String).includes(previous)) el.value = previous;
    };
    const show = (key, visible) => {
      form.querySelectorAll('[data-video-field="' + key + '"]').forEach((field) => {
        field.classList.toggle("hidden", !visible);
        // Hidden choices must not be sent: a disabled control is left out of the form data.
        field.querySelectorAll("input, select").forEach((el) => { el.disabled = !visible; });
      });
    };
    const apply = () => {
      const option = select.selectedOptions[0];
      let video = {};
      try { video = JSON.parse((option && option.dataset.video) || "{}") || {}; } catch (e) { video = {}; }
      const durations = video.supported_durations || [];
      const resolutions = video.supported_resolutions || [];
      const ratios = video.supported_aspect_ratios || [];
      const sizes = video.supported_sizes || [];
      const frames = video.supported_frame_images || [];
      fill("duration", durations, (d) => d + " s");
      fill("resolution", resolutions);
      fill("video_aspect_ratio", ratios);
      fill("size", sizes, null, true);
      show("durations", durations.length > 0);
      show("resolutions", resolutions.length > 0);
      show("aspect_ratios", ratios.length > 0);
      show("sizes", sizes.length > 0);
      show("seed", !!video.seed);
      show("audio", !!video.generate_audio);
      show("frames", frames.length > 0);
      show("last_frame", frames.includes("last_frame"));
    };
    select.addEventListener("change", apply);
  }

  /* ---- image and video: post the form, show the result card, follow it until it is done ---------- */
  function setupMediaComposer(form) {
    const results = document.querySelector("[data-results]");
    const generateButton = form.querySelector("[data-generate]");
    const kind = form.dataset.mode;
    let busy = false;

    const placeholder = () => {
      const card = document.createElement("section");
      card.className = "card output";
      const box = document.createElement("div");
      box.className = "result";
      const callout = document.createElement("div");
      callout.className = "callout callout-running";
      const spinner = document.createElement("span");
      spinner.className = "spinner";
      const label = document.createElement("span");
      label.textContent = kind === "video" ? "Sending the video job…" : "Generating image…";
      const elapsed = document.createElement("span");
      elapsed.className = "elapsed mono";
      elapsed.dataset.elapsedSince = new Date().toISOString();
      elapsed.textContent = "00:00";
      callout.append(spinner, label, elapsed);
      box.append(callout);
      card.append(box);
      return card;
    };

    // One short status line for screen readers (the cards themselves are not a live region).
    const status = document.querySelector("[data-results-status]");
    const announce = (record) => {
      if (!status || !record) return;
      const what = kind === "video" ? "Video" : "Image";
      status.textContent = {
        succeeded: what + " ready.",
        running: kind === "video" ? "Video job sent; it is rendering." : "Generating.",
        queued: what + " request queued; Atelier sends it later.",
        failed: what + " failed: " + ((record.error && record.error.message) || "see the card."),
      }[record.status] || "";
    };
    const fail = (card, error) => {
      card.replaceChildren(Atelier.errorCallout(error));
      if (status) status.textContent = "Failed: " + ((error && error.message) || "see the card.");
    };

    const run = async () => {
      if (busy) return;
      const data = new FormData(form);
      data.delete("reference_files"); // already uploaded by the reference slots
      if (!data.get("model")) { form.reportValidity(); return; }
      const hasRefs = data.getAll("input_asset_ids").length || data.get("first_frame_id");
      if (!String(data.get("prompt") || "").trim() && !hasRefs && !data.get("template_id")) {
        form.querySelector("#prompt").focus();
        return;
      }
      busy = true;
      generateButton.setAttribute("aria-disabled", "true");
      generateButton.textContent = kind === "video" ? "Sending…" : "Generating…";
      const card = placeholder();
      results.prepend(card);
      Atelier.reveal(card);
      Atelier.tickElapsed();
      try {
        const response = await fetch(form.action, {
          method: "POST",
          headers: { "X-Requested-With": "fetch", Accept: "application/json" },
          body: data,
          credentials: "same-origin",
        });
        const answer = await response.json().catch(() => ({}));
        if (response.status === 401) fail(card, { message: "Atelier was restarted. Reopen it from the app to continue." });
        else if (answer.html) {
          card.innerHTML = answer.html; // server-rendered and escaped, from our own origin
          Atelier.enhance(card);
          Atelier.reveal(card);
          announce(answer.generation);
        } else {
          fail(card, answer.error);
        }
      } catch (e) {
        fail(card, { message: "Atelier did not answer. If the request reached the engine it is in the Library." });
      } finally {
        busy = false;
        generateButton.removeAttribute("aria-disabled");
        generateButton.textContent = "Generate";
        document.dispatchEvent(new CustomEvent("atelier:generated"));
      }
    };

    form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); run(); }
    });
    // Paste an image anywhere in the form: it becomes a reference (image) or the first frame (video).
    form.addEventListener("paste", (event) => {
      const files = Array.from((event.clipboardData && event.clipboardData.files) || []).filter((f) => f.type.startsWith("image/"));
      const slot = form.querySelector("[data-refs]");
      if (files.length && slot && slot.atelierUpload) { event.preventDefault(); slot.atelierUpload(files); }
    });
  }

  /* ---- "Use template": one field per variable instead of the prompt ------------------------------ */
  function setupUseTemplate(form) {
    const select = form.querySelector("[data-use-template]");
    if (!select) return;
    const box = form.querySelector("[data-template-vars]");
    const promptField = form.querySelector("[data-prompt-field]");
    const prompt = promptField ? promptField.querySelector("textarea") : null;
    const apply = () => {
      const option = select.selectedOptions[0];
      const names = option && option.value ? (option.dataset.variables || "").split(",").filter(Boolean) : [];
      const previous = {};
      box.querySelectorAll("input").forEach((input) => { previous[input.name] = input.value; });
      box.replaceChildren();
      names.forEach((name) => {
        const field = document.createElement("div");
        field.className = "field";
        const label = document.createElement("label");
        label.htmlFor = "var-" + name;
        label.textContent = name;
        const input = document.createElement("input");
        input.type = "text";
        input.id = "var-" + name;
        input.name = "var__" + name;
        input.value = previous["var__" + name] || "";
        field.append(label, input);
        box.append(field);
      });
      const templated = Boolean(option && option.value);
      if (promptField) promptField.classList.toggle("hidden", templated);
      if (prompt) {
        prompt.disabled = templated; // left out of the form data, and not required
        if (form.dataset.mode === "text") prompt.required = !templated;
      }
    };
    select.addEventListener("change", apply);
    apply();
  }

  /* ---- the Recent list follows what happens in the Studio --------------------------------------- */
  let recentTimer = null;
  document.addEventListener("atelier:generated", () => {
    const box = document.querySelector("[data-recent]");
    if (!box) return;
    window.clearTimeout(recentTimer);
    recentTimer = window.setTimeout(async () => {
      try {
        const response = await fetch(box.dataset.recentUrl, { credentials: "same-origin" });
        if (response.ok) box.innerHTML = await response.text(); // server-rendered, escaped
      } catch (e) { /* keep the list as it is */ }
    }, 150);
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-model-picker]").forEach(buildPicker);
    document.querySelectorAll("[data-refs]").forEach(setupRefs);
    const form = document.querySelector("[data-composer]");
    if (!form) return;
    setupUseTemplate(form);
    if (form.dataset.mode === "text") setupComposer(form);
    else setupMediaComposer(form);
    if (form.dataset.mode === "video") setupVideoOptions(form);
  });
})();
