import CITSSupport
import Glibc

/// An errno from a system call, with the call's name: the server's typed error for everything
/// below libuv.
public struct SystemError: Error, Hashable, Sendable, CustomStringConvertible {
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// The error of the call that just failed.
    static func last(_ call: String) -> SystemError { SystemError(call, errno: its_errno()) }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// Runs `body` until it stops failing with EINTR; returns its result or the error it failed with.
@inline(__always)
func retryingOnInterrupt<T: BinaryInteger>(_ call: String, _ body: () -> T) -> Result<T, SystemError> {
    while true {
        let result = body()
        if result >= 0 { return .success(result) }
        let error = its_errno()
        if error != EINTR { return .failure(SystemError(call, errno: error)) }
    }
}
