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
