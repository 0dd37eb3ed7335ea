import ITSWire

/// What one connection holds between requests: the DUMP cursors it was handed, and the snapshot
/// images it is reading (SNAPSHOT_VM) or sending (RESTORE_VM). Dropped when the connection closes.
/// - Context: the loop thread.
final class ConnectionTransfers {
    /// Where a DUMP page continues.
    struct DumpPosition: Hashable {
        var vm: VMKey
        var section: DumpSection
        /// The next key of the section: DeviceID, event key, ICID, or vCPU << 32 | INTID.
        var key: UInt64
    }

    /// A captured image being read in chunks.
    struct Reading {
        var image: [UInt8]
        var offset: Int
    }

    /// An image being received in chunks.
    struct Assembly {
        var image: [UInt8]
        var totalLength: Int
    }

    private var cursors: [UInt64: DumpPosition] = [:]
    /// Cursors in the order they were handed out; the oldest are forgotten beyond the limit.
    private var cursorOrder: [UInt64] = []
    private var nextCursor: UInt64 = 1
    /// DUMP cursors a connection may hold; an older one is then BAD_CURSOR.
    static let maximumCursors = 64

    var readings: [VMKey: Reading] = [:]
    var assemblies: [VMKey: Assembly] = [:]

    /// A cursor for `position`.
    func issue(_ position: DumpPosition) -> UInt64 {
        let cursor = nextCursor
        nextCursor += 1
        cursors[cursor] = position
        cursorOrder.append(cursor)
        if cursorOrder.count > Self.maximumCursors { cursors[cursorOrder.removeFirst()] = nil }
        return cursor
    }

    /// The position a cursor stands for, if this connection was handed it.
    func position(of cursor: UInt64) -> DumpPosition? { cursors[cursor] }

    /// Bytes held for images.
    var bytesHeld: Int {
        readings.values.reduce(0) { $0 + $1.image.count } + assemblies.values.reduce(0) { $0 + $1.image.count }
    }
}
