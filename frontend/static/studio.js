/* Studio: searchable model picker, conversations (streamed turns, reply, regenerate, edit, branches, copy, Esc
   stops), image refine, and the final rendered results. */
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

  /* ---- text: a conversation — stream a turn, reply, regenerate, edit, copy, follow queued turns ---- */
  /** Copy buttons on code blocks (the app's [data-copy] handler does the copying). */
  function addCodeCopy(root) {
    root.querySelectorAll(".md pre").forEach((pre) => {
      if (pre.querySelector("[data-copy]")) return;
      const code = pre.querySelector("code") || pre;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button small ghost code-copy";
      button.dataset.copy = code.textContent;
      button.textContent = "Copy";
      button.title = "Copy this code";
      pre.append(button);
    });
  }

  function setupChat(form) {
    const chat = form.closest("[data-chat]");
    const thread = chat.querySelector("[data-thread]");
    const sendButton = form.querySelector("[data-generate]");
    const stopButton = form.querySelector("[data-stop]");
    const convField = form.querySelector("[data-conversation-field]");
    const parentField = form.querySelector("[data-parent-field]");
    const promptBox = form.querySelector("#prompt");
    const select = form.querySelector("[data-model-select]");
    const refs = form.querySelector("[data-refs]");
    const visionWarning = form.querySelector("[data-vision-warning]");
    const urlFor = (attr, id) => form.getAttribute(attr).replace("GENID", encodeURIComponent(id));
    let current = null; // the stream in progress: {controller, id, stopping}

    /* The view follows a growing answer unless the user scrolled up to read. */
    const scroller = document.scrollingElement || document.documentElement;
    let stick = true;
    window.addEventListener("scroll", () => {
      stick = scroller.scrollHeight - scroller.scrollTop - window.innerHeight < 160;
    }, { passive: true });
    const keepInView = () => {
      if (stick) window.scrollTo(0, scroller.scrollHeight); // the growing answer and the composer below it
    };
    const revealIfBelow = (el) => {
      const box = el.getBoundingClientRect();
      if (box.top > window.innerHeight - 80) Atelier.reveal(el); // smooth unless reduced motion is asked for
    };

    const refreshList = async (q) => {
      const box = document.querySelector("[data-conversations]");
      if (!box) return;
      const params = new URLSearchParams({ current: convField.value || "" });
      if (q) params.set("q", q);
      try {
        const response = await fetch(form.dataset.listUrl + "?" + params.toString(), { credentials: "same-origin" });
        if (response.ok) box.innerHTML = await response.text(); // server-rendered, escaped
      } catch (e) { /* keep the list as it is */ }
    };

    /** After a turn: the head's numbers (turns, cost); a new conversation's first turn brings its whole head
        (title to rename, Delete). */
    const refreshHead = async (url, whole) => {
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (!response.ok) return;
        const doc = new DOMParser().parseFromString(await response.text(), "text/html"); // our own page
        const fresh = doc.querySelector("[data-chat-head]");
        const head = chat.querySelector("[data-chat-head]");
        const stats = chat.querySelector("[data-chat-stats]");
        const freshStats = doc.querySelector("[data-chat-stats]");
        if (!whole && stats && freshStats) {
          stats.textContent = freshStats.textContent;
        } else if (fresh && head) {
          head.replaceWith(document.importNode(fresh, true));
          setupRename();
        }
      } catch (e) { /* the head follows on the next load */ }
    };

    const setBusy = (busy) => {
      // Keep keyboard focus on the action that is visible: Stop while answering, Send afterwards.
      const active = document.activeElement;
      const moveFocus = active === sendButton || active === stopButton || active === document.body || !active;
      sendButton.disabled = busy;
      sendButton.textContent = busy ? "Answering…" : "Send";
      stopButton.classList.toggle("hidden", !busy);
      if (moveFocus) (busy ? stopButton : sendButton).focus();
    };

    // The thread is the live region (there from the page's load): answers stream into it as appended text, and
    // it is busy until the finished turn is in place. Statuses go to their own line, outside it.
    const chatStatus = chat.querySelector("[data-chat-status]");
    const announce = (message) => { if (chatStatus) chatStatus.textContent = message; };
    const announceRecord = (record) => {
      if (!record) return;
      announce({
        succeeded: "Answer ready.",
        running: "Answering.",
        queued: "Prompt queued; Atelier sends it later.",
        cancelled: "Stopped.",
        interrupted: "The answer broke off; the part that arrived is kept.",
        failed: "Failed: " + ((record.error && record.error.message) || "see the answer."),
      }[record.status] || "");
    };
    const threadBusy = (busy) => thread.setAttribute("aria-busy", busy ? "true" : "false");

    const showError = (article, error) => {
      const answer = article.querySelector("[data-answer]");
      answer.querySelector("[data-answer-text]")?.classList.remove("streaming-text");
      answer.append(Atelier.errorCallout(error));
    };

    /** Replace a turn with its server-rendered version (markdown, tools, branch arrows); follow it if unfinished. */
    const swap = async (article, id) => {
      const content = await Atelier.fetchFragment(urlFor("data-turn-url", id));
      const fresh = content && content.firstElementChild;
      if (!fresh) return article;
      article.replaceWith(fresh);
      setupTurn(fresh);
      revealIfBelow(fresh);
      return fresh;
    };

    /** Follow a turn that waits or runs without us streaming it (offline queue, a reload mid-answer). */
    const followTurn = (article) => {
      const url = article.dataset.turnEvents;
      if (!url || !window.EventSource || article.atelierFollowing) return;
      article.atelierFollowing = true;
      const text = article.querySelector("[data-answer-text]");
      let wasQueued = article.dataset.status === "queued";
      const close = Atelier.follow(url, {
        record: (record) => {
          if (record.output_text && record.output_text.length > text.textContent.length) {
            text.textContent = record.output_text;
          }
          if (wasQueued && record.status === "running") {
            wasQueued = false;
            const waiting = article.querySelector("[data-turn-waiting]");
            if (waiting) waiting.remove();
          }
        },
        delta: (chunk) => {
          const waiting = article.querySelector("[data-turn-waiting]");
          if (waiting) waiting.remove();
          text.append(document.createTextNode(chunk)); // plain text: model output is never parsed as HTML here
          keepInView(article);
        },
        end: () => {
          close();
          swap(article, article.dataset.turnId).then(() => refreshList());
          document.dispatchEvent(new CustomEvent("atelier:generated"));
        },
      });
    };

    const pendingTurn = (promptText, model) => {
      const article = document.createElement("article");
      article.className = "turn pending";
      article.dataset.turn = "";
      const user = document.createElement("div");
      user.className = "turn-user";
      const bubble = document.createElement("div");
      bubble.className = "bubble";
      bubble.textContent = promptText;
      user.append(bubble);
      const answer = document.createElement("div");
      answer.className = "turn-answer";
      answer.dataset.answer = "";
      const meta = document.createElement("div");
      meta.className = "turn-meta";
      const name = document.createElement("span");
      name.className = "mono";
      name.textContent = model;
      const badge = document.createElement("span");
      badge.className = "badge badge-running";
      badge.dataset.liveStatus = "";
      badge.setAttribute("aria-hidden", "true"); // announced by the status line outside the thread
      badge.textContent = "Starting…";
      meta.append(name, badge);
      const text = document.createElement("div");
      text.className = "prose md streaming-text";
      text.dataset.answerText = "";
      answer.append(meta, text);
      article.append(user, answer);
      return article;
    };

    const chosenImages = () => Array.from(form.querySelectorAll('input[name="input_asset_ids"]')).map((i) => i.value);
    const canSee = () => {
      const option = select && select.selectedOptions[0];
      return !option || !select.options.length || option.dataset.vision === "1" || !option.dataset.name;
    };
    const checkVision = () => {
      const blocked = chosenImages().length > 0 && !canSee();
      visionWarning.classList.toggle("hidden", !blocked);
      return !blocked;
    };
    if (select) select.addEventListener("change", checkVision);

    /** Send one turn and stream its answer into the thread. */
    const send = async ({ promptText, parentId, siblingOf, images, replaceFrom, extra }) => {
      if (current) return;
      const data = Object.fromEntries(new FormData(form).entries());
      if (!data.model) { form.reportValidity(); return; }
      if (!checkVision()) return;
      const body = {
        kind: "text", model: data.model, prompt: promptText, system: data.system || "",
        temperature: data.temperature || "", max_tokens: data.max_tokens || "", input_asset_ids: images || [],
        ...(extra || {}),
      };
      if (siblingOf) {
        // A regenerate or an edit: a new branch beside that turn (a first turn too), in this conversation.
        body.sibling_of = siblingOf;
        body.conversation_id = convField.value || "";
      } else if (parentId) {
        body.parent_id = parentId;
        body.conversation_id = convField.value || "";
      }
      if (replaceFrom) {
        // A regenerate or an edit: the old branch stays in the conversation; this view moves to the new one.
        let node = replaceFrom;
        while (node) { const next = node.nextElementSibling; node.remove(); node = next; }
      }
      const wasInConversation = Boolean(convField.value);
      chat.querySelector("[data-chat-empty]")?.remove();
      let article = pendingTurn(promptText, data.model);
      thread.append(article);
      stick = true;
      keepInView(article);
      const text = article.querySelector("[data-answer-text]");
      const badge = article.querySelector("[data-live-status]");
      current = { controller: new AbortController(), id: null, stopping: false };
      const run = current;
      setBusy(true);
      threadBusy(true);
      announce("Answering.");
      Atelier.reveal(article);
      let error = null;
      let last = null;
      try {
        const response = await fetch(form.dataset.streamUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-Requested-With": "fetch" },
          body: JSON.stringify(body),
          credentials: "same-origin",
          signal: run.controller.signal,
        });
        if (response.status === 401) {
          error = { message: "Atelier was restarted. Reopen it from the app to continue." };
        } else {
          await Atelier.readEvents(response, Atelier.generationEvents({
            record: (record) => {
              if (!record.id) return;
              run.id = record.id;
              article.dataset.turnId = record.id;
              if (record.conversation_id) convField.value = record.conversation_id;
              badge.textContent = record.status === "queued" ? "Queued" : "Generating";
              if (record.status === "queued") announceRecord(record);
            },
            delta: (chunk) => {
              text.append(document.createTextNode(chunk)); // plain text: model output is never parsed as HTML here
              keepInView(article);
            },
            end: (record, err) => {
              last = record || (err ? { status: "failed", error: err } : null);
              if (record && record.id) {
                run.id = record.id;
                if (record.conversation_id) convField.value = record.conversation_id;
              } else if (err) {
                error = err;
              }
            },
          }));
        }
      } catch (e) {
        if (!run.stopping) error = { message: "The connection to Atelier broke. Whatever arrived is saved in the Library." };
      } finally {
        current = null;
        setBusy(false);
      }
      if (run.id) {
        parentField.value = run.id;
        promptBox.placeholder = "Reply…";
        const url = new URL(form.dataset.pageUrl, window.location.href);
        url.searchParams.set("conversation", convField.value);
        url.searchParams.set("turn", run.id);
        window.history.replaceState(null, "", url.toString());
        const started = !wasInConversation && convField.value;
        article = await swap(article, run.id);
        threadBusy(false);
        announceRecord(last || { status: article.dataset.status });
        Atelier.reveal(article); // the whole answer, not just its top line
        refreshList();
        refreshHead(url.toString(), started);
      } else if (error) {
        badge.textContent = "Failed";
        badge.className = "badge badge-failed";
        showError(article, error);
        threadBusy(false);
        announceRecord({ status: "failed", error });
      } else {
        threadBusy(false);
      }
      document.dispatchEvent(new CustomEvent("atelier:generated"));
    };

    const stop = async () => {
      if (!current) return;
      const run = current;
      run.stopping = true;
      stopButton.disabled = true;
      try {
        if (run.id) await Atelier.post(urlFor("data-cancel-url", run.id));
      } catch (e) { /* the stream is cut below either way */ }
      // Give the engine a moment to end the stream with the cancelled record, then cut it.
      window.setTimeout(() => { if (current === run) run.controller.abort(); }, 3000);
      stopButton.disabled = false;
    };

    const sendFromComposer = () => {
      const templateSelect = form.querySelector("[data-use-template]");
      const template = templateSelect && templateSelect.value;
      if (template) {
        // A template: its variables go with the turn; the engine renders the prompt (shown once answered).
        const extra = { template_id: template };
        new FormData(form).forEach((value, name) => { if (name.startsWith("var__")) extra[name] = value; });
        send({ promptText: templateSelect.selectedOptions[0].textContent, parentId: parentField.value || null,
               images: chosenImages(), extra });
        return;
      }
      const promptText = promptBox.value.trim();
      if (!promptText) { promptBox.focus(); return; }
      const images = chosenImages();
      if (images.length && !checkVision()) return;
      promptBox.value = "";
      form.querySelectorAll("[data-ref]").forEach((chip) => chip.remove());
      refs?.querySelector("[data-ref-add]")?.classList.remove("hidden");
      send({ promptText, parentId: parentField.value || null, images });
    };

    form.addEventListener("submit", (event) => { event.preventDefault(); sendFromComposer(); });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); sendFromComposer(); }
    });
    stopButton.addEventListener("click", stop); // Esc clicks the visible Stop (app.js)
    form.addEventListener("paste", (event) => {
      const files = Array.from((event.clipboardData && event.clipboardData.files) || []).filter((f) => f.type.startsWith("image/"));
      if (files.length && refs && refs.atelierUpload) { event.preventDefault(); refs.atelierUpload(files).then(checkVision); }
    });
    if (refs) new MutationObserver(checkVision).observe(refs, { childList: true, subtree: true });

    /** Tools of one turn: Copy text, Regenerate, Edit, Stop (a followed turn). */
    function setupTurn(article) {
      addCodeCopy(article);
      if (article.dataset.turnEvents) followTurn(article);
      followCost(article, 0);
    }

    /** A stopped or broken-off answer's cost comes from OpenRouter a little later (docs/openrouter.md,
     * "Generation stats"): redraw just the cost a few times, as the backend's lookups are due. */
    const COST_CHECKS_MS = [3000, 12000, 65000];
    function followCost(article, step) {
      if (step >= COST_CHECKS_MS.length || !article.querySelector("[data-cost-awaited]")) return;
      window.setTimeout(async () => {
        if (!article.isConnected) return;
        const content = await Atelier.fetchFragment(urlFor("data-turn-url", article.dataset.turnId));
        const fresh = content && content.querySelector("[data-cost]"); // none: the cost shows at the next visit
        const shown = article.querySelector("[data-cost]");
        if (fresh && shown && article.isConnected) shown.replaceWith(fresh);
        followCost(article, step + 1);
      }, COST_CHECKS_MS[step] - (step ? COST_CHECKS_MS[step - 1] : 0));
    }

    thread.addEventListener("click", async (event) => {
      const article = event.target.closest("[data-turn]");
      if (!article) return;
      const images = (article.dataset.images || "").split(",").filter(Boolean);
      const promptText = article.querySelector("[data-prompt]")?.textContent || "";
      const plain = event.target.closest("[data-copy-plain]");
      if (plain) {
        const label = plain.dataset.label || plain.textContent;
        plain.dataset.label = label;
        const ok = await Atelier.copyText(article.querySelector("[data-answer-text]").innerText);
        plain.textContent = ok ? "Copied ✓" : "Copy failed";
        window.setTimeout(() => { plain.textContent = label; }, 1600);
        return;
      }
      if (event.target.closest("[data-regenerate]")) {
        send({ promptText, siblingOf: article.dataset.turnId, images, replaceFrom: article });
        return;
      }
      if (event.target.closest("[data-stop-turn]")) {
        try { await Atelier.post(urlFor("data-cancel-url", article.dataset.turnId)); } catch (e) { /* shown on reload */ }
        return;
      }
      const edit = event.target.closest("[data-edit]");
      if (edit && !article.querySelector("[data-edit-box]")) {
        const bubble = article.querySelector("[data-prompt]");
        const el = Atelier.el;
        const area = el("textarea", { value: promptText,
                                      rows: Math.min(12, Math.max(2, promptText.split("\n").length + 1)),
                                      attrs: { "aria-label": "Edit the prompt" } });
        const save = el("button", { type: "button", className: "button primary small",
                                    textContent: "Send as a new branch", data: { editSend: "" } });
        const cancel = el("button", { type: "button", className: "button small ghost", textContent: "Cancel" });
        const box = el("div", { className: "edit-box", data: { editBox: "" } },
                       area, el("div", { className: "actions" }, save, cancel));
        bubble.classList.add("hidden");
        bubble.after(box);
        area.focus();
        cancel.addEventListener("click", () => { box.remove(); bubble.classList.remove("hidden"); });
        const go = () => {
          const changed = area.value.trim();
          if (!changed) { area.focus(); return; }
          send({ promptText: changed, siblingOf: article.dataset.turnId, images, replaceFrom: article });
        };
        save.addEventListener("click", go);
        area.addEventListener("keydown", (e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); go(); }
          if (e.key === "Escape") { e.stopPropagation(); cancel.click(); }
        });
      }
    });

    // The title is saved when it changes (Enter or leaving the box).
    function setupRename() {
      const rename = chat.querySelector("[data-rename]");
      if (!rename) return;
      const input = rename.querySelector("[data-title-input]");
      let saved = input.value;
      const save = async () => {
        if (input.value.trim() === saved) return;
        const response = await Atelier.post(rename.action, new FormData(rename));
        if (response.ok) {
          const answer = await response.json();
          input.value = saved = answer.title;
          refreshList();
        }
      };
      rename.addEventListener("submit", (event) => { event.preventDefault(); save(); });
      input.addEventListener("blur", save);
    }
    setupRename();

    const search = document.querySelector("[data-conv-search]");
    let searchTimer = null;
    if (search) {
      search.addEventListener("input", () => {
        window.clearTimeout(searchTimer);
        searchTimer = window.setTimeout(() => refreshList(search.value.trim()), 200);
      });
    }

    thread.querySelectorAll("[data-turn]").forEach(setupTurn);
    if (thread.querySelector("[data-turn]")) window.scrollTo(0, scroller.scrollHeight);
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

    /** One request and its result card (Variations send several at once). */
    const one = async (data) => {
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
          followRefine(answer.generation);
        } else {
          fail(card, answer.error);
        }
      } catch (e) {
        fail(card, { message: "Atelier did not answer. If the request reached the engine it is in the Library." });
      }
    };

    /** Refining: the next prompt edits the newest result (the conversation goes on from it). */
    const followRefine = (record) => {
      const parent = form.querySelector('input[name="parent_id"]');
      if (!parent || !record || record.status !== "succeeded" || !(record.assets || []).length) return;
      parent.value = record.id;
      const source = document.querySelector("[data-refine]");
      const img = source && source.querySelector("img");
      if (img) img.src = record.assets[0].url.replace("/api/v1/assets/", "/assets/") + "?thumb=1";
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
      generateButton.setAttribute("aria-disabled", "true"); // not disabled: keyboard focus stays on the button
      generateButton.textContent = kind === "video" ? "Sending…" : "Generating…";
      const count = Math.max(1, Math.min(4, Number(data.get("count") || 1)));
      data.delete("count");
      try {
        await Promise.all(Array.from({ length: count }, () => one(data)));
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
    const show = form.querySelector("[data-use-template-show]");
    if (show) show.classList.add("hidden"); // the fields follow the choice as it changes (the button is for pages without scripts)
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
    if (form.dataset.mode === "text") setupChat(form);
    else setupMediaComposer(form);
    if (form.dataset.mode === "video") setupVideoOptions(form);
  });
})();
