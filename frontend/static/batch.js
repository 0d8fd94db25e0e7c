/* A batch's page: the live part (progress, counts, cost, items) refreshes while the batch runs; Pause, Resume,
   Cancel and Retry post without leaving the page. */
(function () {
  "use strict";

  const Atelier = window.Atelier;

  /* New batch: with a template chosen, its prompt is used and the prompt box steps aside. */
  function setupNewBatch(form) {
    const select = form.querySelector("[data-template-select]");
    const promptField = form.querySelector("[data-prompt-field]");
    if (!select || !promptField) return;
    const apply = () => promptField.classList.toggle("hidden", Boolean(select.value));
    select.addEventListener("change", apply);
    apply();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("[data-batch-form]");
    if (form) setupNewBatch(form);
    const live = document.querySelector("[data-batch-live]");
    if (!live) return;
    const url = live.getAttribute("data-refresh-url");
    let timer = null;

    const state = () => {
      const section = live.querySelector("[data-batch-state]");
      return section ? section.getAttribute("data-batch-state") : "finished";
    };

    const refresh = async () => {
      if (await Atelier.refreshFragment(live, url)) Atelier.tickElapsed();
    };

    const schedule = () => {
      window.clearTimeout(timer);
      const s = state();
      if (s === "finished" || s === "cancelled") return;
      timer = window.setTimeout(async () => {
        if (!document.hidden) await refresh();
        schedule();
      }, s === "paused" ? 3000 : 1000);
    };

    live.addEventListener("submit", async (event) => {
      const form = event.target;
      event.preventDefault();
      const question = form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) return;
      const button = form.querySelector("button");
      if (button) button.disabled = true;
      try { await Atelier.post(form.action, new FormData(form)); } catch (e) { /* shown by refresh */ }
      await refresh();
      schedule();
    });

    Atelier.tickElapsed();
    schedule();
  });
})();
