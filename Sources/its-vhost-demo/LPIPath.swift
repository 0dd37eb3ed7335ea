import Glibc
import ToolSupport

/// Interrupts through itsd: the back-end's call eventfd is bound to (DeviceID, EventID), itsd makes
/// the LPI pending on the vCPU its collection targets and writes that vCPU's notify eventfd; the
/// "vCPU" then takes LPIs with ACK until none is left, as it would read ICC_IAR1_EL1 until 1023.
final class LPIPath: InterruptPath {
    private var link: ITSLink
    private var notifiers: [EventFD]
    /// The LPI the device's event is mapped to; any other INTID is an error.
    let intid: UInt32
    /// LPIs acknowledged, per vCPU.
    private(set) var acknowledged: [Int]

    /// Creates one notify eventfd per vCPU and hands each to itsd (SET_VCPU_NOTIFY).
    init(link: ITSLink, vcpus: Int, intid: UInt32) throws(ToolError) {
        self.link = link
        self.intid = intid
        notifiers = try Self.notifiers(link: link, vcpus: vcpus)
        acknowledged = Array(repeating: 0, count: vcpus)
    }

    /// Takes LPIs from another VM from now on (a migration's destination), with new notify eventfds.
    func switchTo(_ link: ITSLink) throws(ToolError) {
        notifiers = try Self.notifiers(link: link, vcpus: notifiers.count)
        self.link = link
    }

    private static func notifiers(link: ITSLink, vcpus: Int) throws(ToolError) -> [EventFD] {
        var notifiers: [EventFD] = []
        for vcpu in 0 ..< vcpus {
            let notifier = try EventFD()
            try link.setNotifier(vcpu: UInt16(vcpu), eventfd: notifier.fd)
            notifiers.append(notifier)
        }
        return notifiers
    }

    var pollFDs: [Int32] { notifiers.map(\.fd) }

    var totalAcknowledged: Int { acknowledged.reduce(0, +) }

    func acknowledge(readable: [Int], handler: () throws(ToolError) -> Void) throws(ToolError) -> Int {
        var taken = 0
        for vcpu in readable {
            _ = try notifiers[vcpu].drain()
            while let lpi = try link.acknowledge(vcpu: UInt16(vcpu)) {
                guard lpi.intid.rawValue == intid else {
                    throw ToolError("vCPU \(vcpu) acknowledged LPI \(lpi.intid), but only \(intid) is mapped")
                }
                acknowledged[vcpu] += 1
                taken += 1
                try handler()
            }
        }
        return taken
    }
}

/// An itsd the demo started itself, from the same build directory, on a temporary socket.
final class OwnItsd {
    let socketPath: String
    private let process: ChildProcess

    init(executable: String?, scratch: ScratchDirectory) throws(ToolError) {
        socketPath = scratch.file("itsd.sock")
        let binary: String
        if let executable { binary = executable } else { binary = try besideExecutable("itsd") }
        process = try ChildProcess([binary, "--socket", socketPath, "--lanes", "2", "--log-level", "warning"],
                                   logPath: scratch.file("itsd.log"))
        // The socket file appears at bind(), before listen(): wait for the line itsd prints once it listens.
        try process.waitUntil("listening on \(socketPath)", timeoutMilliseconds: 10_000) { [process] in
            process.log.contains("itsd listening on \(socketPath)")
        }
    }

    /// SIGTERM; itsd must exit 0.
    func stop() throws(ToolError) {
        let code = try process.terminate()
        guard code == 0 else { throw ToolError("itsd exited with \(code) after SIGTERM; its log:\n\(process.log)") }
    }
}
