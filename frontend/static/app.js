/* Atelier — behaviour shared by every page: status pill, outbox count, confirmations, SSE reading. */
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

  /** POST with our JSON marker header (same-origin; cookies are sent automatically). */
  Atelier.post = function (url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "X-Requested-With": "fetch", Accept: "application/json" },
      body: body || new FormData(),
      credentials: "same-origin",
    });
  };

  function updateStatus(state) {
    const pill = document.querySelector("[data-status-pill]");
    const text = document.querySelector("[data-status-text]");
    const count = document.querySelector("[data-outbox-count]");
    if (pill && text) {
      pill.classList.remove("pill-ok", "pill-warn", "pill-bad");
      if (!state.engine) { pill.classList.add("pill-bad"); text.textContent = "Engine stopped"; }
      else if (state.online) { pill.classList.add("pill-ok"); text.textContent = "Online"; }
      else { pill.classList.add("pill-warn"); text.textContent = "Offline"; }
    }
    if (count && state.queue) {
      const waiting = (state.queue.queued || 0) + (state.queue.running || 0);
      count.textContent = String(waiting);
      count.classList.toggle("hidden", waiting === 0);
    }
    document.dispatchEvent(new CustomEvent("atelier:status", { detail: state }));
  }

  async function pollStatus() {
    try {
      const response = await fetch("/ui/status", { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.status === 401) return; // signed out (app restarted): stop polling
      updateStatus(await response.json());
    } catch (e) {
      updateStatus({ engine: false });
    }
    window.setTimeout(pollStatus, document.hidden ? 15000 : 5000);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", () => {
    window.setTimeout(pollStatus, 5000);
  });
})();
