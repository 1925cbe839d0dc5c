// The Node socket.io 4 server push-core is measured against.
//
// It does the job of the setup push-core replaces: browsers connect to one
// namespace; each joins the room of its user; the site publishes over HTTP
// (here POST /publish, where the original took an elephant.io connection
// per publish) to everyone or to chosen users.
//
// Who a browser is: with AUTH_URL set, the browser's Cookie header is
// forwarded to that URL at connect, as push-core does, with no cache;
// otherwise the cookie `uid=N` is trusted as it is.
//
// Environment: PORT (required), NAMESPACE (default /bench), AUTH_URL.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT);
const namespace = process.env.NAMESPACE || "/bench";
const authUrl = process.env.AUTH_URL || null;
// Same bound on parallel auth calls as push-core's auth_max_concurrency.
const authAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });

const httpServer = http.createServer(handleHttp);
const io = new Server(httpServer, { serveClient: false });
const nsp = io.of(namespace);

nsp.use((socket, next) => {
  const cookie = socket.handshake.headers.cookie || "";
  const joinUser = (user) => {
    if (user !== null && user !== undefined) socket.join("user:" + user);
    next();
  };
  if (!authUrl) return joinUser(uidFromCookie(cookie));
  if (!cookie) return joinUser(null);
  askSite(cookie).then(joinUser, () => joinUser(null));
});

function uidFromCookie(cookie) {
  const match = /(?:^|;\s*)uid=(\d+)/.exec(cookie);
  return match ? match[1] : null;
}

function askSite(cookie) {
  return new Promise((resolve, reject) => {
    const request = http.get(authUrl, { agent: authAgent, headers: { cookie } }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => {
        if (response.statusCode !== 200) return resolve(null);
        try {
          const answer = JSON.parse(body);
          resolve(answer.user_id === null || answer.user_id === undefined ? null : String(answer.user_id));
        } catch (error) {
          reject(error);
        }
      });
    });
    request.setTimeout(2000, () => request.destroy(new Error("auth timeout")));
    request.on("error", reject);
  });
}

// POST /publish with a JSON array of {"u": user id or null, "p": payload}.
function handleHttp(request, response) {
  if (request.method !== "POST" || request.url !== "/publish") {
    // socket.io answers its own path; anything else is not ours.
    if (!request.url.startsWith("/socket.io/")) {
      response.writeHead(404).end();
    }
    return;
  }
  let body = "";
  request.setEncoding("utf8");
  request.on("data", (chunk) => (body += chunk));
  request.on("end", () => {
    let messages;
    try {
      messages = JSON.parse(body);
    } catch (error) {
      response.writeHead(400).end("bad json");
      return;
    }
    for (const message of messages) {
      if (message.u === null || message.u === undefined) {
        nsp.emit("m", message.p);
      } else {
        nsp.to("user:" + message.u).emit("m", message.p);
      }
    }
    const answer = String(messages.length);
    response.writeHead(200, { "content-type": "text/plain", "content-length": answer.length });
    response.end(answer);
  });
}

// The same listen backlog as push-core's (1024) instead of Node's 511, so a
// connect storm measures the servers, not their defaults.
httpServer.listen({ port, host: "127.0.0.1", backlog: 1024 }, () => {
  process.stdout.write(`node socket.io peer on ${port}, namespace ${namespace}\n`);
});
