// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "itsd",
    products: [
        .library(name: "ITSModel", targets: ["ITSModel"]),
        .executable(name: "its-bench", targets: ["its-bench"]),
    ],
    targets: [
        // Pure architectural state of the GICv3 ITS and LPIs: standard library only.
        .target(name: "ITSModel"),
        // libuv 1.44 from Debian's libuv1-dev.
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .executableTarget(name: "its-bench", dependencies: ["ITSModel"]),
        .testTarget(name: "ITSModelTests", dependencies: ["ITSModel"]),
        .testTarget(name: "CLibUVTests", dependencies: ["CLibUV"]),
    ],
    swiftLanguageModes: [.v6]
)
