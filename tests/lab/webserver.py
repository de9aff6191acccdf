"""A backend web server for the lab: answers GET / with its name and GET
/healthz with 200, over HTTP/1.1 keep-alive so that a test can hold a
connection open across a backend failure elsewhere.

    webserver.py NAME [PORT]
"""
import http.server
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stratus-lab"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = (self.server.name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    name = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    srv = Server(("0.0.0.0", port), Handler)
    srv.name = name
    srv.serve_forever()


if __name__ == "__main__":
    main()
