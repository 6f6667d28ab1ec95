/* The deployment page's live logs: the deployment's own log and each target's, each followed as every live log is
   (logfollow.js). A target's lines go into one section per hook: a line "==> EventName" (data-phase) starts the
   next one. A deployment waiting for its review or its window is asked less often. The page is loaded again once
   when the deployment plans its targets and once when it ends, so that its batches, statuses and buttons show where
   the reader is. */
(() => {
  "use strict";
  const WAITING_POLL_MS = 5000;

  function append(box, html) {
    if (!box.dataset.hooks) {
      box.insertAdjacentHTML("beforeend", html);
      return;
    }
    const holder = document.createElement("div");
    holder.innerHTML = html;
    for (const line of Array.from(holder.children)) {
      let section = box.lastElementChild;
      if (line.dataset.phase || !section || !section.classList.contains("hook-section")) {
        section = document.createElement("div");
        section.className = "hook-section";
        if (line.dataset.phase) section.dataset.hook = line.dataset.phase;
        box.appendChild(section);
      }
      section.appendChild(line);
    }
  }

  function start(box) {
    const own = Boolean(box.dataset.deploymentLog);
    const state = own ? document.querySelector("[data-log-state]") : null;
    const batches = document.querySelector(".deployment-batches");
    window.portalLog.follow(box, {
      append(html) {
        const details = box.closest("details");
        if (details && !box.children.length) details.open = true;
        append(box, html);
      },
      answered(data) {
        if (own && batches && data.targets !== undefined && String(data.targets) !== batches.dataset.targetCount) {
          // The deployment planned its batches since the page was made: show them.
          location.reload();
          return true;
        }
        return false;
      },
      delay: (data) => (data.status === "Waiting" ? WAITING_POLL_MS : window.portalLog.POLL_MS),
      ended(data, wasRunning) {
        if (state) state.textContent = `Deployment ended ${data.status.toLowerCase()}.`;
        if (own && wasRunning) location.reload();
      },
    });
  }

  const run = () => document.querySelectorAll(".build-log[data-log-url]").forEach(start);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
