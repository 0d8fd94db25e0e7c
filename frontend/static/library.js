/* Library: "Load more" appends the next page in place instead of navigating. */
(function () {
  "use strict";

  document.addEventListener("click", async (event) => {
    const link = event.target.closest("[data-load-more] a[data-partial-url]");
    if (!link) return;
    event.preventDefault();
    const row = link.closest("[data-load-more]");
    link.textContent = "Loading…";
    try {
      const response = await fetch(link.getAttribute("data-partial-url"), { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const html = await response.text();
      const template = document.createElement("template");
      template.innerHTML = html; // server-rendered, escaped rows from our own origin
      row.replaceWith(template.content);
    } catch (e) {
      window.location.href = link.href; // fall back to the plain next page
    }
  });
})();
