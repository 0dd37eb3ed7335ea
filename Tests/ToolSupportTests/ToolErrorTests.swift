import Glibc
import Testing
import ToolSupport

/// The tools' error: the sentence given, or the failed call with errno's text.
struct ToolErrorTests {
    @Test func describesItselfWithTheSentenceGiven() {
        #expect(ToolError("itsd did not listen").description == "itsd did not listen")
        #expect("\(ToolError("x: y"))" == "x: y")
    }

    @Test func systemNamesTheCallAndErrno() {
        let fd = open("/nonexistent/its-tool-support", O_RDONLY)
        let error = ToolError.system("open /nonexistent/its-tool-support")
        #expect(fd == -1)
        #expect(error.description == "open /nonexistent/its-tool-support: No such file or directory")
    }
}
