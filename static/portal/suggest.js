// Fields that name people suggest usernames as they are typed: <input data-suggest-users="owner/repo"> (the
// repository, when given, puts the people who have a role on it first), or <form data-suggest-users-field="name">
// for fields rendered by a form. Suggestions come from /-/users/suggest into a <datalist> this script adds; in a
// field that takes several names (space- or comma-separated), they complete the last one.
(() => {
  "use strict";

  const ENDPOINT = "/-/users/suggest";
  const DELAY_MS = 150;
  let lists = 0;

  /** The names typed before the last one (kept as they are) and the last one, without its "@". */
  function split(value) {
    const match = /^(.*[\s,])?@?([^\s,@]*)$/.exec(value);
    return match ? [match[1] || "", match[2]] : [value, ""];
  }

  function attach(input, repo) {
    if (input.dataset.suggestReady) return;
    input.dataset.suggestReady = "1";
    const list = document.createElement("datalist");
    lists += 1;
    list.id = `user-suggestions-${lists}`;
    input.after(list);
    input.setAttribute("list", list.id);
    input.setAttribute("autocomplete", "off");
    let timer = 0;
    let controller = null;

    async function suggest() {
      const value = input.value;
      const [before, last] = split(value);
      if (!last) {
        list.replaceChildren();
        return;
      }
      const params = new URLSearchParams({ q: last });
      if (repo) params.set("repo", repo);
      controller?.abort();
      controller = new AbortController();
      try {
        const response = await fetch(`${ENDPOINT}?${params}`, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          signal: controller.signal,
        });
        if (!response.ok || input.value !== value) return;
        const { users } = await response.json();
        list.replaceChildren(
          ...users.map((name) => {
            const option = document.createElement("option");
            option.value = before + name;
            return option;
          }),
        );
      } catch {
        // A suggestion that fails to arrive changes nothing: the field still takes what is typed.
      }
    }

    input.addEventListener("input", () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(suggest, DELAY_MS);
    });
  }

  function init() {
    for (const input of document.querySelectorAll("input[data-suggest-users]")) {
      attach(input, input.dataset.suggestUsers);
    }
    for (const form of document.querySelectorAll("form[data-suggest-users-field]")) {
      for (const name of form.dataset.suggestUsersField.split(/\s+/)) {
        const input = form.elements.namedItem(name);
        if (input instanceof HTMLInputElement) attach(input, form.dataset.suggestRepo || "");
      }
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
