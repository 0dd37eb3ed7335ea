import ArgumentParser
import Glibc
import ITSClient
import ITSModel
import ITSWire

/// `itsctl snapshot VM FILE`: the VM's ITS and LPI state to a file.
struct Snapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Save a VM's whole ITS and LPI state to FILE (SNAPSHOT_VM).",
        discussion: """
        Attaches to the VM (with the operator token unless --token is given), captures its state atomically \
        and writes the image (docs/SEMANTICS.md, "Snapshot image") to FILE, mode 0600, through a temporary file \
        renamed into place. Guest RAM is not part of the image. itsctl restore loads it.
        """)

    @OptionGroup var options: SocketOptions
    @OptionGroup var token: TokenOption

    @Argument(help: "The VM id.")
    var vm: String

    @Argument(help: "The file to write.")
    var file: String

    func validate() throws { _ = try parseVM(vm) }

    func run() throws {
        let id = try parseVM(vm)
        let connection = try options.connect(capabilities: [.snapshot])
        let image = try options.attempt(vm: id) { () throws(ITSClientError) in
            try connection.attachVM(id, token: token.value).snapshot()
        }
        let temporary = file + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            Terminal.printError("cannot create \(temporary): \(ITSClientError.text(errno))")
            throw ExitCode(Exit.cannotCreate)
        }
        var written = 0
        let failure: Int32? = image.withUnsafeBytes { bytes in
            while written < bytes.count {
                let count = write(fd, bytes.baseAddress! + written, bytes.count - written)
                if count < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                written += count
            }
            return fsync(fd) == 0 ? nil : errno
        }
        close(fd)
        if let failure {
            unlink(temporary)
            Terminal.printError("cannot write \(file): \(ITSClientError.text(failure))")
            throw ExitCode(Exit.ioError)
        }
        guard rename(temporary, file) == 0 else {
            let code = errno
            unlink(temporary)
            Terminal.printError("cannot create \(file): \(ITSClientError.text(code))")
            throw ExitCode(Exit.cannotCreate)
        }
        Terminal.write("VM \(id): \(image.count) bytes to \(file)\n")
    }
}

/// `itsctl restore FILE`: an image back into a VM.
struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load a snapshot image from FILE into a new VM, or into --vm ID (RESTORE_VM).",
        discussion: """
        Checks the image first (magic, version, length, checksum, structure) and takes the VM configuration \
        from it. Without --vm, creates a VM with that configuration, restores the image into it and prints \
        its id and token: the VM is orphaned when itsctl exits, and a VMM attaches it with the token within \
        itsd's grace period (it is destroyed otherwise). With --vm ID, restores into that VM (created with the \
        same configuration, its guest not yet run), attaching with --token or the operator token.
        """)

    @OptionGroup var options: SocketOptions
    @OptionGroup var token: TokenOption

    @Argument(help: "The image file (from itsctl snapshot).")
    var file: String

    @Option(name: .long, help: "Restore into this existing VM instead of a new one.")
    var vm: String?

    func validate() throws { if let vm { _ = try parseVM(vm) } }

    func run() throws {
        let target = try vm.map(parseVM)
        guard let image = Self.read(file) else {
            Terminal.printError("cannot read \(file): \(ITSClientError.text(errno))")
            throw ExitCode(Exit.noInput)
        }
        let snapshot: VGICSnapshot
        do {
            snapshot = try VGICSnapshot(image: image)
        } catch {
            Terminal.printError("\(file) is not a snapshot image itsd can load: \(error)")
            throw ExitCode(Exit.dataError)
        }
        let its = snapshot.its.configuration
        let config = VMConfig(vcpuCount: UInt16(clamping: snapshot.redistributors.count), deviceIDBits: UInt8(clamping: its.deviceIDBits),
                              eventIDBits: UInt8(clamping: its.eventIDBits), intidBits: UInt8(clamping: its.intidBits))
        let connection = try options.connect(capabilities: [.snapshot])
        let restored = try options.attempt(vm: target) { () throws(ITSClientError) -> ITSVM in
            let handle: ITSVM
            if let target {
                handle = try connection.attachVM(target, token: token.value)
            } else {
                handle = try connection.createVM(config)
            }
            do throws(ITSClientError) {
                try handle.restore(image)
            } catch {
                if target == nil { try? handle.destroy() }
                throw error
            }
            return handle
        }
        if target == nil {
            Terminal.write("restored \(file) into new VM \(restored.id) (\(config.vcpuCount) vCPUs); token \(restored.token.hex)\n"
                + "attach it within itsd's grace period, or it is destroyed\n")
        } else {
            Terminal.write("restored \(file) into VM \(restored.id)\n")
        }
    }

    /// The whole file, or nil with errno set.
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = Glibc.read(fd, &chunk, chunk.count)
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { return bytes }
            bytes += chunk[0 ..< count]
        }
    }
}
