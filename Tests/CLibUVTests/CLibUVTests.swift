import CLibUV
import Testing

/// The system library target links the libuv the build expects (Debian bookworm ships 1.44).
@Test func linksLibuvOneDotFortyFourOrLater() {
    let version = uv_version()
    #expect(version >> 16 == 1)
    #expect((version >> 8) & 0xFF >= 44)
}

/// A loop can be created, run with nothing to do, and closed.
@Test func loopRunsAndCloses() {
    var loop = uv_loop_t()
    #expect(uv_loop_init(&loop) == 0)
    #expect(uv_run(&loop, UV_RUN_DEFAULT) == 0)
    #expect(uv_loop_close(&loop) == 0)
}
