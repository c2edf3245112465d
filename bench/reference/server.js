// Reference signaling server: socket.io 4 in the style of the common WebRTC
// tutorials (Google's "Real time communication with WebRTC" codelab and its
// many copies). A client emits 'join' with a room name and gets 'created'
// (first in), 'joined' (second in) or 'full'; when the room is complete every
// member gets 'ready'. 'offer', 'answer', 'candidate' and 'message' are relayed
// to the other members of the sender's room. Nothing else: no ids to dial, no
// limits, no metrics. The benchmarks compare callapp-signaling against it.
//
// Usage: node server.js [port]   (0 or nothing: any port). Listens on
// 127.0.0.1 and prints one line: "listening on ws://127.0.0.1:PORT/socket.io/".
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const CAPACITY = 2;
const port = Number(process.argv[2] || 0);

const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const io = new Server(httpServer, {
  // The tutorials leave the defaults; only the transport is pinned, because
  // the load generator speaks the websocket transport directly.
  transports: ['websocket'],
});

io.on('connection', (socket) => {
  let room = null;

  socket.on('join', (name) => {
    const members = io.sockets.adapter.rooms.get(name);
    const count = members ? members.size : 0;
    if (count === 0) {
      socket.join(name);
      room = name;
      socket.emit('created', name, socket.id);
    } else if (count < CAPACITY) {
      socket.to(name).emit('join', name);
      socket.join(name);
      room = name;
      socket.emit('joined', name, socket.id);
      io.to(name).emit('ready', name);
    } else {
      socket.emit('full', name);
    }
  });

  for (const event of ['offer', 'answer', 'candidate', 'message']) {
    socket.on(event, (payload) => {
      if (room !== null) socket.to(room).emit(event, payload);
    });
  }

  socket.on('bye', () => {
    if (room !== null) {
      socket.to(room).emit('bye');
      socket.leave(room);
      room = null;
    }
  });
});

httpServer.listen(port, '127.0.0.1', () => {
  const { port: bound } = httpServer.address();
  console.log(`listening on ws://127.0.0.1:${bound}/socket.io/`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
