/* Library: "Load more" appends the next page in place; near the end of the page it loads by itself. */
(function () {
  "use strict";

  async function loadMore(link) {
    if (link.dataset.loading) return;
    link.dataset.loading = "1";
    const row = link.closest("[data-load-more]");
    link.textContent = "Loading…";
    try {
      const response = await fetch(link.getAttribute("data-partial-url"), { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const template = document.createElement("template");
      template.innerHTML = await response.text(); // server-rendered, escaped items from our own origin
      row.replaceWith(template.content);
      watch();
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
})();
