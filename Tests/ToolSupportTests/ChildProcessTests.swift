import Glibc
import Testing
import ToolSupport

/// Child processes as the tools start them: waited for through their log, stopped with SIGTERM,
/// reported when they die first.
struct ChildProcessTests {
    /// A fresh log path in /tmp, removed by the caller.
    private func logPath() -> String {
        var template = Array("/tmp/tool-support-test.XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        close(fd)
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test func waitsForTheLogAndStopsWithSIGTERM() throws {
        let log = logPath()
        defer { unlink(log) }
        let child = try ChildProcess(["/bin/sh", "-c", "echo ready; exec sleep 30"], logPath: log)
        try child.waitUntil("ready", timeoutMilliseconds: 10_000) { child.log.contains("ready") }
        #expect(child.isRunning)
        #expect(try child.terminate() == 128 + SIGTERM)
        #expect(!child.isRunning)
    }

    @Test func aChildThatExitsFirstFailsTheWaitWithItsLog() throws {
        let log = logPath()
        defer { unlink(log) }
        let child = try ChildProcess(["sh", "-c", "echo broken; exit 3"], logPath: log)
        do {
            try child.waitUntil("ready", timeoutMilliseconds: 10_000) { false }
            Issue.record("the wait ended without an error")
        } catch {
            #expect(error.description == "sh exited before ready; its log:\nbroken\n")
        }
        #expect(try child.terminate() == 3)
    }

    @Test func aMissingProgramDoesNotStart() {
        #expect(throws: ToolError.self) {
            _ = try ChildProcess(["/nonexistent/its-tool"], logPath: "/dev/null")
        }
    }

    @Test func theExecutableDirectoryHoldsTheRunningTest() throws {
        let directory = try executableDirectory()
        #expect(directory.hasPrefix("/"))
        #expect(access(directory, F_OK) == 0)
        #expect(try besideExecutable("itsd") == directory + "/itsd")
    }
}
