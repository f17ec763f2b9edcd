// Preloaded into the suite's origin server (node --import ./loopback.mjs):
// the server calls listen(port) with no host, which would bind every
// interface; this makes such a call bind 127.0.0.1 only, so the conformance
// run never listens beyond the loopback interface.
import http from 'node:http'

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (...args) {
  const [port] = args
  if ((typeof port === 'number' || typeof port === 'string') && (args.length === 1 || typeof args[1] === 'function')) {
    return listen.call(this, Number(port), '127.0.0.1', ...args.slice(1))
  }
  return listen.apply(this, args)
}
