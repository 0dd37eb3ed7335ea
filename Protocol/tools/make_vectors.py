#!/usr/bin/env python3
"""Writes Protocol/vectors/*.hex: the golden frames of PROTOCOL.md, one frame a file, annotated.

This is an implementation of the layouts of its own (it shares no code with ITSWire or its_wire.h),
so the vectors check both. Run it from anywhere; it rewrites every file it owns and removes none.

File format: hexadecimal byte pairs; whitespace is ignored; '#' starts a comment to the end of the line.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors")

OP = {
    "HELLO": 0x0001, "PING": 0x0002, "AUTHENTICATE": 0x0003, "CREATE_VM": 0x0010, "ATTACH_VM": 0x0011, "DESTROY_VM": 0x0012,
    "LIST_VMS": 0x0013, "ADD_MEM_REGION": 0x0020, "REMOVE_MEM_REGION": 0x0021, "MMIO_READ": 0x0030,
    "MMIO_WRITE": 0x0031, "INJECT": 0x0040, "INJECT_BATCH": 0x0041, "BIND_IRQFD": 0x0050,
    "UNBIND_IRQFD": 0x0051, "MASK": 0x0052, "UNMASK": 0x0053, "SET_VCPU_NOTIFY": 0x0060,
    "CLEAR_VCPU_NOTIFY": 0x0061, "SUBSCRIBE": 0x0062, "HPPI": 0x0070, "ACK": 0x0071, "PENDING": 0x0072,
    "WAIT_ACK": 0x0073, "WAKE": 0x0074, "SET_ACK_SLOT": 0x0075, "CLEAR_ACK_SLOT": 0x0076,
    "STATS": 0x0080, "DUMP": 0x0081, "SNAPSHOT_VM": 0x0090, "RESTORE_VM": 0x0091,
    "EVENT_VCPU_NOTIFY": 0x0100, "EVENT_VM_GONE": 0x0101,
}
FDS = {"ADD_MEM_REGION": 1, "BIND_IRQFD": 1, "SET_VCPU_NOTIFY": 1, "SET_ACK_SLOT": 1}
REPLY, NO_REPLY, ERROR, EVENT = 1, 2, 4, 8
STATUS = {"OK": 0, "VERSION_MISMATCH": 32, "NO_SUCH_VM": 64, "TRANSLATION_BLOCKED": 112}


def u8(v, c): return (struct.pack("<B", v), c)
def u16(v, c): return (struct.pack("<H", v), c)
def u32(v, c): return (struct.pack("<I", v), c)
def u64(v, c): return (struct.pack("<Q", v), c)
def raw(b, c): return (bytes(b), c)
def zero(n, c="reserved"): return (bytes(n), c)
def pad8(n): return [zero((8 - n % 8) % 8, "padding to 8")] if n % 8 else []


def text(s, c):
    b = s.encode()
    return [raw(b, c + " " + repr(s))] + pad8(len(b))


def frame(path, title, opcode, fields, msg_id, flags=0, status=0, note=None):
    payload = b"".join(b for b, _ in fields)
    length = 16 + len(payload)
    flag_names = [n for n, bit in (("REPLY", REPLY), ("NO_REPLY", NO_REPLY), ("ERROR", ERROR), ("EVENT", EVENT))
                  if flags & bit] or ["none"]
    status_name = {v: k for k, v in STATUS.items()}[status]
    header = [u32(length, f"length {length}"), u16(OP[opcode], f"opcode {opcode}"),
              u16(flags, "flags " + "|".join(flag_names)), u32(msg_id, f"message id {msg_id}"),
              u32(status, f"status {status_name}")]
    lines = [f"# {title}"]
    if note:
        lines += [f"# {line}" for line in note.splitlines()]
    fds = FDS.get(opcode, 0) if not flags & (REPLY | EVENT) else 0
    lines.append(f"# file descriptors with this frame: {fds}")
    lines.append("# header")
    for b, c in header:
        lines.append(f"{b.hex(' '):<24}# {c}")
    if fields:
        lines.append("# payload")
    for b, c in fields:
        if not b:
            continue
        for i in range(0, len(b), 8):
            lines.append(f"{b[i:i+8].hex(' '):<24}# {c}" if i == 0 else b[i:i+8].hex(" "))
    with open(os.path.join(OUT, path), "w") as f:
        f.write("\n".join(lines) + "\n")


def pair(n, name, opcode, req, rep, msg_id, req_flags=0, note=None):
    frame(f"{n:02d}-{name}.request.hex", f"{opcode} request", opcode, req, msg_id, req_flags, note=note)
    if rep is not None:
        frame(f"{n:02d}-{name}.reply.hex", f"{opcode} reply", opcode, rep, msg_id, REPLY)


def hello(caps, frame_len, batch, inflight, fds):
    return [u16(1, "major 1"), u16(0, "minor 0"), zero(4), u64(caps, f"capabilities 0x{caps:x}"),
            u32(frame_len, f"max_frame_length {frame_len}"), u32(batch, f"max_batch_entries {batch}"),
            u32(inflight, f"max_in_flight {inflight}"), u16(fds, f"max_fds_per_message {fds}"), zero(2)]


TOKEN = [u64(0x1122334455667788, "token low 0x1122334455667788"),
         u64(0x99AABBCCDDEEFF00, "token high 0x99aabbccddeeff00")]
KEY = [u32(1, "vm 1"), u32(0x100, "device_id 0x100"), u32(2, "event_id 2")]


def lpi(intid, prio, en, more=False):
    flags = (1 if en else 0) | (2 if more else 0)
    names = [n for n, on in (("enabled", en), ("more", more)) if on]
    return [u32(intid, f"intid {intid}"), u8(prio, f"priority 0x{prio:02x}"),
            u8(flags, "flags " + ("|".join(names) or "0")), zero(2)]


def chunk(vm, data, offset, total, last):
    return [u32(vm, f"vm {vm}"), u32(len(data), f"chunk_length {len(data)}"), u64(offset, f"offset {offset}"),
            u64(total, f"total_length {total}"), u32(1 if last else 0, "flags LAST" if last else "flags 0"),
            zero(4), raw(data, "snapshot bytes")] + pad8(len(data))


def main():
    os.makedirs(OUT, exist_ok=True)
    pair(1, "hello", "HELLO", hello(7, 0, 1024, 0, 0), hello(7, 65536, 1024, 64, 1), 1,
         note="The client asks for every capability and 1024-entry batches; 0 takes the default.")
    pair(2, "ping", "PING", [u64(0x0123456789ABCDEF, "nonce")], [u64(0x0123456789ABCDEF, "nonce")], 2)
    pair(3, "create_vm", "CREATE_VM",
         [u16(4, "vcpu_count 4"), u8(16, "device_id_bits 16"), u8(16, "event_id_bits 16"),
          u8(16, "intid_bits 16"), zero(3)],
         [u32(1, "vm 1"), zero(4)] + TOKEN, 3)
    pair(4, "attach_vm", "ATTACH_VM", [u32(1, "vm 1"), zero(4)] + TOKEN,
         [u32(1, "vm 1"), u16(4, "vcpu_count 4"), u8(16, "device_id_bits 16"), u8(16, "event_id_bits 16"),
          u8(16, "intid_bits 16"), zero(7)], 4)
    pair(5, "destroy_vm", "DESTROY_VM", [u32(1, "vm 1"), zero(4)], [], 5)
    pair(6, "list_vms", "LIST_VMS", [],
         [u32(2, "count 2"), zero(4),
          u32(1, "vm 1"), u16(4, "vcpu_count 4"), u8(16, "device_id_bits 16"), u8(16, "event_id_bits 16"),
          u8(16, "intid_bits 16"), u8(0, "state ATTACHED"), u16(1, "connections 1"), zero(4),
          u32(2, "vm 2"), u16(2, "vcpu_count 2"), u8(20, "device_id_bits 20"), u8(12, "event_id_bits 12"),
          u8(24, "intid_bits 24"), u8(1, "state ORPHANED"), u16(0, "connections 0"), zero(4)], 6)
    pair(7, "add_mem_region", "ADD_MEM_REGION",
         [u32(1, "vm 1"), zero(4), u64(0x40000000, "guest_address 0x40000000"),
          u64(0x10000000, "size 256 MiB"), u64(0, "file_offset 0")], [], 7,
         note="Sent with one memfd (SCM_RIGHTS).")
    pair(8, "remove_mem_region", "REMOVE_MEM_REGION",
         [u32(1, "vm 1"), zero(4), u64(0x40000000, "guest_address 0x40000000"),
          u64(0x10000000, "size 256 MiB")], [], 8)
    pair(9, "mmio_read", "MMIO_READ",
         [u32(1, "vm 1"), u8(0, "frame_kind ITS"), u8(8, "width 8"), u16(0, "frame_index 0"),
          u64(0x8, "offset 0x0008 GITS_TYPER")],
         [u64(0x1F701, "value 0x1f701")], 9)
    pair(10, "mmio_write", "MMIO_WRITE",
         [u32(1, "vm 1"), u8(0, "frame_kind ITS"), u8(4, "width 4"), u16(0, "frame_index 0"),
          u64(0x10040, "offset 0x10040 GITS_TRANSLATER"), u64(5, "value 5 (the EventID)"),
          u32(0x100, "device_id 0x100"), zero(4)], [], 10)
    pair(11, "inject", "INJECT", [u32(1, "vm 1"), u32(0x100, "device_id 0x100"), u32(5, "event_id 5"), zero(4)],
         [], 11)
    pair(12, "inject_batch", "INJECT_BATCH",
         [u32(1, "vm 1"), u32(3, "count 3"),
          u32(0x100, "device_id 0x100"), u32(0, "event_id 0"),
          u32(0x100, "device_id 0x100"), u32(1, "event_id 1"),
          u32(0x208, "device_id 0x208"), u32(7, "event_id 7")],
         [u32(2, "injected 2"), u32(1, "blocked 1")], 12)
    pair(13, "bind_irqfd", "BIND_IRQFD", KEY + [u32(0, "flags 0")], [], 13, note="Sent with one eventfd.")
    pair(14, "unbind_irqfd", "UNBIND_IRQFD", KEY + [zero(4)], [], 14)
    pair(15, "mask", "MASK", KEY + [zero(4)], [], 15)
    pair(16, "unmask", "UNMASK", KEY + [zero(4)], [], 16)
    pair(17, "set_vcpu_notify", "SET_VCPU_NOTIFY", [u32(1, "vm 1"), u16(2, "vcpu 2"), zero(2)], [], 17,
         note="Sent with one eventfd.")
    pair(18, "clear_vcpu_notify", "CLEAR_VCPU_NOTIFY", [u32(1, "vm 1"), u16(2, "vcpu 2"), zero(2)], [], 18)
    pair(19, "subscribe", "SUBSCRIBE", [u32(1, "vm 1"), u32(3, "events VCPU_NOTIFY|VM_GONE")], [], 19)
    pair(20, "hppi", "HPPI", [u32(1, "vm 1"), u16(0, "vcpu 0"), zero(2)], lpi(8192, 0xA0, True), 20)
    pair(21, "ack", "ACK", [u32(1, "vm 1"), u16(0, "vcpu 0"), u8(0xF0, "priority_mask 0xf0"), zero(1)],
         lpi(8192, 0xA0, True), 21)
    pair(22, "pending", "PENDING",
         [u32(1, "vm 1"), u16(0, "vcpu 0"), zero(2), u32(8192, "cursor 8192"), u32(16, "max_entries 16")],
         [u32(2, "count 2"), u32(0, "next_cursor 0 (done)")] + lpi(8193, 0xA0, True) + lpi(8200, 0x80, False), 22)
    stats_values = [
        u8(1, "kind COUNTER"), zero(3), u32(1, "slot_count 1"), u64(1234, "value 1234"),
        u8(2, "kind GAUGE"), zero(3), u32(1, "slot_count 1"), u64(2, "value 2"),
        u8(3, "kind HISTOGRAM"), zero(3), u32(6, "slot_count 6"), u64(10, "count 10"), u64(42000, "sum 42000"),
        u64(3, "bucket <= 1000: 3"), u64(5, "bucket <= 10000: 5"), u64(2, "bucket <= 100000: 2"),
        u64(0, "bucket above: 0")]

    def desc(kind, kname, unit, uname, name, help_text, bounds):
        fields = [u8(kind, f"kind {kname}"), u8(unit, f"unit {uname}"), u16(len(bounds), f"bucket_count {len(bounds)}"),
                  u16(len(name), f"name_length {len(name)}"), u16(len(help_text), f"help_length {len(help_text)}"),
                  raw(name.encode(), f"name {name!r}"), raw(help_text.encode(), f"help {help_text!r}")]
        fields += pad8(len(name) + len(help_text))
        fields += [u64(b, f"bound {b}") for b in bounds]
        return fields

    schema = (desc(1, "COUNTER", 0, "NONE", "lpis_injected_total", "LPIs made pending", [])
              + desc(2, "GAUGE", 0, "NONE", "vcpus_pending", "vCPUs with a deliverable LPI", [])
              + desc(3, "HISTOGRAM", 2, "NANOSECONDS", "inject_latency_ns", "Decode to pending",
                     [1000, 10000, 100000]))
    pair(23, "stats", "STATS", [u32(1, "vm 1"), u32(1, "flags INCLUDE_SCHEMA")],
         [u64(0x5EED, "schema_id 0x5eed"), u32(3, "stat_count 3"), u32(1, "flags SCHEMA_INCLUDED")]
         + schema + stats_values, 23)
    pair(24, "stats_values", "STATS", [u32(0xFFFFFFFF, "vm ALL"), u32(0, "flags 0")],
         [u64(0x5EED, "schema_id 0x5eed"), u32(3, "stat_count 3"), u32(0, "flags 0")] + stats_values, 24)

    def dump_req(n, msg_id, section, sname, cursor, max_entries):
        return [u32(1, "vm 1"), u16(section, f"section {sname}"), zero(2), u64(cursor, f"cursor {cursor}"),
                u32(max_entries, f"max_entries {max_entries}"), zero(4)]

    def dump_rep(section, sname, size, count, nxt, entries):
        nname = "END" if nxt == 0xFFFFFFFFFFFFFFFF else str(nxt)
        return [u32(1, "vm 1"), u16(section, f"section {sname}"), u16(size, f"entry_size {size}"),
                u32(count, f"count {count}"), zero(4), u64(nxt, f"next_cursor {nname}")] + entries

    pair(25, "dump_devices", "DUMP", dump_req(25, 25, 1, "DEVICES", 0, 64),
         dump_rep(1, "DEVICES", 16, 1, 0xFFFFFFFFFFFFFFFF,
                  [u32(0x100, "device_id 0x100"), u8(5, "event_id_bits 5"), zero(3),
                   u64(0x48000000, "itt_address 0x48000000")]), 25)
    pair(26, "dump_itt", "DUMP", dump_req(26, 26, 2, "ITT", 0, 2),
         dump_rep(2, "ITT", 16, 2, 2,
                  [u32(0x100, "device_id 0x100"), u32(0, "event_id 0"), u32(8192, "intid 8192"),
                   u16(0, "icid 0"), zero(2),
                   u32(0x100, "device_id 0x100"), u32(1, "event_id 1"), u32(8193, "intid 8193"),
                   u16(1, "icid 1"), zero(2)]), 26)
    pair(27, "dump_collections", "DUMP", dump_req(27, 27, 3, "COLLECTIONS", 0, 64),
         dump_rep(3, "COLLECTIONS", 8, 2, 0xFFFFFFFFFFFFFFFF,
                  [u16(0, "icid 0"), u16(0, "vcpu 0"), zero(4), u16(1, "icid 1"), u16(3, "vcpu 3"), zero(4)]), 27)
    pair(28, "dump_lpis", "DUMP", dump_req(28, 28, 4, "LPIS", 8192, 64),
         dump_rep(4, "LPIS", 8, 2, 0xFFFFFFFFFFFFFFFF,
                  [u32(8192, "intid 8192"), u8(0xA0, "priority 0xa0"), u8(3, "flags ENABLED|PENDING"),
                   u16(0, "vcpu 0"),
                   u32(8193, "intid 8193"), u8(0x80, "priority 0x80"), u8(1, "flags ENABLED"),
                   u16(1, "vcpu 1")]), 28)
    image = b"ITSSNAP\x01\x00\x00\x00\x2a"
    pair(29, "snapshot_vm", "SNAPSHOT_VM",
         [u32(1, "vm 1"), u32(4096, "max_bytes 4096"), u64(0, "offset 0")],
         chunk(1, image, 0, 12, True), 29)
    pair(30, "restore_vm", "RESTORE_VM", chunk(2, image, 0, 12, True), [], 30)
    frame("31-event_vcpu_notify.event.hex", "EVENT_VCPU_NOTIFY event", "EVENT_VCPU_NOTIFY",
          [u32(1, "vm 1"), u16(3, "vcpu 3"), zero(2)], 1, EVENT)
    frame("32-event_vm_gone.event.hex", "EVENT_VM_GONE event", "EVENT_VM_GONE",
          [u32(2, "vm 2"), u32(1, "reason GRACE_EXPIRED")], 2, EVENT)
    frame("33-error_no_such_vm.request.hex", "DESTROY_VM request for a VM that does not exist",
          "DESTROY_VM", [u32(7, "vm 7"), zero(4)], 33)
    frame("33-error_no_such_vm.reply.hex", "Error reply to DESTROY_VM: NO_SUCH_VM", "DESTROY_VM",
          [u32(7, "detail: vm 7"), u16(7, "text_length 7"), zero(2)] + text("no VM 7", "text"), 33,
          REPLY | ERROR, STATUS["NO_SUCH_VM"])
    frame("34-error_translation_blocked.request.hex", "INJECT with NO_REPLY to an unmapped event",
          "INJECT", [u32(1, "vm 1"), u32(0x300, "device_id 0x300"), u32(9, "event_id 9"), zero(4)], 34, NO_REPLY,
          note="Answered only because HELLO agreed ERROR_REPORTS.")
    frame("34-error_translation_blocked.reply.hex", "Error reply to INJECT: TRANSLATION_BLOCKED", "INJECT",
          [u32(0, "detail 0"), u16(0, "text_length 0"), zero(2)], 34, REPLY | ERROR,
          STATUS["TRANSLATION_BLOCKED"])
    frame("35-error_version_mismatch.request.hex", "HELLO proposing major version 2", "HELLO",
          [u16(2, "major 2"), u16(0, "minor 0"), zero(4), u64(0, "capabilities 0"), u32(0, "max_frame_length 0"),
           u32(0, "max_batch_entries 0"), u32(0, "max_in_flight 0"), u16(0, "max_fds_per_message 0"), zero(2)], 1)
    frame("35-error_version_mismatch.reply.hex", "Error reply to HELLO: VERSION_MISMATCH; detail = 1.2",
          "HELLO", [u32(0x00010002, "detail: server major 1 << 16 | minor 2"), u16(0, "text_length 0"), zero(2)],
          1, REPLY | ERROR, STATUS["VERSION_MISMATCH"])
    secret = b"s3cret-token"
    pair(36, "authenticate", "AUTHENTICATE",
         [u32(len(secret), f"secret_length {len(secret)}"), zero(4), raw(secret, "secret " + repr(secret.decode()))]
         + pad8(len(secret)), [], 36, note="On a TCP connection, after HELLO and before any other request.")
    pair(37, "wait_ack", "WAIT_ACK",
         [u32(1, "vm 1"), u16(0, "vcpu 0"), u8(0xF0, "priority_mask 0xf0"), zero(1),
          u32(10000, "timeout_us 10000"), zero(4)],
         lpi(8192, 0xA0, True), 37, note="Added in 1.1.")
    pair(38, "wake", "WAKE", [u32(1, "vm 1"), u16(0, "vcpu 0"), zero(2)], [], 38, note="Added in 1.1.")
    pair(39, "set_ack_slot", "SET_ACK_SLOT",
         [u32(1, "vm 1"), u16(2, "vcpu 2"), zero(2), u64(128, "offset 128")], [], 39,
         note="Added in 1.2. The descriptor is a memfd sealed with F_SEAL_SHRINK; the slot is 8 bytes at offset 128.")
    pair(40, "clear_ack_slot", "CLEAR_ACK_SLOT", [u32(1, "vm 1"), u16(2, "vcpu 2"), zero(2)], [], 40,
         note="Added in 1.2.")
    pair(41, "ack_more", "ACK", [u32(1, "vm 1"), u16(0, "vcpu 0"), u8(0xFF, "priority_mask 0xff"), zero(1)],
         lpi(8193, 0x80, True, more=True), 41,
         note="Added in 1.2: on a connection that agreed 1.2, the reply's flags bit 1 (more) says that\n"
              "another ACK with the same mask would take an LPI now.")


if __name__ == "__main__":
    main()
