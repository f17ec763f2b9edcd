// Prints N free TCP ports on 127.0.0.1, one a line: the kernel picks them
// (listen on port 0), all held open at once so they differ.
import net from 'node:net'

const count = Number(process.argv[2] ?? 1)
const servers = await Promise.all(Array.from({ length: count }, () => new Promise((resolve, reject) => {
  const server = net.createServer()
  server.once('error', reject)
  server.listen(0, '127.0.0.1', () => resolve(server))
})))
for (const server of servers) console.log(server.address().port)
await Promise.all(servers.map(server => new Promise(resolve => server.close(resolve))))
