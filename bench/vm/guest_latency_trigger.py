#!/usr/bin/python3
"""The host side of bench/vm/guest_latency.sh: makes server-side changes on request.

guest_latency_trigger.py ROOT PORT  listens on 127.0.0.1:PORT (the guest reaches it through a
VM_FWD forward). One request per line:
  touch REL   create REL (a path relative to ROOT, no "..") and close it: CREATE, OPEN,
              CLOSE_WRITE on the server; answers "ok" once the file is closed
  ping        answers "pong" at once (the trigger's own round trip, to subtract)
Anything else is answered "err ...". Each connection is served by its own thread.
"""
import os
import socketserver
import sys

ROOT = os.path.realpath(sys.argv[1])


class Handler(socketserver.StreamRequestHandler):
    disable_nagle_algorithm = True

    def handle(self):
        for raw in self.rfile:
            line = raw.decode(errors='replace').strip()
            if line == 'ping':
                reply = 'pong'
            elif line.startswith('touch '):
                rel = line[6:]
                path = os.path.realpath(os.path.join(ROOT, rel))
                if rel.startswith('/') or not path.startswith(ROOT + '/'):
                    reply = 'err outside ' + ROOT
                else:
                    try:
                        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
                        reply = 'ok'
                    except OSError as e:
                        reply = 'err ' + str(e)
            else:
                reply = 'err unknown request'
            self.wfile.write((reply + '\n').encode())
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == '__main__':
    with Server(('127.0.0.1', int(sys.argv[2])), Handler) as srv:
        srv.serve_forever()
