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

/* Settings → Your data: send an export zip to the import endpoint and say what was added. */
(function () {
  "use strict";

  const form = document.querySelector("[data-import-form]");
  if (!form) return;
  const status = document.querySelector("[data-import-status]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) return;
    const button = form.querySelector("button");
    button.disabled = true;
    status.textContent = "Importing " + file.name + "…";
    try {
      const response = await fetch(form.getAttribute("action"), {
        method: "POST",
        body: file,
        headers: { "Content-Type": "application/zip", "X-Requested-With": "fetch", Accept: "application/json" },
        credentials: "same-origin",
      });
      let answer = {};
      try { answer = await response.json(); } catch (e) { /* the server's own plain-text refusal */ }
      if (!response.ok) {
        const tooLarge = response.status === 413 ?
          "This file is larger than the 128 MiB the window can send; see “Imports” in docs/data.md for larger ones." : "";
        status.textContent = (answer.error && answer.error.message) || tooLarge || "The import failed.";
        status.classList.add("is-error");
        return;
      }
      status.classList.remove("is-error");
      const added = answer.added, skipped = answer.skipped;
      status.textContent = "Added " + added + " item" + (added === 1 ? "" : "s") +
        (skipped ? "; " + skipped + " already here were skipped." : ".");
    } catch (e) {
      status.textContent = "The Atelier engine did not answer; try again.";
      status.classList.add("is-error");
    } finally {
      button.disabled = false;
    }
  });
})();
