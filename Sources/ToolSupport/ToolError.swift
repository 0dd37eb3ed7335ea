// The one error type of the tools (its-load, its-vhost-demo): a sentence for a person, printed on
// standard error before the tool exits 1.
import CITSSupport
import Glibc

/// Why a tool could not go on: a failed system call, a refused request, a bad reply, a child that
/// did not start.
public struct ToolError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) { self.description = description }

    /// The failed call `call` and the text of the calling thread's errno ("open /x: No such file
    /// or directory").
    /// - Context: any thread, straight after the failed call (before anything else can set errno).
    public static func system(_ call: String) -> ToolError {
        ToolError("\(call): \(String(cString: strerror(its_errno())))")
    }
}
