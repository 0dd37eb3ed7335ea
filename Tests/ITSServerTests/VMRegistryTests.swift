import ITSModel
import ITSWire
import Testing
@testable import ITSServer

@Suite struct VMRegistryTests {
    func withRegistry(_ body: (VMRegistry) -> Void) {
        let loop = EventLoop()
        let mailbox = Mailbox<LoopWork>(loop: loop) { _ in }
        let lanes = LaneGroup(count: 2, replies: mailbox)
        body(VMRegistry(lanes: lanes, gracePeriod: 60_000))
        lanes.stop()
        mailbox.close()
    }

    static let config = VMConfig(vcpuCount: 4, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)

    @Test func createAttachAndAccessControl() {
        withRegistry { registry in
            let vm = try! registry.create(Self.config, by: 1).get()
            let other = try! registry.create(Self.config, by: 2).get()
            #expect(vm.key != other.key && !vm.token.matches(other.token), "distinct ids and tokens")
            #expect(vm.its.configuration.vcpuCount == 4)
            #expect(registry.vm(vm.key, for: 2) == .failure(.notAttached), "a connection acts only on its VMs")
            #expect(registry.destroy(vm.key, by: 2) == .failure(.notAttached))
            #expect(registry.attach(vm.key, token: other.token, by: 2) == .failure(.badToken))
            #expect(registry.attach(VMKey(999), token: vm.token, by: 2) == .failure(.noSuchVM))
            #expect(try! registry.attach(vm.key, token: vm.token, by: 2).get() === vm)
            #expect(try! registry.vm(vm.key, for: 2).get() === vm)
            #expect(registry.destroy(vm.key, by: 2) == .success(()))
            #expect(registry.vm(vm.key, for: 1) == .failure(.noSuchVM))
        }
    }

    @Test func configurationsAreValidated() {
        withRegistry { registry in
            for bad in [VMConfig(vcpuCount: 0, deviceIDBits: 16, eventIDBits: 16, intidBits: 16),
                        VMConfig(vcpuCount: 513, deviceIDBits: 16, eventIDBits: 16, intidBits: 16),
                        VMConfig(vcpuCount: 1, deviceIDBits: 33, eventIDBits: 16, intidBits: 16),
                        VMConfig(vcpuCount: 1, deviceIDBits: 16, eventIDBits: 0, intidBits: 16),
                        VMConfig(vcpuCount: 1, deviceIDBits: 16, eventIDBits: 16, intidBits: 13)] {
                #expect(registry.create(bad, by: 1) == .failure(.badConfig))
            }
            registry.maximumVMs = 1
            _ = registry.create(Self.config, by: 1)
            #expect(registry.create(Self.config, by: 1) == .failure(.tooManyVMs))
        }
    }

    // A VM outlives its clients for the grace period, re-attachable by token, then is destroyed.
    @Test func gracePeriod() {
        withRegistry { registry in
            let vm = try! registry.create(Self.config, by: 1).get()
            registry.connectionClosed(1, now: 1_000)
            #expect(vm.orphanedAt == 1_000)
            #expect(registry.expire(now: 60_999).isEmpty)
            _ = registry.attach(vm.key, token: vm.token, by: 7)
            #expect(vm.orphanedAt == nil)
            registry.connectionClosed(7, now: 100_000)
            #expect(registry.expire(now: 160_000) == [vm.key])
            #expect(registry.vms.isEmpty)
        }
    }
}

extension Result where Success == ServerVM, Failure == VMRegistry.Failure {
    static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case let (.success(a), .success(b)): a === b
        case let (.failure(a), .failure(b)): a == b
        default: false
        }
    }
}

extension Result where Success == Void, Failure == VMRegistry.Failure {
    static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.success, .success): true
        case let (.failure(a), .failure(b)): a == b
        default: false
        }
    }
}
