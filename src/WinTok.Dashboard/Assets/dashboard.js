// Live refresh without a framework: a page whose <main> carries data-refresh="N" re-reads itself every N seconds and
// swaps in the new <main>. The markup comes from this same server, HTML-encoded as on first load; scripts inserted this
// way never run. Refresh stops when the new page no longer asks for it (the job ended) or while the user types.
(function () {
  "use strict";
  function schedule() {
    var main = document.getElementById("content");
    var seconds = main && Number(main.getAttribute("data-refresh"));
    if (!seconds) return;
    setTimeout(refresh, seconds * 1000);
  }
  function refresh() {
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "SELECT" || active.tagName === "TEXTAREA")) { schedule(); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("content");
        var main = document.getElementById("content");
        if (next && main) main.replaceWith(document.importNode(next, true));
        schedule();
      })
      .catch(function () { setTimeout(refresh, 10000); });
  }
  document.addEventListener("DOMContentLoaded", schedule);
})();
