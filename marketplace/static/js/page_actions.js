/* Small page actions without inline handlers (the Content-Security-Policy forbids them):
   [data-print] prints the page, [data-copy="#id"] copies that element's value or text,
   form[data-confirm] asks before it submits. */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-print], [data-copy]") : null;
    if (!target) return;
    if (target.hasAttribute("data-print")) {
      window.print();
      return;
    }
    var source = document.querySelector(target.getAttribute("data-copy"));
    if (!source) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      var label = target.getAttribute("data-copied") || "Copied";
      var before = target.textContent;
      target.textContent = label;
      setTimeout(function () { target.textContent = before; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(source); done(); });
    } else {
      fallback(source);
      done();
    }
  });

  function fallback(source) {
    if (source.select) {
      source.select();
      document.execCommand("copy");
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);
})();
