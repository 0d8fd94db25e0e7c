/* Library: "Load more" appends the next page in place; near the end of the page it loads by itself.
   Selection and bulk actions; a title renamed in place on its tile. */
(function () {
  "use strict";

  async function loadMore(link) {
    if (link.dataset.loading) return;
    link.dataset.loading = "1";
    const row = link.closest("[data-load-more]");
    link.textContent = "Loading…";
    try {
      const items = await Atelier.fetchFragment(link.getAttribute("data-partial-url"));
      if (!items) throw new Error("no next page");
      row.replaceWith(items);
      watch();
      refreshSelection();
    } catch (e) {
      window.location.href = link.href; // fall back to the plain next page
    }
  }

  // Endless scrolling: fetch the next page shortly before the user reaches the end of this one.
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      entries.forEach((entry) => {
        if (entry.isIntersecting) {
          observer.unobserve(entry.target);
          loadMore(entry.target);
        }
      });
    }, { rootMargin: "800px 0px" })
    : null;

  function watch() {
    if (!observer) return;
    document.querySelectorAll("[data-load-more] a[data-partial-url]:not([data-loading])").forEach((a) => observer.observe(a));
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-load-more] a[data-partial-url]");
    if (!link) return;
    event.preventDefault();
    loadMore(link);
  });

  document.addEventListener("DOMContentLoaded", watch);

  /* ---- selection and bulk actions ---------------------------------------------------------------- */
  const boxes = () => Array.from(document.querySelectorAll("input.lib-select"));
  let lastClicked = null;

  function refreshSelection() {
    const all = boxes();
    const chosen = all.filter((b) => b.checked);
    const form = document.querySelector("[data-bulk-form]");
    if (!form) return;
    form.querySelector("[data-selected-count]").textContent = chosen.length + " selected";
    form.querySelectorAll("[data-needs-selection]").forEach((b) => { b.disabled = chosen.length === 0; });
    const page = form.querySelector("[data-select-page]");
    page.checked = all.length > 0 && chosen.length === all.length;
    page.indeterminate = chosen.length > 0 && chosen.length < all.length;
    all.forEach((b) => b.closest("[data-generation-id]").classList.toggle("selected", b.checked));
  }

  document.addEventListener("click", (event) => {
    const box = event.target.closest("input.lib-select");
    if (!box) return;
    const all = boxes();
    if (event.shiftKey && lastClicked && all.includes(lastClicked)) {
      // Shift-click: everything between the last box clicked and this one takes this one's state.
      const [a, b] = [all.indexOf(lastClicked), all.indexOf(box)].sort((x, y) => x - y);
      all.slice(a, b + 1).forEach((other) => { other.checked = box.checked; });
    }
    lastClicked = box;
    refreshSelection();
  });

  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-select-page]")) {
      boxes().forEach((b) => { b.checked = event.target.checked; });
    }
    if (event.target.matches("[data-select-page], input.lib-select")) refreshSelection();
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("[data-bulk-form]")) return;
    const button = event.submitter;
    const count = boxes().filter((b) => b.checked).length;
    const question = button && button.getAttribute("data-confirm-count");
    if (question && !window.confirm(question.replace("{n}", String(count)))) event.preventDefault();
  });

  // Tag autocompletion: the tags in use (most used first), fetched as the user types.
  let tagTimer = null;
  document.addEventListener("input", (event) => {
    const input = event.target.closest("[data-tag-input]");
    if (!input) return;
    window.clearTimeout(tagTimer);
    tagTimer = window.setTimeout(async () => {
      try {
        const response = await fetch("/library/tags?q=" + encodeURIComponent(input.value.trim()),
          { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const list = document.getElementById(input.getAttribute("list"));
        list.replaceChildren(...(await response.json()).items.map((t) => {
          const option = document.createElement("option");
          option.value = t.tag;
          option.label = t.tag + " (" + t.count + ")";
          return option;
        }));
      } catch (e) { /* autocompletion is a convenience */ }
    }, 120);
  });

  document.addEventListener("DOMContentLoaded", refreshSelection);

  /* ---- rename a title in place: the tile's Rename (or F2 on a focused tile); Enter saves, Esc cancels ---- */
  function closeRename(tile) {
    const form = tile.querySelector("[data-rename-form]");
    if (form) form.remove();
    tile.classList.remove("renaming");
    tile.querySelector(".lib-link").focus();
  }

  function openRename(tile) {
    if (tile.querySelector("[data-rename-form]")) return;
    const el = Atelier.el;
    const input = el("input", { type: "text", name: "title", value: tile.dataset.title || "",
                                placeholder: tile.dataset.prompt || "", autocomplete: "off",
                                attrs: { "aria-label": "Title" } });
    const save = el("button", { type: "submit", className: "button small primary", textContent: "Save" });
    const cancel = el("button", { type: "button", className: "button small ghost", textContent: "Cancel" });
    const form = el("form", { className: "lib-rename-form", noValidate: true, data: { renameForm: "" } },
                    input, el("div", { className: "lib-rename-actions" }, cancel, save));
    cancel.addEventListener("click", () => closeRename(tile));
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault(); // the page's own Esc (stop a generation, close a panel) is not meant
      closeRename(tile);
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      saveRename(tile, form, input, save);
    });
    tile.classList.add("renaming");
    tile.append(form);
    input.focus();
    input.select();
  }

  async function saveRename(tile, form, input, save) {
    if (save.getAttribute("aria-disabled") === "true") return;
    save.setAttribute("aria-disabled", "true");
    const old = form.querySelector(".callout");
    if (old) old.remove();
    const body = new FormData();
    body.append("title", input.value);
    let answer = {};
    let ok = false;
    try {
      const response = await Atelier.post("/g/" + encodeURIComponent(tile.dataset.generationId) + "/title", body);
      answer = await response.json().catch(() => ({}));
      ok = response.ok;
    } catch (e) {
      answer = { error: { message: "Atelier is not answering; the title was not changed." } };
    }
    save.removeAttribute("aria-disabled");
    if (!ok) {
      const callout = Atelier.errorCallout(answer.error, "The title could not be changed.");
      callout.id = "rename-error-" + tile.dataset.generationId;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", callout.id);
      form.append(callout);
      input.focus();
      return;
    }
    const title = (answer.generation && answer.generation.title) || "";
    tile.dataset.title = title;
    const shown = title || tile.dataset.prompt || "";
    tile.querySelector("[data-tile-title]").textContent = shown;
    tile.querySelector(".lib-link").title = shown;
    tile.querySelector("[data-rename]").setAttribute("aria-label", "Rename “" + shown + "”");
    closeRename(tile);
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-rename]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    openRename(link.closest(".lib-tile"));
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "F2" || event.target.closest("[data-rename-form]")) return;
    const tile = event.target.closest && event.target.closest(".lib-tile");
    if (!tile) return;
    event.preventDefault();
    openRename(tile);
  });
})();
