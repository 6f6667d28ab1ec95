/* The pipeline page's live picture: every 2 s it asks the pipeline's state (a small JSON document) and puts the
   stages it renders in place of those shown, so boxes change state without a reload. Polling stops while the tab
   is hidden, and while the reader has a form of the stages focused (so a reason being typed is not replaced). */
(() => {
  "use strict";
  const POLL_MS = 2000;

  function start(holder) {
    const url = holder.dataset.stateUrl;
    let timer = null;

    async function poll() {
      timer = null;
      const busy = holder.contains(document.activeElement) && document.activeElement.matches("input, select, textarea");
      if (!document.hidden && !busy) {
        try {
          const answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
          if (answer.ok) {
            const data = await answer.json();
            if (typeof data.html === "string" && data.html !== holder.dataset.shown) {
              holder.innerHTML = data.html;
              holder.dataset.shown = data.html;
            }
          }
        } catch (error) {
          // The next poll tries again.
        }
      }
      timer = window.setTimeout(poll, POLL_MS);
    }

    timer = window.setTimeout(poll, POLL_MS);
  }

  const run = () => document.querySelectorAll(".pipeline-stages[data-state-url]").forEach(start);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
