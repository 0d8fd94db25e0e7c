/* Settings: run the diagnostics in place instead of opening their own page. */
(function () {
  "use strict";

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-run-diagnostics]");
    if (!button) return;
    event.preventDefault();
    const slot = document.querySelector("[data-diagnostics-slot]");
    if (!slot || button.dataset.running) return;
    button.dataset.running = "1";
    const label = button.textContent;
    button.textContent = "Checking…";
    button.classList.add("is-busy");
    try {
      const response = await fetch(button.dataset.partialUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      slot.innerHTML = await response.text(); // server-rendered and escaped, from our own origin
      button.textContent = "Run again";
    } catch (e) {
      window.location.href = button.href;
      button.textContent = label;
    } finally {
      delete button.dataset.running;
      button.classList.remove("is-busy");
    }
  });
})();

/* Settings → Your data: send an export zip in chunks through an upload session (the UI server reads at most
   128 MiB per request; docs/data.md, "Imports"), then say what was added. */
(function () {
  "use strict";

  const form = document.querySelector("[data-import-form]");
  if (!form) return;
  const status = document.querySelector("[data-import-status]");
  const JSON_HEADERS = { "X-Requested-With": "fetch", Accept: "application/json" };

  async function call(method, url, body) {
    const response = await fetch(url, { method, body, headers: JSON_HEADERS, credentials: "same-origin" });
    let answer = {};
    try { answer = await response.json(); } catch (e) { /* a plain-text refusal */ }
    if (!response.ok) throw Object.assign(new Error("refused"), { answer });
    return answer;
  }

  async function send(file) {
    const base = form.dataset.uploadUrl;
    const session = await call("POST", base);
    const url = base + "/" + encodeURIComponent(session.id);
    const size = Number(form.dataset.chunkBytes) || session.chunk_max_bytes;
    try {
      for (let offset = 0; offset < file.size; offset += size) {
        status.textContent = "Sending " + file.name + "… " + Math.floor((100 * offset) / file.size) + " %";
        await call("PUT", url + "?offset=" + offset, file.slice(offset, offset + size));
      }
    } catch (e) {
      call("DELETE", url).catch(() => {}); // the session's file goes at once (it would expire anyway)
      throw e;
    }
    status.textContent = "Importing " + file.name + "…";
    return call("POST", url + "/finish"); // the upload ends here, imported or refused
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) return;
    const button = form.querySelector("button");
    button.disabled = true;
    status.classList.remove("is-error");
    try {
      const answer = await send(file);
      const added = answer.added, skipped = answer.skipped;
      status.textContent = "Added " + added + " item" + (added === 1 ? "" : "s") +
        (skipped ? "; " + skipped + " already here " + (skipped === 1 ? "was" : "were") + " skipped." : ".");
    } catch (e) {
      const error = e.answer && e.answer.error;
      status.textContent = error ? error.message : "The Atelier engine did not answer; try again.";
      status.classList.add("is-error");
    } finally {
      button.disabled = false;
    }
  });
})();
