// Live preview while writing: a progressive enhancement of the "Preview" button. The text
// is posted (with the page's CSRF token) to the server, which renders and sanitises it; we
// only ever insert the server's sanitised HTML. Also shows the word count as you type.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form.write-form[data-preview-url]");
    if (!form) { return; }
    var area = form.querySelector("textarea[name='body']");
    var pane = document.getElementById("live-preview");
    var words = form.querySelector(".live-words");
    var token = form.querySelector("input[name='csrf_token']");
    var timer = null;
    var pending = null;

    function refresh() {
      if (pending) { pending.abort(); }
      pending = new AbortController();
      var data = new URLSearchParams();
      data.set("body", area.value);
      if (token) { data.set("csrf_token", token.value); }
      fetch(form.dataset.previewUrl, {
        method: "POST", body: data, credentials: "same-origin", signal: pending.signal,
        headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (result) {
        if (!result) { return; }
        pane.innerHTML = result.html;
        if (words) { words.textContent = result.words + " / " + form.dataset.target; }
      }).catch(function () { /* typing on: the next refresh will do */ });
    }

    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 400);
    });
    refresh();
  });
})();
