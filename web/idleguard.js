// idleguard loader. A POS page is guarded by one line:
//
//   <script src="/idleguard.js" defer></script>
//
// Options, as data- attributes on that tag:
//   data-login-url   where a signed-out page goes (default /login); the guard
//                    adds ?reason=<idle|signed_out|setting_changed|revoked>
//                    &expiration=<seconds>&next=<this page's path>
//   data-socket-url  the guard's WebSocket (default /ws on this page's origin;
//                    ws: or wss: follows the page)
//
// The loader records the time of the last trusted input at once, in plain
// passive listeners (no Go code runs per event), then, after the page's load
// event, loads wasm_exec.js and the guard module without blocking the page.
// Everything it shares lives on globalThis.__idleguard:
//   config     {loginURL, socketURL, moduleURL, execURL}
//   input      {last}: event.timeStamp of the last trusted input (0: none)
//   started    true once the module runs
//   connectedAt performance.now() when the socket first opened (null before)
//   state      the last idleguard:state detail
//                {remaining_ms, expiration_seconds, warning_ms, connected}
//   signedOut  the idleguard:signout detail {reason, expiration_seconds}
//   error      why the module could not start, if it could not
// The module dispatches on window: idleguard:state, idleguard:warning
// {remaining_ms} and, synchronously before the page leaves,
// idleguard:signout.
(function () {
  'use strict';
  if (globalThis.__idleguard) return; // the line appears twice: one guard

  var script = document.currentScript;
  var data = (script && script.dataset) || {};
  var base = (script && script.src) || location.href;

  var socket;
  try {
    socket = new URL(data.socketUrl || '/ws', location.href);
  } catch (err) {
    console.error('idleguard: data-socket-url is not a URL; using /ws');
    socket = new URL('/ws', location.href);
  }
  if (socket.protocol === 'https:') socket.protocol = 'wss:';
  else if (socket.protocol === 'http:') socket.protocol = 'ws:';

  var moduleURL = '__IDLEGUARD_WASM_URL__'; // the server writes the hashed URL here
  var ig = {
    config: {
      loginURL: data.loginUrl || '/login',
      socketURL: socket.href,
      moduleURL: moduleURL ? new URL(moduleURL, base).href : '',
      execURL: new URL('/wasm_exec.js', base).href
    },
    input: { last: 0 },
    started: false,
    connectedAt: null,
    state: null,
    signedOut: null,
    error: null
  };
  globalThis.__idleguard = ig;

  // Only trusted input counts: a script's synthetic events never keep a
  // session alive.
  var input = ig.input;
  var opts = { capture: true, passive: true };
  function sample(e) {
    if (e.isTrusted && e.timeStamp > input.last) input.last = e.timeStamp;
  }
  // Listen to pointermove or mousemove, never both (one move, one call).
  // Not 'scroll': the browser marks every scroll event trusted, even one a
  // script caused (an auto-scrolling ticker would keep a till signed in
  // forever); a person scrolls with the wheel, a touch, a key or the
  // pointer, which are all here.
  var pointer = 'onpointerdown' in window;
  var types = [pointer ? 'pointermove' : 'mousemove', pointer ? 'pointerdown' : 'mousedown',
    'keydown', 'wheel', 'touchstart'];
  for (var i = 0; i < types.length; i++) addEventListener(types[i], sample, opts);

  function fail(err) {
    ig.error = String(err && err.message || err);
    console.error('idleguard: the guard did not start:', err);
  }

  function instantiate() {
    var go = new Go();
    var streaming = WebAssembly.instantiateStreaming
      ? WebAssembly.instantiateStreaming(fetch(ig.config.moduleURL), go.importObject)
      : Promise.reject(new TypeError('no streaming compilation'));
    streaming.catch(function () {
      // e.g. a proxy that does not say application/wasm: compile from bytes.
      return fetch(ig.config.moduleURL).then(function (r) {
        if (!r.ok) throw new Error('GET ' + ig.config.moduleURL + ': ' + r.status);
        return r.arrayBuffer();
      }).then(function (bytes) {
        return WebAssembly.instantiate(bytes, go.importObject);
      });
    }).then(function (result) {
      return go.run(result.instance); // settles when the guard stops (signed out)
    }).catch(fail);
  }

  function load() {
    if (!ig.config.moduleURL) {
      fail('the module is not built (make wasm)');
      return;
    }
    if (typeof Go === 'function') {
      instantiate();
      return;
    }
    var exec = document.createElement('script');
    exec.src = ig.config.execURL;
    exec.async = true;
    exec.onload = instantiate;
    exec.onerror = function () { fail('cannot load ' + exec.src); };
    document.head.appendChild(exec);
  }

  if (document.readyState === 'complete') setTimeout(load, 0);
  else addEventListener('load', function () { setTimeout(load, 0); }, { once: true });
})();
