/* The build page's live log: polls the log endpoint by byte offset about twice a second while the build runs,
   appends the lines it answers (rendered and escaped by the server), and follows the tail unless the reader
   scrolled up. When the build ends, the page is loaded again once so that its phases, reports and artifacts show. */
(() => {
  "use strict";
  const POLL_MS = 500;
  const NEAR_BOTTOM_PX = 40;

  function start(box) {
    if (!box.dataset.follow) return;
    const state = document.querySelector("[data-log-state]");
    let offset = Number(box.dataset.offset || 0);
    let line = Number(box.dataset.line || 0);
    let wasRunning = false;

    const atBottom = () => box.scrollTop + box.clientHeight >= box.scrollHeight - NEAR_BOTTOM_PX;
    // A reader who opened the page at a line (#L12) is reading it: the log does not move away from it.
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
        box.insertAdjacentHTML("beforeend", data.html);
        if (keepAtBottom) box.scrollTop = box.scrollHeight;
      }
      offset = data.offset;
      line = data.line;
      box.dataset.offset = String(offset);
      box.dataset.line = String(line);
      if (!data.ended) wasRunning = true;
      if (data.more) {
        setTimeout(poll, 0);
      } else if (!data.ended) {
        setTimeout(poll, POLL_MS);
      } else {
        delete box.dataset.follow;
        box.dataset.ended = data.status;
        if (state) state.textContent = `Build ended ${data.status.toLowerCase().replace("_", " ")}.`;
        // The page was rendered while the build ran: show its results now, where the reader is.
        if (wasRunning) location.reload();
      }
    }
    setTimeout(poll, POLL_MS);
  }

  const run = () => document.querySelectorAll(".build-log[data-log-url]").forEach(start);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
