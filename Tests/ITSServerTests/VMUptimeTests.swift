import Glibc
import ITSWire
import Testing

/// STATS `vm_uptime_seconds` counts from CREATE_VM and starts again from zero when RESTORE_VM
/// loads a snapshot into the VM (docs/OPERATIONS.md; ServerVM.startedAt).
@Suite struct VMUptimeTests {
    /// Two VMs live 2.2 s; the source's image is then restored into the other, whose uptime goes
    /// back below 2 s (0 unless the machine stalls) while the source's keeps counting.
    @Test func restoreStartsTheUptimeAgain() throws {
        let (itsd, path) = try #require(startItsd("vm-uptime-restore"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let source = try #require(ClientVM.hello(path))
        let target = try #require(ClientVM.hello(path))
        #expect(source.createVM() && target.createVM())
        let created = target.uptime()
        usleep(2_200_000)
        let lived = target.uptime()
        #expect(created >= 0 && created <= 1, "just created: \(created) s")
        #expect(lived >= 2, "2.2 s after CREATE_VM: \(lived) s")

        let image = try #require(source.snapshotImage())
        let piece = SnapshotChunk(vm: target.vm, offset: 0, totalLength: UInt64(image.count), isLast: true, bytes: image[...])
        #expect(target.call(.restoreVM(piece))?.status == .ok)
        let restored = target.uptime()
        let untouched = source.uptime()
        #expect(restored >= 0 && restored < 2 && restored < lived, "just restored after \(lived) s: \(restored) s")
        #expect(untouched >= 2, "the snapshot's source keeps its uptime: \(untouched) s")
    }
}

extension ClientVM {
    /// STATS `vm_uptime_seconds` of this client's VM, or -1 when the report lacks it.
    func uptime() -> Int64 {
        if case .gauge(let seconds)? = statistics(vm)?["vm_uptime_seconds"] { seconds } else { -1 }
    }

    /// This client's VM's SNAPSHOT_VM image, read in chunks of at most 64 KiB; nil on a refusal.
    func snapshotImage() -> [UInt8]? {
        var image: [UInt8] = []
        while case .snapshotReply(let chunk)? = call(.snapshotVM(vm, offset: UInt64(image.count), maxBytes: 1 << 16))?.message,
              chunk.offset == UInt64(image.count) {
            image += chunk.bytes
            if chunk.isLast { return image }
        }
        return nil
    }
}
