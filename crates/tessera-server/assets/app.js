// Tessera console: small progressive enhancements. Every page works without them.
(function () {
  "use strict";
  var lang = document.body.getAttribute("data-lang") || "en";

  // A page that answered a form post takes its own URL, so reload and back never
  // post again, and a revealed secret is gone on the next visit.
  var replaceUrl = document.body.getAttribute("data-replace-url");
  if (replaceUrl && window.history && history.replaceState) {
    history.replaceState(null, "", replaceUrl);
  }

  // A page that shows a secret forgets it when left, so the back/forward cache cannot
  // bring it back.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("#secret-value").forEach(function (input) { input.value = ""; });
    document.querySelectorAll("section.secret").forEach(function (section) { section.remove(); });
  });

  // Times: relative ("3 days ago") in the page's language; exact local time on hover.
  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(lang, { numeric: "auto" }) : null;
  var exact = window.Intl ? new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }) : null;
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  document.querySelectorAll("time[datetime]").forEach(function (node) {
    var at = new Date(node.getAttribute("datetime"));
    if (isNaN(at.getTime())) return;
    if (exact) node.title = exact.format(at);
    if (!relative) return;
    var seconds = (at.getTime() - Date.now()) / 1000;
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1] || units[i][0] === "second") {
        node.textContent = relative.format(Math.round(seconds / units[i][1]), units[i][0]);
        break;
      }
    }
  });

  // Filters apply as soon as a select changes.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // The secret: selected whole on click, copied by the button.
  document.querySelectorAll("[data-select-all]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
    input.addEventListener("click", function () { input.select(); });
  });
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var label = button.textContent;
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      if (!input) return;
      var done = function () {
        button.textContent = button.getAttribute("data-copied");
        setTimeout(function () { button.textContent = label; }, 2000);
      };
      input.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });

  // Dialogs open modal (focus stays inside, Escape closes); Cancel is focused first.
  function openDialog(dialog) {
    if (dialog.open) dialog.close();
    if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
    var first = dialog.querySelector("[autofocus]");
    if (first) first.focus();
  }
  document.querySelectorAll("[data-open]").forEach(function (trigger) {
    trigger.addEventListener("click", function (event) {
      var dialog = document.getElementById(trigger.getAttribute("data-open"));
      if (!dialog) return;
      event.preventDefault();
      openDialog(dialog);
    });
  });
  document.querySelectorAll("dialog [data-close]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      button.closest("dialog").close();
    });
  });
  document.querySelectorAll("dialog[data-autoshow]").forEach(openDialog);

  // Menus: one open at a time; Escape or a click elsewhere closes them.
  // An open menu floats above the page (a table's scroll frame would clip it), below
  // its button or above it when there is no room, and follows it when the page or the
  // table scrolls.
  var menus = document.querySelectorAll("details.menu");
  function place(menu) {
    var items = menu.querySelector(".menu-items");
    var button = menu.querySelector("summary").getBoundingClientRect();
    items.classList.add("floating");
    var height = items.offsetHeight;
    var below = button.bottom + 4;
    items.style.top = (below + height > window.innerHeight ? Math.max(4, button.top - height - 4) : below) + "px";
    items.style.left = Math.max(4, button.right - items.offsetWidth) + "px";
  }
  menus.forEach(function (menu) {
    menu.addEventListener("toggle", function () {
      if (!menu.open) return;
      menus.forEach(function (other) { if (other !== menu) other.open = false; });
      place(menu);
    });
  });
  function replaceOpen() { menus.forEach(function (menu) { if (menu.open) place(menu); }); }
  document.addEventListener("scroll", replaceOpen, { passive: true, capture: true });
  window.addEventListener("resize", replaceOpen);
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    menus.forEach(function (menu) {
      if (menu.open) { menu.open = false; menu.querySelector("summary").focus(); }
    });
  });
  document.addEventListener("click", function (event) {
    menus.forEach(function (menu) { if (menu.open && !menu.contains(event.target)) menu.open = false; });
  });

  // The permission matrix: select all per resource, for everything, or clear all.
  function boxes(resource) {
    var all = Array.prototype.slice.call(document.querySelectorAll('input[name="permissions"]'));
    return resource ? all.filter(function (b) { return b.getAttribute("data-resource") === resource; }) : all;
  }
  function syncResource(toggle) {
    var all = boxes(toggle.getAttribute("data-select-resource"));
    var checked = Array.prototype.filter.call(all, function (b) { return b.checked; }).length;
    toggle.checked = all.length > 0 && checked === all.length;
    toggle.indeterminate = checked > 0 && checked < all.length;
  }
  var toggles = document.querySelectorAll("[data-select-resource]");
  toggles.forEach(function (toggle) {
    syncResource(toggle);
    toggle.addEventListener("change", function () {
      boxes(toggle.getAttribute("data-select-resource")).forEach(function (b) { b.checked = toggle.checked; });
    });
  });
  boxes(null).forEach(function (box) {
    box.addEventListener("change", function () { toggles.forEach(syncResource); });
  });
  document.querySelectorAll("[data-matrix]").forEach(function (button) {
    button.addEventListener("click", function () {
      var on = button.getAttribute("data-matrix") === "all";
      boxes(null).forEach(function (b) { b.checked = on; });
      toggles.forEach(syncResource);
    });
  });

  // Typing a date chooses "until a date".
  var expiresOn = document.getElementById("expires_on");
  var untilDate = document.getElementById("duration-custom");
  if (expiresOn && untilDate) {
    expiresOn.addEventListener("change", function () { if (expiresOn.value) untilDate.checked = true; });
  }

  // Destructive forms that name what they remove ask once more (users, roles, …).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
