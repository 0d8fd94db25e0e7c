/* Generation page: follow a queued or running generation live, reload when it reaches its end. */
(function () {
  "use strict";

  const Atelier = window.Atelier;

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.querySelector("[data-live-events]");
    if (!box || !window.EventSource) return;
    const liveText = box.querySelector("[data-live-text]");
    let lastStatus = (box.querySelector("[data-result-status]") || {}).dataset?.resultStatus;

    Atelier.follow(box.getAttribute("data-live-events"), {
      record: (record) => {
        if (record.status === lastStatus) return;
        lastStatus = record.status;
        if (record.status === "running" && liveText) liveText.classList.remove("hidden");
      },
      delta: (text) => {
        if (!liveText) return;
        liveText.classList.remove("hidden");
        liveText.textContent += text; // textContent: model output is never parsed as HTML here
      },
      end: () => window.location.reload(), // the server renders the final record, error included
    });
  });
})();
