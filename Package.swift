// swift-tools-version:6.0
import PackageDescription

/// The release build of the hot path (the MSI path on the loop and the lanes) does without run-time
/// exclusivity checks: callgrind counted them at about a third of itsd's instructions per MSI
/// (`swift_beginAccess` and its thread-local lookups, 500 to 4,000 per MSI; BENCHMARKS.md, "Where
/// the time goes"). Every state they would check is confined to one thread (the loop or one lane),
/// the compiler still checks accesses statically, and the debug build, `swift test` and
/// `make test-race` keep the dynamic checks.
let releaseWithoutDynamicExclusivity: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "itsd",
    products: [
        .executable(name: "itsd", targets: ["itsd"]),
        .library(name: "ITSModel", targets: ["ITSModel"]),
        .library(name: "ITSWire", targets: ["ITSWire"]),
        .library(name: "ITSClient", targets: ["ITSClient"]),
        .executable(name: "itsctl", targets: ["itsctl"]),
        .executable(name: "its-bench", targets: ["its-bench"]),
        .executable(name: "its-load", targets: ["its-load"]),
        .executable(name: "its-vhost-demo", targets: ["its-vhost-demo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // Pure architectural state of the GICv3 ITS and LPIs: standard library only.
        .target(name: "ITSModel", swiftSettings: releaseWithoutDynamicExclusivity),
        // Frames <-> messages of the itsd wire protocol (Protocol/PROTOCOL.md): standard library only.
        .target(name: "ITSWire"),
        // libuv 1.44 from Debian's libuv1-dev.
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // eventfd, memfd, file seals and CMSG helpers that Swift's Glibc module does not expose.
        .target(name: "CITSSupport"),
        // The libuv shell: listeners, connections, guest memory mappings, eventfds, lanes.
        .target(name: "ITSServer", dependencies: [
            "ITSModel", "ITSWire", "CLibUV", "CITSSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], swiftSettings: releaseWithoutDynamicExclusivity),
        .executableTarget(name: "itsd", dependencies: [
            "ITSServer", "CLibUV", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"), .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        // The client library over ITSWire: blocking Unix-socket I/O with descriptor passing.
        .target(name: "ITSClient", dependencies: ["ITSWire", "CITSSupport"]),
        .executableTarget(name: "itsctl", dependencies: [
            "ITSClient", "ITSWire", "ITSModel", "ToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "its-bench", dependencies: ["ITSModel", "ITSWire"]),
        // What its-load and its-vhost-demo share: their error, the clock, the child processes they
        // start, the itsd beside them, the JSON of their reports.
        .target(name: "ToolSupport", dependencies: ["CITSSupport"]),
        // epoll for its-load (Swift's Glibc module has no sys/epoll.h).
        .target(name: "CITSLoad"),
        .executableTarget(name: "its-load", dependencies: [
            "ITSModel", "ITSWire", "CITSSupport", "CITSLoad", "ToolSupport",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Memory fences for the virtqueue the demo shares with a vhost-user back-end.
        .target(name: "CVhostDemo"),
        // A vhost-user front-end whose virtio-blk completions reach the guest as LPIs through itsd.
        .executableTarget(name: "its-vhost-demo", dependencies: [
            "ITSClient", "ITSWire", "CITSSupport", "CVhostDemo", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "ITSModelTests", dependencies: ["ITSModel"]),
        .testTarget(name: "CLibUVTests", dependencies: ["CLibUV"]),
        .testTarget(name: "ITSWireTests", dependencies: ["ITSWire"]),
        .testTarget(name: "ITSClientTests", dependencies: ["ITSClient", "ITSWire", "ITSModel", "CITSSupport"]),
        .testTarget(name: "ToolSupportTests", dependencies: ["ToolSupport"]),
        .testTarget(name: "ITSServerTests", dependencies: ["ITSServer", "ITSModel", "ITSWire", "CITSSupport"]),
        // Runs its-vhost-demo (and itsd) from the build directory against qemu-storage-daemon.
        .testTarget(name: "VhostDemoTests"),
    ],
    swiftLanguageModes: [.v6]
)
