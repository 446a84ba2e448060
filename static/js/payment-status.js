// The payment page updates itself: it asks our status endpoint every few seconds and
// reloads once the payment has moved (paid, failed, ...). Without JavaScript the page
// has a "Refresh this page" link that does the same.
(function () {
  "use strict";
  var box = document.getElementById("payment-status");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-status-url");
  var state = box.getAttribute("data-state");
  var delay = 3000;
  var stopAt = Date.now() + 15 * 60 * 1000;

  function poll() {
    if (Date.now() > stopAt) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.state !== state) {
          window.location.reload();
          return;
        }
        // Slower and slower: a bank transfer of days needs no polling every 3 seconds.
        delay = Math.min(delay * 1.5, 60000);
        window.setTimeout(poll, delay);
      })
      .catch(function () { window.setTimeout(poll, 30000); });
  }
  window.setTimeout(poll, delay);
})();
