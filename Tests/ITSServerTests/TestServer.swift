@testable import ITSServer

/// Runs an itsd ``Server`` in this process for one test: it listens on a fresh socket named after
/// `name`, with `lanes` lanes and whatever else `configure` sets; its loop runs on this thread
/// while `client` runs on a thread of its own, given the socket's path; the server stops once
/// `client` returns. Returns the stopped server, whose counters a test may read.
@discardableResult
func runServer(_ name: String, lanes: Int = 2, configure: (inout Server.Configuration) -> Void = { _ in },
               whileClient client: @escaping @Sendable (_ path: String) -> Void) throws -> Server {
    let path = temporarySocketPath(name)
    var configuration = Server.Configuration(socketPath: path, lanes: lanes)
    configure(&configuration)
    let server = try Server(configuration: configuration)
    runLoop(server.loop) { client(path) }
    server.stop()
    return server
}
