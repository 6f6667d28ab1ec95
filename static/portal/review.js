// Pull request pages: inline threads moved under their diff lines, the "+" that opens an inline comment form
// (shift-click for a range, "Insert suggestion"), the merge message that follows the strategy, confirmations.
// Every form here is a plain POST that works without this script; it only puts things where they belong.
(() => {
  "use strict";

  const reviewDiff = () => document.getElementById("review-diff");

  /* ---------------------------------------------------------------- Diff rows and line numbers. */

  const isSplit = (table) => table.classList.contains("diff-split");
  const isReviewRow = (row) => row.classList.contains("review-row");

  /** The cell holding a row's line number on one side (unified: old, new, code; split: old, code, new, code). */
  function numberCell(row, side) {
    if (row.classList.contains("diff-hunk") || isReviewRow(row)) return null;
    const table = row.closest("table");
    if (!table) return null;
    const index = side === "LEFT" ? 0 : isSplit(table) ? 2 : 1;
    return row.cells[index] || null;
  }

  function lineOf(row, side) {
    const cell = numberCell(row, side);
    const n = cell ? Number.parseInt(cell.textContent, 10) : Number.NaN;
    return Number.isInteger(n) ? n : null;
  }

  /** The text of a row's code on one side, without the +/-/space a unified row starts with. */
  function codeOf(row, side) {
    const table = row.closest("table");
    if (isSplit(table)) return row.cells[side === "LEFT" ? 1 : 3]?.textContent ?? "";
    return (row.cells[2]?.textContent ?? "").slice(1);
  }

  function fileTable(file) {
    return file.querySelector(":scope > .diff-body > table.diff-table");
  }

  function findRow(file, side, line) {
    const table = fileTable(file);
    if (!table) return null;
    for (const row of table.rows) {
      if (lineOf(row, side) === line) return row;
    }
    return null;
  }

  /** A loaded diff file by the quoted path its markup carries, or null. */
  function fileFor(path, within = reviewDiff()) {
    if (!within) return null;
    for (const file of within.querySelectorAll(".diff-file")) {
      if (file.dataset.path === path && !file.classList.contains("diff-pending")) return file;
    }
    return null;
  }

  /** A full-width row right after row (and after the threads and forms already under it); returns its cell. */
  function rowAfter(row, className) {
    let anchor = row;
    while (anchor.nextElementSibling && isReviewRow(anchor.nextElementSibling)) anchor = anchor.nextElementSibling;
    const tr = document.createElement("tr");
    tr.className = `review-row ${className}`;
    const td = document.createElement("td");
    td.colSpan = isSplit(row.closest("table")) ? 4 : 3;
    tr.append(td);
    anchor.after(tr);
    return td;
  }

  /* ---------------------------------------------------------------- Threads under their lines. */

  /** Move each thread of the pool under its line, in the files given (default: all loaded ones). */
  function placeThreads(files) {
    const pool = document.getElementById("review-threads");
    if (!pool) return;
    for (const thread of [...pool.querySelectorAll(":scope > .review-thread[data-line]")]) {
      const line = Number.parseInt(thread.dataset.line, 10);
      if (!Number.isInteger(line)) continue;
      const file = fileFor(thread.dataset.path);
      if (!file || (files && !files.includes(file))) continue;
      const row = findRow(file, thread.dataset.side, line);
      if (row) rowAfter(row, "review-thread-row").append(thread);
    }
    pool.hidden = !pool.querySelector(".review-thread");
    showTarget();
  }

  /** Open and scroll to the comment the address names, loading its file first when it waits to be loaded. */
  function showTarget() {
    const match = /^#(comment|thread)-\d+$/.exec(location.hash);
    if (!match) return;
    const target = document.getElementById(location.hash.slice(1));
    if (!target) return;
    const thread = target.closest(".review-thread");
    if (thread && thread.parentElement?.id === "review-threads" && thread.dataset.line) {
      const pending = [...document.querySelectorAll(".diff-file.diff-pending")].find(
        (file) => file.dataset.path === thread.dataset.path,
      );
      if (pending && window.portalCode) {
        window.portalCode.revealFile(pending.id, { updateHash: false });
        return;
      }
    }
    if (thread) thread.open = true;
    if (target.dataset.shown !== location.hash) {
      target.dataset.shown = location.hash;
      target.scrollIntoView({ block: "center" });
    }
  }

  /* ---------------------------------------------------------------- The "+" button and inline forms. */

  // Each loaded file has one real "+" button: the pointer moves it to the line under it, and from the keyboard it
  // is one Tab stop per file whose arrow keys move it between lines; Enter or Space opens the form on its line.
  const spots = new WeakMap(); // button -> {file, row, side, line}
  let anchor = null; // the last line a form was opened on, which a shift-click extends from

  const canComment = (diff = reviewDiff()) => Boolean(diff && diff.dataset.canComment === "1");

  function sideOf(row, cell) {
    if (isSplit(row.closest("table"))) {
      if (cell) return cell.cellIndex >= 2 ? "RIGHT" : "LEFT";
      return lineOf(row, "RIGHT") !== null ? "RIGHT" : "LEFT";
    }
    return row.classList.contains("diff-del") ? "LEFT" : "RIGHT";
  }

  /** Whether a line on one side of a row takes comments on this page. */
  function commentable(row, side) {
    if (lineOf(row, side) === null) return false;
    return side === "RIGHT" || reviewDiff()?.dataset.left === "1";
  }

  function sideLabel(side) {
    return side === "LEFT" ? "old" : "new";
  }

  /** Put a file's "+" on one side of a row, naming the line it comments on. */
  function moveButton(button, file, row, side) {
    const line = lineOf(row, side);
    const cell = numberCell(row, side);
    if (line === null || !cell) return;
    if (button.parentElement !== cell) cell.prepend(button);
    spots.set(button, { file, row, side, line });
    button.setAttribute("aria-label", `Comment on line ${line} of the ${sideLabel(side)} file`);
  }

  function buttonOf(file) {
    const table = fileTable(file);
    if (!table) return null;
    let button = table.querySelector("button.review-add");
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      button.className = "review-add";
      button.textContent = "+";
      button.title = "Comment on this line (shift-click another line for a range; arrow keys move between lines)";
    }
    return button;
  }

  /** Give every loaded file of the diff its "+" on its first line that takes comments. */
  function placeButtons(files) {
    const diff = reviewDiff();
    if (!canComment(diff)) return;
    for (const file of files || diff.querySelectorAll(".diff-file")) {
      const button = buttonOf(file);
      if (!button || button.isConnected) continue;
      for (const row of fileTable(file).rows) {
        if (isReviewRow(row)) continue;
        const side = sideOf(row, null);
        if (commentable(row, side)) {
          moveButton(button, file, row, side);
          break;
        }
      }
    }
  }

  function onHover(event) {
    const diff = reviewDiff();
    if (!canComment(diff)) return;
    const target = event.target instanceof Element ? event.target : null;
    const cell = target?.closest("td");
    const row = cell?.closest("tr");
    if (!row || row.closest(".review-row") || !diff.contains(row) || !row.closest("table.diff-table")) return;
    const file = row.closest(".diff-file");
    const side = sideOf(row, cell);
    const button = file && buttonOf(file);
    // Keep a button where the keyboard put it while it has the keyboard's focus.
    if (!button || button.matches(":focus-visible") || !commentable(row, side)) return;
    moveButton(button, file, row, side);
  }

  /** Arrow keys move a focused "+" to the next or previous line of its file (left and right change side). */
  function onButtonKey(event, button) {
    const spot = spots.get(button);
    if (!spot || event.altKey || event.ctrlKey || event.metaKey) return;
    const rows = [...fileTable(spot.file).rows].filter((row) => !isReviewRow(row));
    let side = spot.side;
    let index = rows.indexOf(spot.row);
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      side = event.key === "ArrowLeft" ? "LEFT" : "RIGHT";
      if (!commentable(spot.row, side)) return;
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const step = event.key === "ArrowDown" ? 1 : -1;
      for (index += step; index >= 0 && index < rows.length; index += step) {
        const row = rows[index];
        if (commentable(row, side)) break;
        if (isSplit(row.closest("table")) || !commentable(row, sideOf(row, null))) continue;
        side = sideOf(row, null);
        break;
      }
      if (index < 0 || index >= rows.length) return;
    } else {
      return;
    }
    event.preventDefault();
    moveButton(button, spot.file, rows[index], side);
    button.focus();
  }

  function rangeLabel(side, start, line) {
    const lines = start && start !== line ? `lines ${start}–${line}` : `line ${line}`;
    return `Commenting on ${lines} of the ${side === "LEFT" ? "old" : "new"} file`;
  }

  /** Open the inline form under a line, or stretch the form just opened to a range on a shift-click. */
  function openForm(event, button) {
    const spot = spots.get(button);
    if (!spot) return;
    const { file, side, line } = spot;
    const template = document.getElementById("review-inline-form");
    if (!template) return;
    let start = null;
    let end = line;
    let form = null;
    if (event.shiftKey && anchor && anchor.file === file && anchor.side === side && anchor.line !== line) {
      start = Math.min(anchor.line, line);
      end = Math.max(anchor.line, line);
      form = anchor.form?.isConnected ? anchor.form : null;
      window.getSelection()?.removeAllRanges();
    }
    const row = findRow(file, side, end);
    if (!row) return;
    if (form) {
      form.closest(".review-row")?.remove();
    } else {
      form = template.content.firstElementChild.cloneNode(true);
      anchor = { file, side, line, form };
    }
    form.elements.path.value = file.dataset.path;
    form.elements.side.value = side;
    form.elements.line.value = String(end);
    form.elements.start_line.value = start ? String(start) : "";
    form.querySelector(".inline-comment-target").textContent = rangeLabel(side, start, end);
    form.querySelector(".insert-suggestion").hidden = side !== "RIGHT";
    rowAfter(row, "review-form-row").append(form);
    form.elements.body.focus();
  }

  /** Fill a suggestion block with the current text of the new-side lines the form is on. */
  function insertSuggestion(form) {
    const file = fileFor(form.elements.path.value);
    const end = Number.parseInt(form.elements.line.value, 10);
    const start = Number.parseInt(form.elements.start_line.value, 10) || end;
    if (!file) return;
    const lines = [];
    for (const row of fileTable(file)?.rows ?? []) {
      const n = lineOf(row, "RIGHT");
      if (n !== null && n >= start && n <= end) lines.push(codeOf(row, "RIGHT"));
    }
    const area = form.elements.body;
    const block = `\`\`\`suggestion\n${lines.join("\n")}\n\`\`\`\n`;
    const at = area.selectionStart ?? area.value.length;
    const before = area.value.slice(0, at);
    area.value = before + (before && !before.endsWith("\n") ? "\n" : "") + block + area.value.slice(at);
    area.focus();
  }

  /* ---------------------------------------------------------------- Merge box. */

  /** Follow the chosen strategy with its default message, unless the user wrote their own. */
  function onStrategy(select) {
    const area = document.getElementById("merge-message");
    if (!area) return;
    const option = select.selectedOptions[0];
    const previous = select.dataset.previousMessage ?? select.options[0]?.dataset.message ?? "";
    if (area.value.trim() === previous.trim()) area.value = option?.dataset.message ?? "";
    select.dataset.previousMessage = option?.dataset.message ?? "";
    const wantsMessage = select.value === "merge" || select.value === "squash";
    area.closest(".merge-message")?.toggleAttribute("hidden", !wantsMessage);
  }

  /* ---------------------------------------------------------------- Events. */

  document.addEventListener("mouseover", onHover);

  const addButtonOf = (target) => (target instanceof Element ? target.closest("#review-diff button.review-add") : null);

  document.addEventListener("mousedown", (event) => {
    // A shift-click on "+" would also select the code between the two lines.
    if (event.shiftKey && addButtonOf(event.target)) event.preventDefault();
  });

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const button = addButtonOf(target);
    if (button) {
      event.preventDefault();
      openForm(event, button);
      return;
    }
    const form = target.closest("form.inline-comment-form");
    if (form && target.closest(".insert-suggestion")) {
      insertSuggestion(form);
    } else if (form && target.closest(".cancel-comment")) {
      if (!form.elements.body.value.trim() || window.confirm("Discard this comment?")) {
        form.closest(".review-row")?.remove();
      }
    }
  });

  document.addEventListener("change", (event) => {
    if (event.target instanceof HTMLSelectElement && event.target.id === "merge-strategy") onStrategy(event.target);
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // Ctrl-Enter (Cmd-Enter) in a comment box sends it, as the first button would.
  document.addEventListener("keydown", (event) => {
    const button = addButtonOf(event.target);
    if (button) {
      onButtonKey(event, button);
      return;
    }
    const area = event.target;
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || !(area instanceof HTMLTextAreaElement)) return;
    if (area.form && area.closest(".pr-main, .review-diff, .review-panel, .review-thread-pool")) {
      event.preventDefault();
      area.form.requestSubmit();
    }
  });

  /* ---------------------------------------------------------------- Panels that open ready to type in. */

  /** Focus the field a <details data-focus-on-open="selector"> names, so that opening it is ready for typing. */
  function focusPanel(details) {
    const field = details.dataset.focusOnOpen && details.querySelector(details.dataset.focusOnOpen);
    if (field) field.focus();
  }

  /** The address #review-changes (the conversation's "Review changes") opens the review form, ready to type in. */
  function showReviewPanel() {
    if (location.hash !== "#review-changes") return;
    const panel = document.getElementById("review-changes");
    if (!(panel instanceof HTMLDetailsElement)) return;
    if (panel.open) focusPanel(panel);
    else panel.open = true; // its toggle event focuses the field
    panel.scrollIntoView({ block: "start" });
  }

  // "toggle" does not bubble: listen while it is captured on its way down.
  document.addEventListener(
    "toggle",
    (event) => {
      const details = event.target;
      if (details instanceof HTMLDetailsElement && details.open && details.dataset.focusOnOpen) focusPanel(details);
    },
    true,
  );

  document.addEventListener("portal:diff-loaded", (event) => {
    placeButtons(event.detail?.files);
    placeThreads(event.detail?.files);
  });
  window.addEventListener("hashchange", () => {
    showTarget();
    showReviewPanel();
  });

  function init() {
    placeButtons();
    showReviewPanel();
    placeThreads();
    const select = document.getElementById("merge-strategy");
    if (select) onStrategy(select);
    if (!document.getElementById("review-threads")) showTarget();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
