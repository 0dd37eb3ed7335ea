import Glibc
import ITSClient
import ITSWire
import Testing

/// Fire-and-forget MSIs allocate nothing per MSI. The test runs itself again in a child process with
/// a malloc-counting library preloaded (built here from `countingShim` with the C compiler), and the
/// child counts the allocations its own thread makes while 200,000 MSIs are posted in batches and
/// 20,000 sent one by one.
@Suite struct PostingAllocationTests {
    static let posted = 200_000
    static let single = 20_000

    @Test func fireAndForgetMSIsAllocateNothingPerMSI() throws {
        if let socket = getenv("ITSCLIENT_COUNT_SOCKET") {
            return try Self.counted(socket: String(cString: socket))
        }
        guard let compiler = findExecutable("cc") ?? findExecutable("gcc") else {
            try Test.cancel("no C compiler to build the malloc-counting library")
        }
        let directory = temporaryPath("shim")
        try #require(mkdir(directory, 0o700) == 0)
        defer {
            unlink(directory + "/shim.c")
            unlink(directory + "/shim.so")
            rmdir(directory)
        }
        let source = fopen(directory + "/shim.c", "w")
        fputs(Self.countingShim, source)
        fclose(source)
        let build = try #require(ChildProcess(compiler, ["-shared", "-fPIC", "-O1", "-o", directory + "/shim.so", directory + "/shim.c", "-ldl"]))
        try #require(build.wait(seconds: 60) == 0, "\(build.errors)")

        let server = try #require(LiveServer())
        var executable = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &executable, executable.count - 1)
        try #require(length > 0)
        let path = String(decoding: executable[0 ..< length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let child = try #require(ChildProcess(path, ["--testing-library", "swift-testing", "--filter", "fireAndForgetMSIsAllocateNothingPerMSI"],
                                              environment: ["LD_PRELOAD": directory + "/shim.so", "ITSCLIENT_COUNT_SOCKET": server.socketPath]))
        #expect(child.wait(seconds: 120) == 0, "\(child.output)\(child.errors)")
        let report = child.output.split(separator: "\n").first { $0.hasPrefix("allocations: ") }
        let count = try #require(report.flatMap { Int($0.dropFirst("allocations: ".count)) }, "\(child.output)")
        #expect(count == 0, "\(count) allocations for \(Self.posted + Self.single) MSIs")
        let control = child.output.split(separator: "\n").first { $0.hasPrefix("control: ") }.flatMap { Int($0.dropFirst("control: ".count)) }
        #expect((control ?? 0) > 10, "the counter sees a STATS call's allocations: \(child.output)")
    }

    /// The child's side: warms the connection up, then counts the hot loops' allocations.
    static func counted(socket: String) throws {
        typealias Toggle = @convention(c) (Int32) -> Void
        typealias Count = @convention(c) () -> UInt
        guard let toggle = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "itsclient_count_allocations"),
              let read = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "itsclient_allocations") else {
            Issue.record("the malloc-counting library is not loaded")
            return
        }
        let connection = try ITSConnection(path: socket)
        let vm = try connection.createVM(VMConfig(vcpuCount: 1, deviceIDBits: 16, eventIDBits: 16, intidBits: 16))
        let group = vm.vectorGroup(deviceID: Wire.DeviceID(3))
        for index in 0 ..< 10_000 { try vm.post(deviceID: Wire.DeviceID(3), eventID: Wire.EventID(UInt32(index & 63))) }
        try group.trigger(1)
        try connection.sync()
        unsafeBitCast(toggle, to: Toggle.self)(1)
        for index in 0 ..< posted { try vm.post(deviceID: Wire.DeviceID(3), eventID: Wire.EventID(UInt32(index & 63))) }
        for index in 0 ..< single { try group.trigger(UInt32(index & 63)) }
        try connection.flush()
        unsafeBitCast(toggle, to: Toggle.self)(0)
        let hot = unsafeBitCast(read, to: Count.self)()
        print("allocations: \(hot)")
        // The control: a STATS call builds arrays and strings, so the counter must see it.
        unsafeBitCast(toggle, to: Toggle.self)(1)
        _ = try vm.stats()
        unsafeBitCast(toggle, to: Toggle.self)(0)
        print("control: \(unsafeBitCast(read, to: Count.self)() - hot)")
        try connection.sync()
        let stats = try vm.stats()
        #expect(stats.counter("msis_inject_batch_total") == UInt64(10_000 + posted), "every posted MSI arrived")
        #expect(stats.counter("msis_inject_total") == UInt64(1 + single))
    }

    /// malloc, calloc, realloc, posix_memalign and aligned_alloc wrapped to count the calls a thread
    /// makes while it has counting on; calloc serves dlsym's own early calls from a static buffer.
    static let countingShim = """
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

static __thread int counting;
static unsigned long allocations;
static char bootstrap[4096];
static size_t bootstrapUsed;

static void *(*realMalloc)(size_t);
static void *(*realCalloc)(size_t, size_t);
static void *(*realRealloc)(void *, size_t);
static int (*realPosixMemalign)(void **, size_t, size_t);
static void *(*realAlignedAlloc)(size_t, size_t);
static void (*realFree)(void *);

static void resolve(void) {
    static int resolving;
    if (realMalloc || resolving) return;
    resolving = 1;
    realCalloc = dlsym(RTLD_NEXT, "calloc");
    realMalloc = dlsym(RTLD_NEXT, "malloc");
    realRealloc = dlsym(RTLD_NEXT, "realloc");
    realPosixMemalign = dlsym(RTLD_NEXT, "posix_memalign");
    realAlignedAlloc = dlsym(RTLD_NEXT, "aligned_alloc");
    realFree = dlsym(RTLD_NEXT, "free");
    resolving = 0;
}

static void note(void) { if (counting) __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED); }

void *malloc(size_t size) { resolve(); note(); return realMalloc(size); }
void *calloc(size_t count, size_t size) {
    if (!realCalloc) {
        size_t bytes = (count * size + 15) & ~(size_t)15;
        if (bootstrapUsed + bytes > sizeof bootstrap) return NULL;
        void *block = bootstrap + bootstrapUsed;
        bootstrapUsed += bytes;
        memset(block, 0, bytes);
        return block;
    }
    note();
    return realCalloc(count, size);
}
void *realloc(void *pointer, size_t size) { resolve(); note(); return realRealloc(pointer, size); }
int posix_memalign(void **out, size_t alignment, size_t size) { resolve(); note(); return realPosixMemalign(out, alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { resolve(); note(); return realAlignedAlloc(alignment, size); }
void free(void *pointer) {
    if ((char *)pointer >= bootstrap && (char *)pointer < bootstrap + sizeof bootstrap) return;
    resolve();
    realFree(pointer);
}

void itsclient_count_allocations(int on) { counting = on; }
unsigned long itsclient_allocations(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }
"""
}
