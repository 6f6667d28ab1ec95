/* A live log that follows its run (a build's, a deployment's, a deployment target's): polls the box's log endpoint
   (data-log-url) by byte offset about twice a second while the run goes on, inserts the lines it answers (rendered
   and escaped by the server), and keeps the tail in view unless the reader scrolled up or opened the page at a line
   (#L12). The pages' own scripts say what differs: window.portalLog.follow(box, {append, answered, delay, ended}).
     append(html)             puts the lines in the box (by default at its end);
     answered(data)           is told every answer; true stops the polling (the page is being loaded again);
     delay(data)              how long to wait before the next poll while the run goes on (default POLL_MS);
     ended(data, wasRunning)  is told once when the run ended; wasRunning says it ran while the page was open. */
(() => {
  "use strict";
  const POLL_MS = 500;
  const NEAR_BOTTOM_PX = 40;

  function follow(box, { append, answered, delay, ended } = {}) {
    if (!box.dataset.follow) return;
    let offset = Number(box.dataset.offset || 0);
    let line = Number(box.dataset.line || 0);
    let wasRunning = false;

    const atBottom = () => box.scrollTop + box.clientHeight >= box.scrollHeight - NEAR_BOTTOM_PX;
    // A reader who opened the page at a line (#L12) is reading it: the log does not move away from it.
    let following = !location.hash.startsWith("#L");
    box.addEventListener("scroll", () => { following = atBottom(); });
    if (following) box.scrollTop = box.scrollHeight;

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
        const keepAtBottom = following;
        if (append) append(data.html);
        else box.insertAdjacentHTML("beforeend", data.html);
        if (keepAtBottom) box.scrollTop = box.scrollHeight;
      }
      offset = data.offset;
      line = data.line;
      box.dataset.offset = String(offset);
      box.dataset.line = String(line);
      if (!data.ended) wasRunning = true;
      if (answered && answered(data)) return;
      if (data.more) {
        setTimeout(poll, 0);
      } else if (!data.ended) {
        setTimeout(poll, delay ? delay(data) : POLL_MS);
      } else {
        delete box.dataset.follow;
        box.dataset.ended = data.status;
        if (ended) ended(data, wasRunning);
      }
    }
    setTimeout(poll, POLL_MS);
  }

  window.portalLog = { follow, POLL_MS };
})();
