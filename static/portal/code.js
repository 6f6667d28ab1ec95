// Code browser: line selection in blobs, diff files (collapse, lazy loading, large files) and the ref switcher.
// Clicks use event delegation on the document, so content added later needs only window.portalCode.scan(root)
// to have its lazy placeholders observed.
(() => {
  "use strict";

  /* ---------------------------------------------------------------- Blob line selection. */

  const LINE_HASH = /^#L(\d+)(?:-L(\d+))?$/;
  const LINE_ID = /^L(\d+)$/;

  // The line a shift-click extends from: the last clicked line, or the start of the range in the URL.
  let lineAnchor = null;

  /** Parse "#L10" or "#L20-L10" into an ordered [first, last] pair, or null. */
  function parseLineHash(hash) {
    const match = LINE_HASH.exec(hash);
    if (!match) return null;
    const a = Number(match[1]);
    const b = match[2] === undefined ? a : Number(match[2]);
    return a <= b ? [a, b] : [b, a];
  }

  /** Mark the rows L<first>..L<last> as selected and return the first one (null when it does not exist). */
  function selectLines(first, last) {
    for (const row of document.querySelectorAll("tr.selected[id^='L']")) row.classList.remove("selected");
    const start = document.getElementById(`L${first}`);
    if (!start || start.tagName !== "TR") return null;
    // Walk the following rows instead of looking up every id, so that a silly range such as #L1-L99999999
    // stops at the end of the file.
    for (let row = start; row; row = row.nextElementSibling) {
      const match = LINE_ID.exec(row.id);
      if (!match) continue;
      if (Number(match[1]) > last) break;
      row.classList.add("selected");
    }
    return start;
  }

  /** Apply the line range in location.hash, scrolling to it when asked. */
  function applyLineHash(scroll) {
    const range = parseLineHash(location.hash);
    if (!range) {
      for (const row of document.querySelectorAll("tr.selected[id^='L']")) row.classList.remove("selected");
      return;
    }
    const first = selectLines(range[0], range[1]);
    if (!first) return;
    lineAnchor = range[0];
    if (scroll) first.scrollIntoView({ block: "center" });
  }

  /** Handle a click on a line number: select one line, or a range with shift. */
  function onLineClick(event, link) {
    const line = Number(link.dataset.line);
    if (!Number.isInteger(line) || line < 1) return;
    event.preventDefault();
    let first = line;
    let last = line;
    if (event.shiftKey && lineAnchor !== null) {
      first = Math.min(lineAnchor, line);
      last = Math.max(lineAnchor, line);
      // Shift-click also extends the text selection across the code; the user asked for lines, not text.
      window.getSelection()?.removeAllRanges();
    } else {
      lineAnchor = line;
    }
    const hash = first === last ? `#L${first}` : `#L${first}-L${last}`;
    // replaceState changes the URL without the jump (and without a hashchange event) a link would cause.
    history.replaceState(history.state, "", hash);
    selectLines(first, last);
  }

  /* ---------------------------------------------------------------- Fetching fragments. */

  const fetches = new Map(); // url -> Promise<DocumentFragment>, so one URL is never fetched twice at once.
  const loadedUrls = new Set(); // urls that answered; a placeholder still pending after that is an error.

  /** Fetch a same-origin HTML fragment and parse it without running anything in it. */
  function fetchFragment(url) {
    const absolute = new URL(url, location.href);
    if (absolute.origin !== location.origin) return Promise.reject(new Error("cross-origin fragment refused"));
    const key = absolute.href;
    if (fetches.has(key)) return fetches.get(key);
    const promise = fetch(key, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then((response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return response.text();
      })
      .then((text) => {
        // A <template> parses into an inert fragment: scripts in it never run and images do not load yet.
        const template = document.createElement("template");
        template.innerHTML = text;
        loadedUrls.add(key);
        return template.content;
      })
      .finally(() => fetches.delete(key));
    fetches.set(key, promise);
    return promise;
  }

  /** The outermost .diff-file elements of a fragment, in document order. */
  function topLevelFiles(fragment) {
    return [...fragment.querySelectorAll(".diff-file")].filter((el) => !el.parentElement?.closest(".diff-file"));
  }

  /** An existing .diff-file with this id, or null. */
  function existingFile(id) {
    if (!id) return null;
    const el = document.getElementById(id);
    return el && el.classList.contains("diff-file") ? el : null;
  }

  /* ---------------------------------------------------------------- Lazy diff files. */

  const observer =
    "IntersectionObserver" in window
      ? new IntersectionObserver(
          (entries) => {
            for (const entry of entries) {
              if (entry.isIntersecting) loadPending(entry.target).catch(() => {});
            }
          },
          { rootMargin: "800px 0px" },
        )
      : null;

  /** Put the returned files in place of their placeholders; returns the elements now in the page. */
  function placeFiles(files, trigger) {
    const placed = [];
    let cursor = null;
    for (const node of files) {
      const old = existingFile(node.id);
      if (old) {
        // A placeholder never replaces a file that is already rendered (two batches can overlap).
        if (node.classList.contains("diff-pending") && !old.classList.contains("diff-pending")) {
          cursor = old;
          continue;
        }
        observer?.unobserve(old);
        old.replaceWith(node);
      } else if (cursor) {
        cursor.after(node);
      } else if (trigger.isConnected) {
        trigger.before(node);
      } else {
        continue;
      }
      cursor = node;
      placed.push(node);
    }
    return placed;
  }

  /** Show a load error with a Retry button inside a placeholder. */
  function showPendingError(pending, message) {
    observer?.unobserve(pending);
    pending.classList.add("diff-error");
    const body = pending.querySelector(".diff-placeholder") || pending.querySelector(".diff-body") || pending;
    const text = document.createElement("span");
    text.className = "diff-error-message";
    text.textContent = message;
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "diff-retry";
    retry.textContent = "Retry";
    body.replaceChildren(text, " ", retry);
  }

  /** Load the batch a .diff-pending placeholder points to; resolves when its files are in the page. */
  async function loadPending(pending, { retry = false } = {}) {
    const url = pending.dataset.fragmentUrl;
    if (!url || !pending.isConnected) return [];
    const key = new URL(url, location.href).href;
    if (!retry && loadedUrls.has(key) && !fetches.has(key)) {
      // The batch came back without this file: fetching it again would only loop.
      showPendingError(pending, "This file did not load.");
      return [];
    }
    if (retry) {
      loadedUrls.delete(key);
      pending.classList.remove("diff-error");
      const body = pending.querySelector(".diff-placeholder") || pending.querySelector(".diff-body");
      if (body) body.textContent = "Loading…";
    }
    pending.classList.add("diff-loading");
    let fragment;
    try {
      const first = !fetches.has(key);
      fragment = await fetchFragment(url);
      // Only the caller that started the fetch places the files; the others wait for it and look again.
      if (!first) return pending.isConnected ? loadPending(pending) : [];
    } catch (error) {
      pending.classList.remove("diff-loading");
      if (pending.isConnected) showPendingError(pending, "Could not load this file.");
      throw error;
    }
    const placed = placeFiles(topLevelFiles(fragment), pending);
    if (pending.isConnected && pending.classList.contains("diff-pending")) {
      pending.classList.remove("diff-loading");
      showPendingError(pending, "This file did not load.");
    }
    for (const node of placed) scan(node);
    if (placed.length) {
      document.dispatchEvent(new CustomEvent("portal:diff-loaded", { detail: { files: placed } }));
    }
    return placed;
  }

  /** Replace a large collapsed file with its full diff after a click on its "Load diff" button. */
  async function loadLargeFile(button) {
    const file = button.closest(".diff-file");
    const url = button.dataset.fragmentUrl;
    if (!file || !url || button.disabled) return;
    const label = button.textContent;
    button.disabled = true;
    button.textContent = "Loading…";
    try {
      const files = topLevelFiles(await fetchFragment(url));
      const node = files.find((el) => el.id === file.id) || (files.length === 1 ? files[0] : null);
      if (!node) throw new Error("file missing from the response");
      if (!node.id) node.id = file.id;
      file.replaceWith(node);
      scan(node);
      document.dispatchEvent(new CustomEvent("portal:diff-loaded", { detail: { files: [node] } }));
    } catch {
      button.disabled = false;
      button.textContent = label === "Loading…" ? "Load diff" : label;
      button.classList.add("diff-load-failed");
      button.title = "Loading failed; click to try again.";
    }
  }

  /** Collapse or expand one diff file. */
  function toggleFile(button) {
    const file = button.closest(".diff-file");
    if (!file) return;
    const collapsed = file.classList.toggle("collapsed");
    button.setAttribute("aria-expanded", String(!collapsed));
  }

  /* ---------------------------------------------------------------- Jumping to a file. */

  const FILE_ID = /^diff-(\d+)$/;

  /** The placeholder most likely to bring file `index`: the nearest pending file at or before it. */
  function pendingFor(index) {
    let best = null;
    let bestIndex = -1;
    let firstPending = null;
    for (const el of document.querySelectorAll(".diff-file.diff-pending")) {
      if (el.classList.contains("diff-error")) continue;
      firstPending ??= el;
      const match = FILE_ID.exec(el.id);
      const i = match ? Number(match[1]) : -1;
      if (i <= index && i > bestIndex) {
        best = el;
        bestIndex = i;
      }
    }
    return best || firstPending;
  }

  /** Make sure file diff-<index> is rendered (loading batches as needed), then scroll to it. */
  async function revealFile(id, { updateHash = true } = {}) {
    const match = FILE_ID.exec(id);
    if (!match) return;
    const index = Number(match[1]);
    // Each round loads one batch; the bound keeps a server that never sends the file from looping forever.
    for (let round = 0; round < 100; round++) {
      const target = existingFile(id);
      if (target && !target.classList.contains("diff-pending")) break;
      const pending = target && !target.classList.contains("diff-error") ? target : pendingFor(index);
      if (!pending) break;
      try {
        await loadPending(pending);
      } catch {
        break;
      }
    }
    const target = existingFile(id);
    if (!target) return;
    if (updateHash && location.hash !== `#${id}`) history.pushState(history.state, "", `#${id}`);
    target.scrollIntoView({ block: "start" });
  }

  /** A file-list link: let the browser jump when the file is there, load it first when it is not. */
  function onFileAnchorClick(event, link) {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const value = link.dataset.fileAnchor;
    let id = "";
    if (value && /^\d+$/.test(value)) id = `diff-${value}`;
    else if (value && FILE_ID.test(value.replace(/^#/, ""))) id = value.replace(/^#/, "");
    else if (link.hash) id = decodeURIComponent(link.hash.slice(1));
    if (!FILE_ID.test(id)) return;
    const target = existingFile(id);
    if (target && !target.classList.contains("diff-pending")) {
      if (target.classList.contains("collapsed")) target.querySelector(".diff-toggle")?.click();
      return;
    }
    event.preventDefault();
    revealFile(id);
  }

  /* ---------------------------------------------------------------- Ref switcher. */

  /** Hide the refs that do not contain the typed text. */
  function filterRefs(input) {
    const switcher = input.closest(".ref-switcher");
    if (!switcher) return;
    const query = input.value.trim().toLowerCase();
    let shown = 0;
    for (const item of switcher.querySelectorAll("li[data-name]")) {
      const match = !query || item.dataset.name.toLowerCase().includes(query);
      item.hidden = !match;
      if (match) shown++;
    }
    // A group (a list and the heading before it) with nothing left to show is hidden with its heading.
    for (const list of switcher.querySelectorAll("ul")) {
      const visible = [...list.children].some((li) => !li.hidden);
      list.hidden = !visible;
      const heading = list.previousElementSibling;
      if (heading && /^H[1-6]$/.test(heading.tagName)) heading.hidden = !visible;
    }
    const empty = switcher.querySelector(".ref-empty");
    if (empty) empty.hidden = shown > 0;
  }

  /** The menu's branches and tags arrive when it is first opened (data-menu-url), so pages stay small. */
  async function loadRefMenu(details) {
    const url = details.dataset.menuUrl;
    if (!url || details.dataset.menuLoaded) return;
    details.dataset.menuLoaded = "1";
    const absolute = new URL(url, location.href);
    if (absolute.origin !== location.origin) return;
    try {
      const response = await fetch(absolute.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const template = document.createElement("template");
      template.innerHTML = await response.text();
      details.querySelector(".ref-menu")?.replaceWith(...template.content.childNodes);
    } catch {
      delete details.dataset.menuLoaded;
    }
  }

  /** Close every open ref switcher except the one given. */
  function closeRefSwitchers(except) {
    for (const details of document.querySelectorAll("details.ref-switcher[open]")) {
      if (details !== except) details.open = false;
    }
  }

  /* ---------------------------------------------------------------- Last commit of each tree entry. */

  const relativeTime = "Intl" in window && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat("en") : null;
  const UNITS = [
    ["year", 31536000],
    ["month", 2592000],
    ["week", 604800],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
  ];

  /** "3 days ago" for an ISO date, or the date itself when it cannot be read. */
  function timeAgo(iso) {
    const seconds = (Date.parse(iso) - Date.now()) / 1000;
    if (!Number.isFinite(seconds)) return iso;
    for (const [unit, size] of UNITS) {
      if (Math.abs(seconds) >= size) {
        const value = Math.round(seconds / size);
        return relativeTime ? relativeTime.format(value, unit) : `${Math.abs(value)} ${unit}s ago`;
      }
    }
    return "just now";
  }

  /** Fill the message and age columns of a directory listing from its data-commits-url (JSON). */
  async function loadLastCommits(table) {
    const url = table.dataset.commitsUrl;
    if (!url || table.dataset.commitsLoaded) return;
    table.dataset.commitsLoaded = "1";
    const absolute = new URL(url, location.href);
    if (absolute.origin !== location.origin) return;
    let data;
    try {
      const response = await fetch(absolute.href, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", Accept: "application/json" },
      });
      // The server is finding other folders' commits: ask again when it says, a few times at most.
      const tries = Number(table.dataset.commitsTries || 0);
      if (response.status === 503 && tries < 5) {
        table.dataset.commitsTries = String(tries + 1);
        delete table.dataset.commitsLoaded;
        const wait = Number(response.headers.get("Retry-After")) || 2;
        setTimeout(() => loadLastCommits(table), wait * 1000);
        return;
      }
      if (!response.ok) return;
      data = await response.json();
    } catch {
      // The listing is complete without these columns; leave them empty rather than show an error.
      return;
    }
    const entries = data?.entries || {};
    const prefix = table.dataset.prefix || data?.prefix || "";
    for (const row of table.querySelectorAll("tr[data-name]")) {
      const entry = entries[row.dataset.name];
      if (!entry) continue;
      const message = row.querySelector("td.message");
      if (message && !message.childElementCount) {
        const link = document.createElement("a");
        link.href = `${prefix}/commit/${encodeURIComponent(entry.sha)}`;
        link.textContent = entry.summary;
        link.title = entry.author ? `${entry.summary} (${entry.author})` : entry.summary;
        message.replaceChildren(link);
      }
      const age = row.querySelector("td.age");
      if (age && !age.childElementCount && entry.when) {
        const time = document.createElement("time");
        time.dateTime = entry.when;
        time.title = new Date(entry.when).toLocaleString();
        time.textContent = timeAgo(entry.when);
        age.replaceChildren(time);
      }
    }
    if (data && data.complete === false) table.classList.add("commits-incomplete");
  }

  /* ---------------------------------------------------------------- Scanning and events. */

  /** Split tables use a fixed layout, whose widths come from the first row; a colgroup keeps a hunk row
   * with colspan there from squeezing the line numbers. */
  function addSplitColumns(table) {
    if (table.querySelector(":scope > colgroup")) return;
    const columns = Math.max(0, ...[...table.rows].slice(0, 50).map((row) => row.cells.length));
    if (columns !== 4) return;
    const group = document.createElement("colgroup");
    for (const name of ["diff-col-num", "diff-col-code", "diff-col-num", "diff-col-code"]) {
      const col = document.createElement("col");
      col.className = name;
      group.append(col);
    }
    table.prepend(group);
  }

  /** Fill a commit's CI statuses: they change after the commit, so the page (cached by sha) loads them apart. */
  async function loadStatuses(box) {
    try {
      const fragment = await fetchFragment(box.dataset.statusesUrl);
      box.replaceChildren(fragment);
    } catch {
      // Without its statuses the commit page is still whole.
    }
  }

  const STATUS_ICONS = { success: "✓", pending: "●", warning: "!", failure: "✗", error: "✗" };

  /** Put each listed commit's combined CI state beside it: one request for the whole list, since the list itself
   * is cached by sha while statuses keep arriving. */
  async function loadStatusIcons(list) {
    if (list.dataset.statusesLoaded) return;
    list.dataset.statusesLoaded = "1";
    const slots = [...list.querySelectorAll("[data-status-sha]")];
    if (!slots.length) return;
    const url = new URL(list.dataset.statusBatchUrl, location.href);
    if (url.origin !== location.origin) return;
    for (const sha of new Set(slots.map((slot) => slot.dataset.statusSha))) url.searchParams.append("sha", sha);
    let data;
    try {
      const response = await fetch(url.href, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", Accept: "application/json" },
      });
      if (!response.ok) return;
      data = await response.json();
    } catch {
      // The list is whole without its status icons.
      return;
    }
    const statuses = data?.statuses || {};
    for (const slot of slots) {
      const found = statuses[slot.dataset.statusSha];
      if (!found || !Object.hasOwn(STATUS_ICONS, found.state)) continue;
      const icon = document.createElement("span");
      icon.className = `status-icon status-${found.state}`;
      icon.textContent = STATUS_ICONS[found.state];
      const checks = (found.statuses || []).map((s) => `${s.context}: ${s.state}${s.description ? ` (${s.description})` : ""}`);
      icon.title = checks.join("\n") || found.state;
      icon.setAttribute("role", "img");
      icon.setAttribute("aria-label", `Checks ${found.state}: ${found.total_count} reported`);
      slot.replaceChildren(icon);
    }
  }

  /** Attach what event delegation cannot do to content under root: observe lazy placeholders, size split tables,
   * fill the last commits of directory listings. */
  function scan(root = document) {
    const within = (selector) => {
      const found = [...root.querySelectorAll(selector)];
      if (root instanceof Element && root.matches(selector)) found.unshift(root);
      return found;
    };
    for (const pending of within(".diff-file.diff-pending[data-fragment-url]")) {
      if (pending.classList.contains("diff-error")) continue;
      if (observer) observer.observe(pending);
      else loadPending(pending).catch(() => {});
    }
    for (const table of within(".diff[data-view='split'] table.diff-table, table.diff-table.diff-split")) {
      addSplitColumns(table);
    }
    for (const table of within("table.files[data-commits-url]")) loadLastCommits(table);
    for (const box of within(".commit-statuses[data-statuses-url]")) loadStatuses(box);
    for (const list of within("[data-status-batch-url]")) loadStatusIcons(list);
    // Cached pages carry absolute dates, which stay true; show them relative to now.
    for (const time of within("time.ago[datetime]")) time.textContent = timeAgo(time.dateTime);
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;

    const lineLink = target.closest("td[data-line]");
    if (lineLink && lineLink.closest("tr[id^='L']") && !event.metaKey && !event.ctrlKey && !event.altKey) {
      onLineClick(event, lineLink);
      return;
    }
    const toggle = target.closest(".diff-toggle");
    if (toggle) {
      toggleFile(toggle);
      return;
    }
    const retry = target.closest(".diff-retry");
    if (retry) {
      const pending = retry.closest(".diff-pending");
      if (pending) {
        loadPending(pending, { retry: true })
          .then(() => {
            if (pending.isConnected && !pending.classList.contains("diff-error")) scan(pending);
          })
          .catch(() => {});
      }
      return;
    }
    const loadButton = target.closest("button.diff-load[data-fragment-url]");
    if (loadButton) {
      loadLargeFile(loadButton);
      return;
    }
    const fileLink = target.closest("a[data-file-anchor]");
    if (fileLink) {
      onFileAnchorClick(event, fileLink);
      return;
    }
    // A click outside an open ref switcher closes it, as a menu would.
    closeRefSwitchers(target.closest("details.ref-switcher"));
  });

  // Shift-mousedown on a line number would start a text selection across the code; stop it at the source.
  document.addEventListener("mousedown", (event) => {
    if (event.shiftKey && event.target instanceof Element && event.target.closest("tr[id^='L'] td[data-line]")) {
      event.preventDefault();
    }
  });

  // Choosing a ref in the compare page's pickers goes straight to that comparison (the button does it without script).
  document.addEventListener("change", (event) => {
    const select = event.target instanceof HTMLSelectElement ? event.target : null;
    if (!select?.matches("select[data-compare-picker]")) return;
    const form = select.form;
    if (form && [...form.querySelectorAll("select[data-compare-picker]")].every((s) => s.value)) form.requestSubmit();
  });

  document.addEventListener("input", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.closest(".ref-switcher")) filterRefs(event.target);
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const switcher = target?.closest("details.ref-switcher[open]");
    if (!switcher) return;
    if (event.key === "Escape") {
      switcher.open = false;
      switcher.querySelector("summary")?.focus();
    } else if (event.key === "Enter" && target instanceof HTMLInputElement) {
      // Enter in the filter follows the first ref still shown, which is what the user was narrowing to.
      const first = [...switcher.querySelectorAll("li[data-name]")].find((li) => !li.hidden)?.querySelector("a");
      if (first) {
        event.preventDefault();
        first.click();
      }
    }
  });

  // The toggle event does not bubble, so listen in the capture phase to catch every <details>.
  document.addEventListener(
    "toggle",
    (event) => {
      const details = event.target;
      if (!(details instanceof HTMLDetailsElement) || !details.classList.contains("ref-switcher")) return;
      if (!details.open) return;
      closeRefSwitchers(details);
      loadRefMenu(details).then(() => {
        const input = details.querySelector("input");
        if (input && details.open) {
          input.focus();
          filterRefs(input);
        }
      });
    },
    true,
  );

  window.addEventListener("hashchange", () => {
    applyLineHash(true);
    const id = location.hash.slice(1);
    if (FILE_ID.test(id)) {
      const target = existingFile(id);
      if (!target || target.classList.contains("diff-pending")) revealFile(id, { updateHash: false });
    }
  });

  function init() {
    scan(document);
    applyLineHash(true);
    const id = location.hash.slice(1);
    if (FILE_ID.test(id)) {
      const target = existingFile(id);
      if (!target || target.classList.contains("diff-pending")) revealFile(id, { updateHash: false });
    }
  }

  window.portalCode = { scan, selectLines, revealFile };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
