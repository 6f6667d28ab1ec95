/* The build page's live log, followed as every live log is (logfollow.js): when the build ends, the page says how it
   ended, and is loaded again once so that its phases, reports and artifacts show. */
(() => {
  "use strict";

  function start(box) {
    const state = document.querySelector("[data-log-state]");
    window.portalLog.follow(box, {
      ended(data, wasRunning) {
        if (state) state.textContent = `Build ended ${data.status.toLowerCase().replace("_", " ")}.`;
        // The page was rendered while the build ran: show its results now, where the reader is.
        if (wasRunning) location.reload();
      },
    });
  }

  const run = () => document.querySelectorAll(".build-log[data-log-url]").forEach(start);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
