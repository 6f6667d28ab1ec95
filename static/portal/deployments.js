/* The deployment page's live logs: the deployment's own log and each target's, each polled by byte offset about
   twice a second while it runs (as the build log is), the lines appended as the server rendered and escaped them.
   A target's lines go into one section per hook: a line "==> EventName" (data-phase) starts the next one. The page
   is loaded again once when the deployment plans its targets and once when it ends, so that its batches, statuses
   and buttons show where the reader is. */
(() => {
  "use strict";
  const POLL_MS = 500;
  const WAITING_POLL_MS = 5000;
  const NEAR_BOTTOM_PX = 40;

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
    if (!box.dataset.follow) return;
    const own = Boolean(box.dataset.deploymentLog);
    const state = own ? document.querySelector("[data-log-state]") : null;
    const batches = document.querySelector(".deployment-batches");
    let offset = Number(box.dataset.offset || 0);
    let line = Number(box.dataset.line || 0);
    let wasRunning = false;

    const atBottom = () => box.scrollTop + box.clientHeight >= box.scrollHeight - NEAR_BOTTOM_PX;
    let follow = !location.hash.startsWith("#L");
    box.addEventListener("scroll", () => { follow = atBottom(); });
    if (follow) box.scrollTop = box.scrollHeight;

    async function poll() {
      let data;
      try {
        const response = await fetch(`${box.dataset.logUrl}?offset=${offset}&line=${line}`, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (!response.ok) throw new Error(String(response.status));
        data = await response.json();
      } catch (error) {
        // A failed poll (the server restarting, a network blip) is tried again: the offset says where to go on.
        setTimeout(poll, POLL_MS * 4);
        return;
      }
      if (data.html) {
        const keepAtBottom = follow;
        const details = box.closest("details");
        if (details && !box.children.length) details.open = true;
        append(box, data.html);
        if (keepAtBottom) box.scrollTop = box.scrollHeight;
      }
      offset = data.offset;
      line = data.line;
      box.dataset.offset = String(offset);
      box.dataset.line = String(line);
      if (!data.ended) wasRunning = true;
      if (own && batches && data.targets !== undefined && String(data.targets) !== batches.dataset.targetCount) {
        // The deployment planned its batches since the page was made: show them.
        location.reload();
        return;
      }
      if (data.more) {
        setTimeout(poll, 0);
      } else if (!data.ended) {
        setTimeout(poll, data.status === "Waiting" ? WAITING_POLL_MS : POLL_MS);
      } else {
        delete box.dataset.follow;
        box.dataset.ended = data.status;
        if (state) state.textContent = `Deployment ended ${data.status.toLowerCase()}.`;
        if (own && wasRunning) location.reload();
      }
    }
    setTimeout(poll, POLL_MS);
  }

  const run = () => document.querySelectorAll(".build-log[data-log-url]").forEach(start);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
