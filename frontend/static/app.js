/* Atelier — behaviour shared by every page: status pill, outbox count, confirmations, following a generation's
   event stream, and the error callout. */
(function () {
  "use strict";

  const Atelier = (window.Atelier = window.Atelier || {});

  /** Read a text/event-stream body from fetch(), calling onEvent(name, data) per event. */
  Atelier.readEvents = async function (response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dispatch = (block) => {
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (!data.length) return;
      let parsed;
      try { parsed = JSON.parse(data.join("\n")); } catch (e) { parsed = data.join("\n"); }
      onEvent(name, parsed);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let split;
      while ((split = buffer.indexOf("\n\n")) !== -1) {
        dispatch(buffer.slice(0, split));
        buffer = buffer.slice(split + 2);
      }
    }
    buffer += decoder.decode();
    if (buffer.trim()) dispatch(buffer);
  };

  /** Statuses a generation never leaves. */
  Atelier.TERMINAL = ["succeeded", "failed", "interrupted", "cancelled"];

  /**
   * The one reader of the engine's generation events, whichever way they arrive (a fetch() stream or an
   * EventSource). Returns onEvent(name, data) for Atelier.readEvents / Atelier.follow. Handlers (all optional):
   *   record(record)      — the record as it is now (``generation``/``message`` events);
   *   delta(text)         — more streamed text;
   *   progress(data)      — a media job's progress (``{status}``);
   *   end(record, error)  — once: the generation reached its end (done, failed, queued for later…); ``record``
   *                         is the final record when the engine sent one, ``error`` the engine's error object.
   */
  Atelier.generationEvents = function (handlers) {
    const on = handlers || {};
    let ended = false;
    const end = (record, error) => {
      if (ended) return;
      ended = true;
      if (on.end) on.end(record || null, error || null);
    };
    return (name, data) => {
      if (ended) return;
      if (name === "delta") {
        if (on.delta && data && typeof data.text === "string") on.delta(data.text);
      } else if (name === "progress") {
        if (on.progress && data) on.progress(data);
      } else if (name === "done") {
        end(data && data.id ? data : null, null);
      } else if (name === "error") {
        end(data && data.generation, data && data.error);
      } else if (name === "generation" || name === "message") {
        const record = data && data.generation ? data.generation : data;
        if (!record || !record.status) return;
        if (on.record) on.record(record);
        if (Atelier.TERMINAL.includes(record.status)) end(record, record.error);
      }
    };
  };

  /**
   * Follow a generation's live events from ``url`` (GET, EventSource) with Atelier.generationEvents handlers.
   * Closes the stream at the end; a dropped connection is re-opened by the browser. Returns a close function.
   */
  Atelier.follow = function (url, handlers) {
    const source = new EventSource(url);
    const userEnd = handlers.end;
    const onEvent = Atelier.generationEvents({
      ...handlers,
      end: (record, error) => {
        source.close();
        if (userEnd) userEnd(record, error);
      },
    });
    const relay = (event) => {
      if (!event.data) return; // EventSource's own "error": the connection dropped, it reconnects by itself
      let data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      onEvent(event.type, data);
    };
    ["generation", "message", "delta", "progress", "done", "error"].forEach((name) => source.addEventListener(name, relay));
    return () => source.close();
  };

  /**
   * The error callout every page shows: the engine's message as it is, and a link to the screen that fixes it
   * when the error names one (``action``). ``error`` is the engine's error object (or ``{message}``).
   */
  Atelier.errorCallout = function (error, fallback) {
    const err = error || {};
    const box = document.createElement("div");
    box.className = "callout callout-error";
    box.setAttribute("role", "alert");
    const title = document.createElement("strong");
    title.className = "callout-title";
    title.textContent = err.message || fallback || "The generation failed.";
    box.append(title);
    if (err.action === "settings") {
      const p = document.createElement("p");
      p.className = "callout-action";
      const a = document.createElement("a");
      a.href = "/settings";
      a.dataset.errorAction = "settings";
      a.textContent = "Open Settings →";
      p.append(a);
      box.append(p);
    }
    return box;
  };

  /** A new element: ``props`` are set as properties (``className``, ``type``, ``textContent``…), except
   *  ``data`` (merged into ``dataset``) and ``attrs`` (set as attributes, e.g. ``aria-label``); then
   *  ``children`` are appended. */
  Atelier.el = function (tag, props, ...children) {
    const node = document.createElement(tag);
    const { data, attrs, ...rest } = props || {};
    Object.assign(node, rest);
    Object.assign(node.dataset, data || {});
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    node.append(...children);
    return node;
  };

  /** Scroll ``el`` into view as little as needed (smoothly, unless the person asked for reduced motion). */
  Atelier.reveal = function (el) {
    if (!el) return;
    const still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    el.scrollIntoView({ block: "nearest", behavior: still ? "auto" : "smooth" });
  };

  /** POST with our JSON marker header (same-origin; cookies are sent automatically). */
  Atelier.post = function (url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "X-Requested-With": "fetch", Accept: "application/json" },
      body: body || new FormData(),
      credentials: "same-origin",
    });
  };

  /** A server-rendered fragment from ``url`` (our own origin, escaped by the server) as a DocumentFragment;
      null when nothing usable came (signed out, an error answer, offline). */
  Atelier.fetchFragment = async function (url) {
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return null;
      const template = document.createElement("template");
      template.innerHTML = (await response.text()).trim();
      return template.content;
    } catch (e) {
      return null;
    }
  };

  /** Replace a live part of a page (the queue, a batch) with a fresh server-rendered copy from ``url``. True
      when it was replaced; false when nothing usable came (signed out, an error, offline: try again later). */
  Atelier.refreshFragment = async function (live, url) {
    const content = await Atelier.fetchFragment(url);
    if (!content) return false;
    live.replaceChildren(content);
    return true;
  };

  function updateStatus(state) {
    const pill = document.querySelector("[data-status-pill]");
    const text = document.querySelector("[data-status-text]");
    const count = document.querySelector("[data-outbox-count]");
    const paused = !!(state.engine && state.queue && state.queue.paused);
    if (pill && text) {
      pill.classList.remove("pill-ok", "pill-warn", "pill-bad", "pill-paused");
      if (!state.engine) { pill.classList.add("pill-bad"); text.textContent = "Engine stopped"; }
      else if (!state.online) { pill.classList.add("pill-warn"); text.textContent = paused ? "Offline · paused" : "Offline"; }
      else if (paused) { pill.classList.add("pill-paused"); text.textContent = "Sending paused"; }
      else { pill.classList.add("pill-ok"); text.textContent = "Online"; }
    }
    document.querySelectorAll("[data-offline-banner]").forEach((el) => el.classList.toggle("hidden", !state.engine || !!state.online));
    document.querySelectorAll("[data-paused-banner]").forEach((el) => el.classList.toggle("hidden", !paused));
    if (count && state.queue) {
      const waiting = (state.queue.queued || 0) + (state.queue.running || 0);
      count.textContent = String(waiting);
      count.classList.toggle("hidden", waiting === 0);
    }
    document.dispatchEvent(new CustomEvent("atelier:status", { detail: state }));
  }

  let pollTimer = null;
  async function pollStatus() {
    window.clearTimeout(pollTimer);
    try {
      const response = await fetch("/ui/status", { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.status === 401) return; // signed out (app restarted): stop polling
      updateStatus(await response.json());
    } catch (e) {
      updateStatus({ engine: false });
    }
    pollTimer = window.setTimeout(pollStatus, document.hidden ? 15000 : 5000);
  }
  // Right after a generation starts or ends, the pill and the outbox count are worth refreshing at once.
  document.addEventListener("atelier:generated", () => { pollStatus(); });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  /* ---- Retry on a failed result card: send it again and follow the card in place ------------------ */
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("[data-retry-form]");
    const result = form && form.closest(".result[data-generation-id]");
    if (!result || event.defaultPrevented) return;
    event.preventDefault();
    const button = form.querySelector("button");
    if (button) button.setAttribute("aria-disabled", "true");
    try {
      const response = await Atelier.post(form.action);
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        const callout = Atelier.errorCallout(answer.error, "Atelier could not send it again.");
        form.closest(".result-foot").before(callout);
        if (button) { button.removeAttribute("aria-disabled"); button.focus(); }
        return;
      }
      const fresh = await Atelier.fetchFragment("/g/" + encodeURIComponent(result.dataset.generationId) + "/result");
      const card = fresh && fresh.firstElementChild;
      if (!card) return;
      result.replaceWith(card);
      Atelier.enhance(card.parentElement || document);
      const focusable = card.querySelector("a, button") || card;
      focusable.focus();
      document.dispatchEvent(new CustomEvent("atelier:generated"));
    } catch (e) {
      if (button) button.removeAttribute("aria-disabled");
    }
  });

  /* ---- elapsed-time counters ("Rendering… 01:23"), from a server timestamp so reloads keep counting -- */
  const pad = (n) => String(n).padStart(2, "0");
  Atelier.formatElapsed = function (seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const mmss = pad(Math.floor((s % 3600) / 60)) + ":" + pad(s % 60);
    return h ? h + ":" + mmss : mmss;
  };
  let ticker = null;
  Atelier.tickElapsed = function () {
    const counters = document.querySelectorAll("[data-elapsed-since]");
    counters.forEach((el) => {
      const since = Date.parse(el.dataset.elapsedSince);
      if (!Number.isNaN(since)) el.textContent = Atelier.formatElapsed((Date.now() - since) / 1000);
    });
    if (counters.length && !ticker) ticker = window.setInterval(Atelier.tickElapsed, 1000);
    if (!counters.length && ticker) { window.clearInterval(ticker); ticker = null; }
  };

  /* ---- live relative times ("in 4 s", "12 s ago"), from a server timestamp ------------------------ */
  Atelier.formatRelative = function (iso) {
    const at = Date.parse(iso);
    if (Number.isNaN(at)) return "";
    const diff = Math.round((at - Date.now()) / 1000);
    const s = Math.abs(diff);
    if (diff <= 1 && diff >= -1) return "now";
    let amount;
    if (s < 60) amount = s + " s";
    else if (s < 3600) amount = Math.floor(s / 60) + " min";
    else if (s < 86400) amount = Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    else amount = Math.floor(s / 86400) + " d";
    return diff > 0 ? "in " + amount : amount + " ago";
  };
  let relativeTicker = null;
  Atelier.tickRelative = function () {
    const stamps = document.querySelectorAll("[data-relative]");
    stamps.forEach((el) => {
      const due = Date.parse(el.dataset.relative);
      // A due time that has passed means the attempt is about to start: say so instead of "4 s ago".
      if (!Number.isNaN(due) && due <= Date.now() && el.dataset.relativeDue) el.textContent = el.dataset.relativeDue;
      else el.textContent = Atelier.formatRelative(el.dataset.relative);
    });
    if (stamps.length && !relativeTicker) relativeTicker = window.setInterval(Atelier.tickRelative, 1000);
    if (!stamps.length && relativeTicker) { window.clearInterval(relativeTicker); relativeTicker = null; }
  };

  /* ---- a video the browser cannot play says so (instead of an empty black box) ------------------ */
  function videoFailed(video) {
    const figure = video.closest("figure") || video.parentElement;
    if (!figure || figure.querySelector("[data-video-error]")) return;
    const note = document.createElement("p");
    note.className = "callout callout-error video-error";
    note.setAttribute("role", "alert");
    note.dataset.videoError = "";
    note.textContent = "This video cannot be played here: the file could not be decoded. Download it to try another player.";
    video.after(note);
    video.classList.add("video-broken"); // no endless spinner over a file that will never play
  }
  document.addEventListener("error", (event) => {
    const target = event.target;
    if (target && target.tagName === "VIDEO") videoFailed(target);
    else if (target && target.tagName === "SOURCE" && target.parentElement) videoFailed(target.parentElement);
  }, true);
  function checkVideos(root) {
    (root || document).querySelectorAll("video").forEach((video) => {
      if (video.error) videoFailed(video);
    });
  }

  /* ---- keyboard: Ctrl/Cmd+K focuses the model picker, Esc closes or stops what is open ------------ */
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey && (event.key === "k" || event.key === "K")) {
      const picker = document.querySelector(".picker-button") || document.querySelector("[data-model-select]:not(.hidden)");
      if (picker) {
        event.preventDefault();
        picker.focus();
        if (picker.classList.contains("picker-button") && picker.getAttribute("aria-expanded") !== "true") picker.click();
      }
      return;
    }
    if (event.key !== "Escape" || event.defaultPrevented) return;
    const panel = document.querySelector(".picker-panel:not(.hidden)");
    if (panel) {
      panel.classList.add("hidden");
      const button = panel.parentElement.querySelector(".picker-button");
      if (button) { button.setAttribute("aria-expanded", "false"); button.focus(); }
      event.preventDefault();
      return;
    }
    const stop = document.querySelector("[data-stop]:not(.hidden)");
    if (stop && !stop.disabled) {
      event.preventDefault();
      stop.click();
    }
  });

  /* ---- follow an unfinished result (image/video in the Studio) until it is done ------------------- */
  const PROGRESS = { pending: "Waiting for the provider…", queued: "Waiting for the provider…", in_progress: "Rendering…", processing: "Rendering…" };

  function follow(result) {
    const eventsUrl = result.dataset.followEvents;
    const resultUrl = result.dataset.followResult;
    if (!eventsUrl || !resultUrl || !window.EventSource || result.atelierFollowing) return;
    result.atelierFollowing = true;
    let settled = false;
    let close = null;
    const settle = async () => {
      if (settled) return;
      settled = true;
      if (close) close();
      try {
        const content = await Atelier.fetchFragment(resultUrl);
        const fresh = content && content.firstElementChild;
        if (!fresh) return;
        result.replaceWith(fresh);
        Atelier.enhance(fresh.parentElement || document);
        document.dispatchEvent(new CustomEvent("atelier:generated"));
      } catch (e) { /* keep what is shown; the Library has the result */ }
    };
    const shownQueued = () => result.dataset.resultStatus === "queued";
    close = Atelier.follow(eventsUrl, {
      record: (record) => { if (record.status === "queued" && !shownQueued()) settle(); },
      progress: (data) => {
        const label = result.querySelector("[data-running-label]");
        if (label && PROGRESS[data.status]) label.textContent = PROGRESS[data.status];
        if (data.status === "running" && shownQueued()) settle();
      },
      end: settle, // the page shows the record's final state, error included
    });
  }

  /* ---- full-size image view ---------------------------------------------------------------------- */
  let lightbox = null;
  function openLightbox(src, alt) {
    if (!lightbox) {
      lightbox = document.createElement("dialog");
      lightbox.className = "lightbox";
      const img = document.createElement("img");
      const close = document.createElement("button");
      close.type = "button";
      close.className = "lightbox-close";
      close.setAttribute("aria-label", "Close");
      close.textContent = "×";
      lightbox.append(img, close);
      lightbox.addEventListener("click", (event) => { if (event.target !== img) lightbox.close(); });
      document.body.append(lightbox);
    }
    const img = lightbox.querySelector("img");
    img.src = src;
    img.alt = alt || "";
    lightbox.showModal();
  }

  /* ---- copy to the clipboard --------------------------------------------------------------------- */
  const copyText = (Atelier.copyText = async function (text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.append(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      return ok;
    }
  });

  document.addEventListener("click", async (event) => {
    const view = event.target.closest("[data-lightbox]");
    if (view && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
      event.preventDefault();
      const img = view.querySelector("img");
      openLightbox(view.dataset.full || view.href, img ? img.alt : "");
      return;
    }
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const label = copy.dataset.label || copy.textContent;
      copy.dataset.label = label;
      copy.textContent = (await copyText(copy.dataset.copy)) ? "Copied ✓" : "Copy failed";
      window.setTimeout(() => { copy.textContent = label; }, 1600);
    }
  });

  /** Wire up dynamic pieces inside ``root`` (after a server-rendered fragment is inserted). */
  Atelier.enhance = function (root) {
    (root || document).querySelectorAll("[data-follow-events]").forEach(follow);
    Atelier.tickElapsed();
    Atelier.tickRelative();
    checkVideos(root);
  };

  // The window gaining focus is user activity: while offline, the engine probes OpenRouter at once (instead of
  // at its next interval), then the pill is refreshed. At most one call every two seconds.
  let lastActivity = 0;
  async function noteActivity() {
    const now = Date.now();
    if (document.hidden || now - lastActivity < 2000) return;
    lastActivity = now;
    try {
      await fetch("/ui/activity", { method: "POST", headers: { Accept: "application/json" }, credentials: "same-origin" });
    } catch (e) { /* the engine is not answering: the status poll says so */ }
    window.setTimeout(pollStatus, 600);
  }
  window.addEventListener("focus", noteActivity);
  document.addEventListener("visibilitychange", noteActivity);

  document.addEventListener("DOMContentLoaded", () => {
    Atelier.enhance(document);
    pollTimer = window.setTimeout(pollStatus, 5000);
  });
})();
