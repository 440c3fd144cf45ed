// Embeds the form "{{ form_name|escapejs }}": an iframe is inserted where this script tag is.
(function () {
  var formUrl = "{{ form_url|escapejs }}";
  var script = document.currentScript ||
    document.querySelector('script[src^="' + formUrl + 'embed.js"]');
  if (!script || !script.parentNode) return;
  var page = new URLSearchParams(window.location.search);
  var query = new URLSearchParams();
  [{% for key in utm_keys %}"{{ key|escapejs }}"{% if not forloop.last %}, {% endif %}{% endfor %}].forEach(function (key) {
    var value = page.get(key);
    if (value) query.set(key, value);
  });
  // The page that embeds the form; the browser would often send only its origin as the iframe's Referer.
  query.set("{{ referrer_param|escapejs }}", window.location.href);
  var frame = document.createElement("iframe");
  frame.src = formUrl + "?" + query.toString();
  frame.title = "{{ form_name|escapejs }}";
  frame.setAttribute("loading", "lazy");
  frame.style.cssText = "width:100%;max-width:640px;height:640px;border:0;display:block";
  script.parentNode.insertBefore(frame, script.nextSibling);
  var origin = new URL(formUrl).origin;
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || event.source !== frame.contentWindow) return;
    var data = event.data || {};
    if (data.type === "leadcrm:height" && typeof data.height === "number" && data.height > 0) {
      frame.style.height = Math.min(Math.ceil(data.height), 5000) + "px";
    }
  });
})();
