import CITSSupport
import CLibUV
import Glibc
import ITSModel

/// An eventfd bound to (DeviceID, EventID): each wakeup reads the counter and is one MSI, the way
/// KVM_IRQFD with an MSI route works. A masked binding latches the signal instead, as an MSI-X
/// vector's pending bit does, and unmasking delivers the latched one.
/// - Context: the loop thread.
final class IRQFDBinding {
    let fd: Int32
    let device: DeviceID
    let event: EventID
    var masked: Bool
    private(set) var latched = false
    private var poll: PollHandle?
    /// Called with each signal that should become an MSI.
    private let signal: (DeviceID, EventID) -> Void

    init(fd: Int32, device: DeviceID, event: EventID, masked: Bool, loop: EventLoop,
         signal: @escaping (DeviceID, EventID) -> Void) throws(UVError)
    {
        self.fd = fd
        self.device = device
        self.event = event
        self.masked = masked
        self.signal = signal
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        poll = try PollHandle(loop: loop, fd: fd) { [unowned self] status, _ in
            if status >= 0 { self.readable() }
        }
        poll?.watch(Int32(UV_READABLE.rawValue))
    }

    private func readable() {
        var counter: UInt64 = 0
        // Readiness may be spurious; a read of 0 signals (EAGAIN) is no MSI.
        guard read(fd, &counter, 8) == 8, counter > 0 else { return }
        if masked {
            latched = true
        } else {
            signal(device, event)
        }
    }

    func setMasked(_ masked: Bool) {
        self.masked = masked
        if !masked, latched {
            latched = false
            signal(device, event)
        }
    }

    /// Stops polling and closes the server's copy of the eventfd.
    func close() {
        guard let poll else { return }
        poll.close()
        self.poll = nil
        Glibc.close(fd)
    }

    deinit { close() }

    /// Whether `fd` is an eventfd (its /proc/self/fd link names the eventfd inode).
    static func isEventFD(_ fd: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 64)
        let length = buffer.withUnsafeMutableBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { readlink("/proc/self/fd/\(fd)", $0.baseAddress!, bytes.count - 1) }
        }
        guard length > 0 else { return false }
        return String(decoding: buffer[0 ..< length], as: UTF8.self) == "anon_inode:[eventfd]"
    }
}
