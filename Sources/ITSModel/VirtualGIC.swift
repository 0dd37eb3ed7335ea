/// The LPI side of a VM's interrupt controller in one value: an ITS and one redistributor per vCPU,
/// sharing guest memory, single-threaded. Tests, tools and benchmarks drive it the way a guest and
/// its VMM would; the server splits the same pieces between its loop thread and its lanes.
/// - Context: single-threaded: every method runs on the one thread that owns the value.
public struct VirtualGIC<Memory: GuestMemory & AnyObject, Sink: LPIDeliverySink> {
    public var its: ITS
    public var redistributors: LocalRedistributors<Memory, Sink>

    public init(_ configuration: ITS.Configuration, memory: Memory, sink: Sink) {
        its = ITS(configuration)
        redistributors = LocalRedistributors(vcpuCount: configuration.vcpuCount, intidBits: configuration.intidBits,
                                             memory: memory, sink: sink)
    }

    public var memory: Memory { redistributors.memory }
    public var sink: Sink {
        get { redistributors.sink }
        set { redistributors.sink = newValue }
    }

    /// The redistributor of `vcpu`.
    public func redistributor(_ vcpu: VCPUIndex) -> Redistributor { redistributors.redistributors[Int(vcpu.rawValue)] }

    /// A guest write to the ITS frame (see ``ITS/mmioWrite(offset:width:value:deviceID:memory:redistributors:budget:)``).
    @discardableResult
    public mutating func writeITS(_ offset: UInt64, _ value: UInt64, width: MMIOWidth = .doubleword,
                                  deviceID: DeviceID? = nil, budget: Int = ITS.defaultWorkBudget) -> MMIOIgnoredReason?
    {
        let memory = self.memory
        return its.mmioWrite(offset: offset, width: width, value: value, deviceID: deviceID, memory: memory,
                             redistributors: &redistributors, budget: budget)
    }

    public mutating func readITS(_ offset: UInt64, width: MMIOWidth = .doubleword) -> Result<UInt64, MMIOIgnoredReason> {
        its.mmioRead(offset: offset, width: width)
    }

    /// A guest write to `vcpu`'s redistributor. Clearing EnableLPIs also invalidates the ITS's
    /// translations, as KVM does.
    @discardableResult
    public mutating func writeRedistributor(_ vcpu: VCPUIndex, _ offset: UInt64, _ value: UInt64,
                                            width: MMIOWidth = .doubleword) -> MMIOIgnoredReason?
    {
        let index = Int(vcpu.rawValue)
        let wasEnabled = redistributors.redistributors[index].lpisEnabled
        let memory = self.memory
        let result = redistributors.redistributors[index].mmioWrite(offset: offset, width: width, value: value,
                                                                    memory: memory, sink: &redistributors.sink)
        if wasEnabled, !redistributors.redistributors[index].lpisEnabled { its.invalidateTranslations(.all) }
        return result
    }

    public mutating func readRedistributor(_ vcpu: VCPUIndex, _ offset: UInt64,
                                           width: MMIOWidth = .doubleword) -> Result<UInt64, MMIOIgnoredReason>
    {
        redistributors.redistributors[Int(vcpu.rawValue)].mmioRead(offset: offset, width: width)
    }

    /// An MSI from `device` with `event`, as a write to GITS_TRANSLATER would carry.
    @discardableResult
    @inlinable public mutating func inject(_ device: DeviceID, _ event: EventID) -> Result<ITS.Translation, ITS.TranslationError> {
        its.signal(device, event, redistributors: &redistributors)
    }

    /// A batch of MSIs (INJECT_BATCH): every pair translated first (``ITS/translate(_:_:into:)``),
    /// then every LPI made pending (``LocalRedistributors/setPending(_:)``), so that the translation
    /// lookups of the batch overlap instead of waiting on each set-pending. `translations` is scratch
    /// space the caller keeps between batches (no allocation once it has grown); it ends holding the
    /// batch's translations in order.
    /// Returns how many translated; the others were blocked.
    @discardableResult
    @inlinable public mutating func injectBatch(devices: UnsafeBufferPointer<DeviceID>, events: UnsafeBufferPointer<EventID>,
                                     translations: inout [ITS.Translation]) -> Int
    {
        precondition(devices.count == events.count, "one EventID per DeviceID")
        if translations.count < devices.count {
            translations.append(contentsOf: repeatElement(ITS.Translation(intid: .spurious, vcpu: VCPUIndex(0)),
                                                          count: devices.count - translations.count))
        }
        let translated = translations.withUnsafeMutableBufferPointer { buffer in
            let count = its.translate(devices, events, into: buffer)
            redistributors.setPending(UnsafeBufferPointer(rebasing: buffer[..<count]))
            return count
        }
        translations.removeLast(translations.count - translated)
        return translated
    }

    /// The vCPU's CPU interface acknowledging its highest-priority LPI (1023 when none).
    @inlinable public mutating func acknowledge(_ vcpu: VCPUIndex, priorityMask: Priority = .lowest) -> INTID {
        redistributors.redistributors[Int(vcpu.rawValue)].acknowledge(priorityMask: priorityMask)
    }

    /// Runs queued commands and background work until none remains or `rounds` budgets are spent.
    /// Returns whether work remains.
    @discardableResult
    public mutating func runPendingWork(budget: Int = ITS.defaultWorkBudget, rounds: Int = .max) -> Bool {
        let memory = self.memory
        for _ in 0 ..< rounds {
            let queue = its.processCommands(budget: budget, memory: memory, redistributors: &redistributors)
            let background = redistributors.performPendingWork(budget: budget)
            if queue != .moreWork && !background { return false }
        }
        return true
    }
}
