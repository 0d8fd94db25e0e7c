/* Compare: one prompt to 2–4 models; one column per model, each following its own answer's events. */
(function () {
  "use strict";

  const Atelier = window.Atelier;

  function column(item) {
    const col = document.createElement("section");
    col.className = "card compare-col";
    col.dataset.compareColumn = item.model;
    const head = document.createElement("header");
    head.className = "compare-head";
    const name = document.createElement("span");
    name.className = "mono compare-model";
    name.textContent = item.model;
    const status = document.createElement("span");
    status.className = "badge badge-queued";
    status.dataset.compareStatus = "";
    status.textContent = "Waiting";
    head.append(name, status);
    const text = document.createElement("div");
    text.className = "live-text streaming";
    text.dataset.compareText = "";
    const result = document.createElement("div");
    const foot = document.createElement("footer");
    foot.className = "compare-foot";
    const stats = document.createElement("span");
    stats.className = "muted small mono";
    stats.dataset.compareStats = "";
    const keep = document.createElement("button");
    keep.type = "button";
    keep.className = "button small";
    keep.textContent = "Keep this one";
    keep.disabled = true;
    keep.dataset.compareKeep = "";
    foot.append(stats, keep);
    col.append(head, text, result, foot);

    const started = Date.now();
    let firstToken = null;
    const clock = window.setInterval(() => {
      stats.textContent = ((Date.now() - started) / 1000).toFixed(1) + " s";
    }, 200);

    const finish = (record, error) => {
      window.clearInterval(clock);
      text.classList.remove("streaming");
      if (record && record.status) {
        status.textContent = record.status === "succeeded" ? "Done" : record.status;
        status.className = "badge badge-" + record.status;
        // The saved answer is the whole answer (deltas sent before this page subscribed are in it too).
        if (record.output_text) text.textContent = record.output_text;
        const usage = record.usage || {};
        const seconds = record.started_at && record.finished_at
          ? (Date.parse(record.finished_at) - Date.parse(record.started_at)) / 1000 : (Date.now() - started) / 1000;
        const parts = [];
        if (usage.completion_tokens != null) parts.push((usage.prompt_tokens || 0) + " → " + usage.completion_tokens + " tokens");
        parts.push(seconds.toFixed(1) + " s");
        if (firstToken) parts.push("first token " + firstToken.toFixed(1) + " s");
        if (usage.cost_usd != null) parts.push("$" + Number(usage.cost_usd).toFixed(6));
        stats.textContent = parts.join(" · ");
        keep.disabled = record.status !== "succeeded" && record.status !== "interrupted";
      }
      if (error && (!record || record.status === "failed")) result.replaceChildren(Atelier.errorCallout(error));
    };

    Atelier.follow(item.events, {
      record: (record) => {
        if (record.status === "running") { status.textContent = "Generating"; status.className = "badge badge-running"; }
        if (record.output_text && record.output_text.length > text.textContent.length) text.textContent = record.output_text;
      },
      delta: (chunk) => {
        if (firstToken === null) firstToken = (Date.now() - started) / 1000;
        status.textContent = "Generating";
        status.className = "badge badge-running";
        text.textContent += chunk; // textContent: model output is never parsed as HTML here
      },
      end: finish,
    });

    keep.addEventListener("click", async () => {
      const body = new FormData();
      body.append("favorite", "1");
      keep.disabled = true;
      try {
        const response = await Atelier.post(item.favorite, body);
        if (response.ok) {
          keep.textContent = "★ Kept";
          col.classList.add("compare-kept");
        } else keep.disabled = false;
      } catch (e) { keep.disabled = false; }
    });
    return col;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("[data-compare-form]");
    if (!form) return;
    const columns = document.querySelector("[data-compare-columns]");
    const error = form.querySelector("[data-compare-error]");
    const start = form.querySelector("[data-compare-start]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const data = new FormData(form);
      const models = data.getAll("models").filter(Boolean);
      const payload = { prompt: String(data.get("prompt") || ""), system: String(data.get("system") || ""), models };
      start.disabled = true;
      try {
        const response = await fetch(form.action, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-Requested-With": "fetch" },
          body: JSON.stringify(payload),
          credentials: "same-origin",
        });
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) {
          error.textContent = (answer.error && answer.error.message) || "The compare could not start.";
          return;
        }
        columns.replaceChildren(...answer.items.map(column));
        columns.dataset.count = String(answer.items.length);
      } catch (e) {
        error.textContent = "Atelier did not answer.";
      } finally {
        start.disabled = false;
      }
    });
  });
})();
