/* Generation page: follow a queued or running generation live, reload when it reaches its end. */
(function () {
  "use strict";

  const TERMINAL = ["succeeded", "failed", "interrupted", "cancelled"];

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.querySelector("[data-live-events]");
    if (!box || !window.EventSource) return;
    const liveText = box.querySelector("[data-live-text]");
    const source = new EventSource(box.getAttribute("data-live-events"));
    let lastStatus = (box.querySelector("[data-result-status]") || {}).dataset?.resultStatus;

    const finish = () => {
      source.close();
      window.location.reload();
    };
    const onRecord = (event) => {
      let record;
      try { record = JSON.parse(event.data); } catch (e) { return; }
      if (record && record.generation) record = record.generation;
      if (!record || !record.status) return;
      if (TERMINAL.includes(record.status)) finish();
      else if (record.status !== lastStatus) {
        lastStatus = record.status;
        if (record.status === "running" && liveText) liveText.classList.remove("hidden");
      }
    };
    source.addEventListener("generation", onRecord);
    source.addEventListener("done", finish);
    source.addEventListener("error", (event) => {
      if (event.data) onRecord(event); // an "error" event from the engine carries the record
    });
    source.addEventListener("message", onRecord);
    source.addEventListener("delta", (event) => {
      if (!liveText) return;
      try {
        const data = JSON.parse(event.data);
        liveText.classList.remove("hidden");
        liveText.textContent += data.text || "";
      } catch (e) { /* ignore a malformed event */ }
    });
  });
})();
