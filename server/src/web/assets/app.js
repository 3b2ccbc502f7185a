// savesync dashboard: live updates. The page says which feed position it shows
// (body[data-cursor]); when the server's event stream announces a later one, the page is
// fetched again and its <main data-live> region swapped in, so a save written on a device
// appears without a reload. Nothing else here: every page works without JavaScript.
(function () {
  "use strict";

  // A login link carries its token after '#', which never reaches the server's logs.
  var tokenField = document.querySelector("input[data-from-hash]");
  if (tokenField && location.hash.length > 1) {
    tokenField.value = decodeURIComponent(location.hash.slice(1));
    history.replaceState(null, "", location.pathname);
  }

  var live = document.querySelector("main[data-live]");
  var indicator = document.getElementById("live");
  if (!live || !window.EventSource) return;
  var shown = Number(document.body.dataset.cursor || 0);
  var busy = false, again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        var type = r.headers.get("content-type") || "";
        if (!r.ok || type.indexOf("text/html") !== 0) return null;
        return r.text();
      })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.querySelector("main[data-live]");
        if (!fresh) return;
        var active = document.activeElement && document.activeElement.name;
        live.innerHTML = fresh.innerHTML;
        shown = Math.max(shown, Number(doc.body.dataset.cursor || 0));
        document.body.dataset.cursor = String(shown);
        if (active) {
          var field = live.querySelector("[name='" + active + "']");
          if (field) field.focus();
        }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var events = new EventSource("/web/events");
  events.addEventListener("open", function () { if (indicator) indicator.dataset.state = "on"; });
  events.addEventListener("error", function () { if (indicator) indicator.dataset.state = "off"; });
  events.addEventListener("cursor", function (e) {
    var cursor = JSON.parse(e.data).cursor;
    if (cursor > shown) refresh();
  });
})();
