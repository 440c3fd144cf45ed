// Tell the server the viewer's timezone once, so times are shown in it from the next page on.
(function () {
  var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (tz && document.cookie.indexOf("tz=" + encodeURIComponent(tz)) === -1) {
    document.cookie = "tz=" + encodeURIComponent(tz) + "; path=/; max-age=31536000; SameSite=Lax";
  }
})();
