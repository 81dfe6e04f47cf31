(function () {
  "use strict";
  document.body.setAttribute("data-js", "ok");
  var fv = document.getElementById("f-verdict");
  var ff = document.getElementById("f-flag");
  var fq = document.getElementById("f-text");
  var out = document.getElementById("f-count");
  if (!fv || !ff || !fq || !out) {
    return;
  }
  var rows = document.querySelectorAll("#domain-table > tbody > tr");
  function apply() {
    var v = fv.value, f = ff.value, q = fq.value.trim().toLowerCase(), shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = (!v || r.getAttribute("data-verdict") === v) &&
        (!f || (" " + r.getAttribute("data-flags") + " ").indexOf(" " + f + " ") >= 0) &&
        (!q || r.getAttribute("data-domain").indexOf(q) >= 0);
      r.hidden = !ok;
      if (ok) {
        shown++;
      }
    }
    out.textContent = shown.toLocaleString("en-US");
  }
  fv.addEventListener("change", apply);
  ff.addEventListener("change", apply);
  fq.addEventListener("input", apply);
  apply();
})();
