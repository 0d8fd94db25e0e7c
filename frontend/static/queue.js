/* Queue: refresh the list while the page is open; actions post without leaving the page. */
(function () {
  "use strict";

  const Atelier = window.Atelier;

  document.addEventListener("DOMContentLoaded", () => {
    const live = document.querySelector("[data-queue-live]");
    if (!live) return;
    const url = live.getAttribute("data-refresh-url");

    const refresh = async () => {
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (response.status === 401) return;
        if (response.ok) {
          live.innerHTML = await response.text(); // server-rendered, escaped
          Atelier.tickElapsed();
          Atelier.tickRelative();
        }
      } catch (e) { /* try again on the next tick */ }
    };

    live.addEventListener("submit", async (event) => {
      const form = event.target;
      event.preventDefault();
      const button = form.querySelector("button");
      if (button) button.disabled = true;
      try { await Atelier.post(form.action, new FormData(form)); } catch (e) { /* shown by refresh */ }
      refresh();
    });

    const tick = () => {
      if (!document.hidden) refresh();
      window.setTimeout(tick, 3000);
    };
    window.setTimeout(tick, 3000);
  });
})();
