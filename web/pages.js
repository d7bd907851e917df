// Words the login and admin pages share: durations as people say them.
(function () {
  'use strict';

  // "2 days", "1 minute", 90 -> "1 minute 30 seconds".
  function humanize(seconds) {
    var units = [['day', 86400], ['hour', 3600], ['minute', 60], ['second', 1]];
    var parts = [];
    for (var i = 0; i < units.length; i++) {
      var n = Math.floor(seconds / units[i][1]);
      seconds -= n * units[i][1];
      if (n > 0) parts.push(n + ' ' + units[i][0] + (n === 1 ? '' : 's'));
    }
    return parts.length ? parts.join(' ') : '0 seconds';
  }

  // "172800 seconds (2 days)"; "3 seconds", not "3 seconds (3 seconds)".
  function secondsText(n) {
    var plain = n + (n === 1 ? ' second' : ' seconds');
    var h = humanize(n);
    return h === plain ? plain : plain + ' (' + h + ')';
  }

  globalThis.idleguardPages = { humanize: humanize, secondsText: secondsText };
})();
