// Follows a running check through server-sent events and opens its result when it ends.
// Optional: without JavaScript the page refreshes itself (a <noscript> meta refresh).
"use strict";
(function () {
  var box = document.getElementById("progress");
  if (!box || !window.EventSource) { return; }
  var bar = document.getElementById("progress-bar");
  var text = document.getElementById("progress-text");
  var source = new EventSource(box.getAttribute("data-events"));
  source.addEventListener("progress", function (event) {
    var data = JSON.parse(event.data);
    text.textContent = data.text;
    bar.max = Math.max(1, Math.round(data.budget));
    bar.value = Math.floor(data.elapsed);
  });
  source.addEventListener("done", function (event) {
    source.close();
    window.location.replace(JSON.parse(event.data).url);
  });
  source.onerror = function () {
    // the server went away or forgot the check: a reload shows what it knows now
    source.close();
    window.setTimeout(function () { window.location.reload(); }, 2000);
  };
})();
