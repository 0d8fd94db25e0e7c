/* Queue: refresh the list while the page is open; actions post without leaving the page. */
(function () {
  "use strict";

  const Atelier = window.Atelier;

  document.addEventListener("DOMContentLoaded", () => {
    const live = document.querySelector("[data-queue-live]");
    if (!live) return;
    const url = live.getAttribute("data-refresh-url");

    const refresh = async () => {
      if (await Atelier.refreshFragment(live, url)) {
        Atelier.tickElapsed();
        Atelier.tickRelative();
      }
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
