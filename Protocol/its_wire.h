/*
 * its_wire.h - the itsd wire protocol, version 1.2, for C clients.
 *
 * Constants and the layout of every message described in PROTOCOL.md. All fields are little-endian
 * and naturally aligned with explicit padding, so each struct below has no implicit padding on any
 * C11 ABI; _Static_assert checks every size and the offset of every field that follows a gap-prone
 * boundary. Frames are a 16-byte its_wire_header followed by the payload struct of the opcode, then
 * any counted entries the message lists. Reserved and padding fields must be written as zero.
 *
 * The structs describe bytes on the wire: copy into and out of them with memcpy on a little-endian
 * host. On a big-endian host, swap every field (compile with ITS_WIRE_ALLOW_BIG_ENDIAN to do so).
 */
#ifndef ITS_WIRE_H
#define ITS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ \
    && !defined(ITS_WIRE_ALLOW_BIG_ENDIAN)
#error "its_wire.h structs are little-endian; define ITS_WIRE_ALLOW_BIG_ENDIAN and byte-swap every field"
#endif

/* Version and framing. */
#define ITS_WIRE_MAJOR 1u
#define ITS_WIRE_MINOR 2u
#define ITS_WIRE_HEADER_LENGTH 16u
#define ITS_WIRE_PAD8(n) ((8u - ((n) & 7u)) & 7u)

/* Header flags; every other bit is reserved and must be zero. */
#define ITS_WIRE_FLAG_REPLY 0x0001u
#define ITS_WIRE_FLAG_NO_REPLY 0x0002u
#define ITS_WIRE_FLAG_ERROR 0x0004u
#define ITS_WIRE_FLAG_EVENT 0x0008u
#define ITS_WIRE_FLAGS_DEFINED 0x000Fu

/* Opcodes. */
#define ITS_WIRE_OP_HELLO 0x0001u
#define ITS_WIRE_OP_PING 0x0002u
#define ITS_WIRE_OP_AUTHENTICATE 0x0003u    /* TCP: the listener's shared secret */
#define ITS_WIRE_OP_CREATE_VM 0x0010u
#define ITS_WIRE_OP_ATTACH_VM 0x0011u
#define ITS_WIRE_OP_DESTROY_VM 0x0012u
#define ITS_WIRE_OP_LIST_VMS 0x0013u
#define ITS_WIRE_OP_ADD_MEM_REGION 0x0020u    /* carries 1 fd: a memfd */
#define ITS_WIRE_OP_REMOVE_MEM_REGION 0x0021u
#define ITS_WIRE_OP_MMIO_READ 0x0030u
#define ITS_WIRE_OP_MMIO_WRITE 0x0031u        /* NO_REPLY allowed */
#define ITS_WIRE_OP_INJECT 0x0040u            /* NO_REPLY allowed */
#define ITS_WIRE_OP_INJECT_BATCH 0x0041u      /* NO_REPLY allowed */
#define ITS_WIRE_OP_BIND_IRQFD 0x0050u        /* carries 1 fd: an eventfd */
#define ITS_WIRE_OP_UNBIND_IRQFD 0x0051u
#define ITS_WIRE_OP_MASK 0x0052u
#define ITS_WIRE_OP_UNMASK 0x0053u
#define ITS_WIRE_OP_SET_VCPU_NOTIFY 0x0060u   /* carries 1 fd: an eventfd */
#define ITS_WIRE_OP_CLEAR_VCPU_NOTIFY 0x0061u
#define ITS_WIRE_OP_SUBSCRIBE 0x0062u
#define ITS_WIRE_OP_HPPI 0x0070u
#define ITS_WIRE_OP_ACK 0x0071u
#define ITS_WIRE_OP_PENDING 0x0072u
#define ITS_WIRE_OP_WAIT_ACK 0x0073u       /* added in 1.1 */
#define ITS_WIRE_OP_WAKE 0x0074u           /* added in 1.1 */
#define ITS_WIRE_OP_SET_ACK_SLOT 0x0075u   /* carries 1 fd: a sealed memfd; added in 1.2 */
#define ITS_WIRE_OP_CLEAR_ACK_SLOT 0x0076u /* added in 1.2 */
#define ITS_WIRE_OP_STATS 0x0080u
#define ITS_WIRE_OP_DUMP 0x0081u
#define ITS_WIRE_OP_SNAPSHOT_VM 0x0090u
#define ITS_WIRE_OP_RESTORE_VM 0x0091u
#define ITS_WIRE_OP_EVENT_VCPU_NOTIFY 0x0100u /* EVENT frame */
#define ITS_WIRE_OP_EVENT_VM_GONE 0x0101u     /* EVENT frame */

/* Status codes (PROTOCOL.md, "Status codes"). */
#define ITS_WIRE_OK 0u
#define ITS_WIRE_TRUNCATED 1u
#define ITS_WIRE_TRAILING_BYTES 2u
#define ITS_WIRE_LENGTH_BELOW_HEADER 3u
#define ITS_WIRE_FRAME_TOO_LARGE 4u
#define ITS_WIRE_UNKNOWN_OPCODE 5u
#define ITS_WIRE_RESERVED_FLAGS 6u
#define ITS_WIRE_FLAG_CONFLICT 7u
#define ITS_WIRE_FD_COUNT_MISMATCH 8u
#define ITS_WIRE_BATCH_COUNT_MISMATCH 9u
#define ITS_WIRE_NONZERO_PADDING 10u
#define ITS_WIRE_BAD_STRING 11u
#define ITS_WIRE_BAD_VALUE 12u
#define ITS_WIRE_VERSION_MISMATCH 32u
#define ITS_WIRE_NOT_HELLO_FIRST 33u
#define ITS_WIRE_HELLO_REPEATED 34u
#define ITS_WIRE_FD_NOT_ALLOWED_ON_TCP 35u
#define ITS_WIRE_BAD_FD 36u
#define ITS_WIRE_CAPABILITY_NOT_AGREED 37u
#define ITS_WIRE_NO_SUCH_VM 64u
#define ITS_WIRE_BAD_TOKEN 65u
#define ITS_WIRE_NOT_ATTACHED 66u
#define ITS_WIRE_PERMISSION_DENIED 67u
#define ITS_WIRE_NO_SUCH_VCPU 68u
#define ITS_WIRE_BAD_VM_CONFIG 69u
#define ITS_WIRE_BAD_MEM_REGION 80u
#define ITS_WIRE_MEM_REGION_OVERLAP 81u
#define ITS_WIRE_NO_SUCH_MEM_REGION 82u
#define ITS_WIRE_BAD_MMIO_FRAME 96u
#define ITS_WIRE_BAD_MMIO_OFFSET 97u
#define ITS_WIRE_BAD_MMIO_WIDTH 98u
#define ITS_WIRE_TRANSLATION_BLOCKED 112u
#define ITS_WIRE_ITS_DISABLED 113u
#define ITS_WIRE_NOT_BOUND 114u
#define ITS_WIRE_ALREADY_BOUND 115u
#define ITS_WIRE_LIMIT_EXCEEDED 128u
#define ITS_WIRE_BUSY 129u
#define ITS_WIRE_BAD_CURSOR 130u
#define ITS_WIRE_BAD_SNAPSHOT 131u
#define ITS_WIRE_INTERNAL 255u

/* HELLO capabilities. */
#define ITS_WIRE_CAP_ERROR_REPORTS (UINT64_C(1) << 0)
#define ITS_WIRE_CAP_EVENTS (UINT64_C(1) << 1)
#define ITS_WIRE_CAP_SNAPSHOT (UINT64_C(1) << 2)

/* Limits: the value a 0 in HELLO stands for, the server's maximum, and what holds before HELLO. */
#define ITS_WIRE_DEFAULT_MAX_FRAME_LENGTH 65536u
#define ITS_WIRE_DEFAULT_MAX_BATCH_ENTRIES 4096u
#define ITS_WIRE_DEFAULT_MAX_IN_FLIGHT 64u
#define ITS_WIRE_DEFAULT_MAX_FDS_PER_MESSAGE 1u
#define ITS_WIRE_SERVER_MAX_FRAME_LENGTH 1048576u
#define ITS_WIRE_SERVER_MAX_BATCH_ENTRIES 65536u
#define ITS_WIRE_SERVER_MAX_IN_FLIGHT 4096u
#define ITS_WIRE_SERVER_MAX_FDS_PER_MESSAGE 8u
#define ITS_WIRE_MIN_MAX_FRAME_LENGTH 4096u
#define ITS_WIRE_PRE_HELLO_MAX_FRAME_LENGTH 4096u
#define ITS_WIRE_MAX_ERROR_TEXT 256u
#define ITS_WIRE_MAX_SECRET 256u
#define ITS_WIRE_MAX_STAT_NAME 128u
#define ITS_WIRE_MAX_STAT_HELP 1024u
#define ITS_WIRE_MAX_STAT_BUCKETS 64u

/* Field values. */
#define ITS_WIRE_VM_ALL 0xFFFFFFFFu           /* STATS: the whole server (section 6.17) */
#define ITS_WIRE_INTID_NONE 1023u             /* HPPI/ACK/WAIT_ACK: nothing deliverable */
#define ITS_WIRE_WAIT_FOREVER 0xFFFFFFFFu     /* WAIT_ACK timeout_us: no timeout (added in 1.1) */
#define ITS_WIRE_FRAME_ITS 0u
#define ITS_WIRE_FRAME_REDISTRIBUTOR 1u
#define ITS_WIRE_MMIO_FRAME_SIZE 0x20000u    /* ITS and redistributor frames: 128 KiB each */
#define ITS_WIRE_GITS_TRANSLATER 0x10040u    /* ITS frame offset of the MSI doorbell (MMIO_WRITE device_id) */
#define ITS_WIRE_VM_STATE_ATTACHED 0u
#define ITS_WIRE_VM_STATE_ORPHANED 1u
#define ITS_WIRE_BIND_START_MASKED 0x1u
#define ITS_WIRE_EVENTS_VCPU_NOTIFY 0x1u
#define ITS_WIRE_EVENTS_VM_GONE 0x2u
#define ITS_WIRE_VM_GONE_DESTROYED 0u
#define ITS_WIRE_VM_GONE_GRACE_EXPIRED 1u
#define ITS_WIRE_LPI_ENABLED 0x1u
#define ITS_WIRE_LPI_MORE 0x2u                /* ACK and WAIT_ACK replies, 1.2 connections only (added in 1.2) */
#define ITS_WIRE_LPI_PENDING 0x2u             /* DUMP LPIS only */
#define ITS_WIRE_VCPU_NOT_ROUTED 0xFFFFu      /* DUMP LPIS: the LPI targets no vCPU */
#define ITS_WIRE_STATS_INCLUDE_SCHEMA 0x1u
#define ITS_WIRE_STATS_SCHEMA_INCLUDED 0x1u
#define ITS_WIRE_STAT_COUNTER 1u
#define ITS_WIRE_STAT_GAUGE 2u
#define ITS_WIRE_STAT_HISTOGRAM 3u
#define ITS_WIRE_UNIT_NONE 0u
#define ITS_WIRE_UNIT_BYTES 1u
#define ITS_WIRE_UNIT_NANOSECONDS 2u
#define ITS_WIRE_UNIT_BOOLEAN 3u
#define ITS_WIRE_DUMP_DEVICES 1u
#define ITS_WIRE_DUMP_ITT 2u
#define ITS_WIRE_DUMP_COLLECTIONS 3u
#define ITS_WIRE_DUMP_LPIS 4u
#define ITS_WIRE_DUMP_END UINT64_C(0xFFFFFFFFFFFFFFFF)
#define ITS_WIRE_CHUNK_LAST 0x1u

/* The acknowledge slot word (section 6.16b, added in 1.2): 8 bytes in shared memory, little-endian,
 * read and written only with 8-byte atomic load and compare-and-swap. A word with a bit of
 * ITS_WIRE_ACK_SLOT_RESERVED set, a state above DELIVERED, or an INTID (or, IDLE, a priority) in an
 * IDLE or ARMED word is invalid. */
#define ITS_WIRE_ACK_SLOT_INTID_MASK UINT64_C(0x00000000FFFFFFFF)    /* bits 0-31: DELIVERED's LPI */
#define ITS_WIRE_ACK_SLOT_PRIORITY_SHIFT 32u                         /* bits 32-39: mask or priority */
#define ITS_WIRE_ACK_SLOT_PRIORITY_MASK UINT64_C(0x000000FF00000000)
#define ITS_WIRE_ACK_SLOT_STATE_SHIFT 56u                            /* bits 56-59 */
#define ITS_WIRE_ACK_SLOT_STATE_MASK UINT64_C(0x0F00000000000000)
#define ITS_WIRE_ACK_SLOT_RESERVED UINT64_C(0x70FFFF0000000000)      /* bits 40-55 and 60-62 */
#define ITS_WIRE_ACK_SLOT_MORE (UINT64_C(1) << 63)                   /* LPIs the slot did not take */
#define ITS_WIRE_ACK_SLOT_IDLE 0u
#define ITS_WIRE_ACK_SLOT_ARMED 1u
#define ITS_WIRE_ACK_SLOT_DELIVERED 2u
#define ITS_WIRE_ACK_SLOT_ALIGN 8u                                   /* SET_ACK_SLOT offset: a multiple of it */
/* The word's fields, and the ARMED word the VMM writes (priority_mask as ICC_PMR_EL1). */
#define ITS_WIRE_ACK_SLOT_STATE(word) ((unsigned)(((word) & ITS_WIRE_ACK_SLOT_STATE_MASK) >> ITS_WIRE_ACK_SLOT_STATE_SHIFT))
#define ITS_WIRE_ACK_SLOT_INTID(word) ((uint32_t)((word) & ITS_WIRE_ACK_SLOT_INTID_MASK))
#define ITS_WIRE_ACK_SLOT_PRIORITY(word) ((uint8_t)((word) >> ITS_WIRE_ACK_SLOT_PRIORITY_SHIFT))
#define ITS_WIRE_ACK_SLOT_WORD_ARMED(priority_mask) \
    ((UINT64_C(1) << ITS_WIRE_ACK_SLOT_STATE_SHIFT) | ((uint64_t)(uint8_t)(priority_mask) << ITS_WIRE_ACK_SLOT_PRIORITY_SHIFT))

#define ITS_WIRE_CHECK_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " is " #size " bytes")
#define ITS_WIRE_CHECK_AT(type, field, at) \
    _Static_assert(offsetof(type, field) == (at), #type "." #field " is at " #at)

/* Every frame. */
struct its_wire_header {
    uint32_t length;     /* whole frame, header included */
    uint16_t opcode;
    uint16_t flags;
    uint32_t message_id; /* chosen by the client, echoed by the reply; event sequence in events */
    uint32_t status;     /* 0 unless ERROR */
};
ITS_WIRE_CHECK_SIZE(struct its_wire_header, 16);
ITS_WIRE_CHECK_AT(struct its_wire_header, opcode, 4);
ITS_WIRE_CHECK_AT(struct its_wire_header, flags, 6);
ITS_WIRE_CHECK_AT(struct its_wire_header, message_id, 8);
ITS_WIRE_CHECK_AT(struct its_wire_header, status, 12);

/* Error reply payload; followed by text_length bytes of UTF-8 and ITS_WIRE_PAD8(text_length) zeros. */
struct its_wire_error {
    uint32_t detail;
    uint16_t text_length;
    uint16_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_error, 8);

/* HELLO request and reply. */
struct its_wire_hello {
    uint16_t major;
    uint16_t minor;
    uint32_t reserved;
    uint64_t capabilities;
    uint32_t max_frame_length;
    uint32_t max_batch_entries;
    uint32_t max_in_flight;
    uint16_t max_fds_per_message;
    uint16_t reserved2;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_hello, 32);
ITS_WIRE_CHECK_AT(struct its_wire_hello, capabilities, 8);
ITS_WIRE_CHECK_AT(struct its_wire_hello, max_fds_per_message, 28);

/* PING request and reply. */
struct its_wire_ping {
    uint64_t nonce;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_ping, 8);

/* AUTHENTICATE request; followed by secret_length (1 to ITS_WIRE_MAX_SECRET) bytes of the secret and
 * ITS_WIRE_PAD8(secret_length) zeros. The reply is the bare header. */
struct its_wire_authenticate {
    uint32_t secret_length;
    uint32_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_authenticate, 8);

/* CREATE_VM request. */
struct its_wire_create_vm {
    uint16_t vcpu_count;
    uint8_t device_id_bits;
    uint8_t event_id_bits;
    uint8_t intid_bits;
    uint8_t reserved[3];
};
ITS_WIRE_CHECK_SIZE(struct its_wire_create_vm, 8);

/* CREATE_VM reply and ATTACH_VM request: a VM and its 16-byte token (opaque bytes). In ATTACH_VM,
 * a token of 16 zero bytes asks for an operator attach (PROTOCOL.md 6.4): it succeeds only for a
 * Unix-socket peer whose uid the server lists as an operator; CREATE_VM never hands out that token. */
struct its_wire_vm_token {
    uint32_t vm;
    uint32_t reserved;
    uint8_t token[16];
};
ITS_WIRE_CHECK_SIZE(struct its_wire_vm_token, 24);
ITS_WIRE_CHECK_AT(struct its_wire_vm_token, token, 8);

/* ATTACH_VM reply. */
struct its_wire_attach_vm_reply {
    uint32_t vm;
    uint16_t vcpu_count;
    uint8_t device_id_bits;
    uint8_t event_id_bits;
    uint8_t intid_bits;
    uint8_t reserved[7];
};
ITS_WIRE_CHECK_SIZE(struct its_wire_attach_vm_reply, 16);

/* DESTROY_VM request. */
struct its_wire_vm {
    uint32_t vm;
    uint32_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_vm, 8);

/* LIST_VMS reply: this, then count * its_wire_vm_info. The request has no payload. */
struct its_wire_list_vms_reply {
    uint32_t count;
    uint32_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_list_vms_reply, 8);

struct its_wire_vm_info {
    uint32_t vm;
    uint16_t vcpu_count;
    uint8_t device_id_bits;
    uint8_t event_id_bits;
    uint8_t intid_bits;
    uint8_t state;
    uint16_t connections;
    uint32_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_vm_info, 16);
ITS_WIRE_CHECK_AT(struct its_wire_vm_info, connections, 10);

/* ADD_MEM_REGION request (with one memfd). */
struct its_wire_add_mem_region {
    uint32_t vm;
    uint32_t reserved;
    uint64_t guest_address;
    uint64_t size;
    uint64_t file_offset;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_add_mem_region, 32);

/* REMOVE_MEM_REGION request. */
struct its_wire_remove_mem_region {
    uint32_t vm;
    uint32_t reserved;
    uint64_t guest_address;
    uint64_t size;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_remove_mem_region, 24);

/* MMIO_READ request. */
struct its_wire_mmio_read {
    uint32_t vm;
    uint8_t frame_kind;   /* ITS_WIRE_FRAME_* */
    uint8_t width;        /* 1, 2, 4 or 8 */
    uint16_t frame_index; /* ITS: 0; redistributor: the vCPU */
    uint64_t offset;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_mmio_read, 16);
ITS_WIRE_CHECK_AT(struct its_wire_mmio_read, offset, 8);

/* MMIO_READ reply. */
struct its_wire_mmio_read_reply {
    uint64_t value;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_mmio_read_reply, 8);

/* MMIO_WRITE request. device_id is the requester for writes to ITS_WIRE_GITS_TRANSLATER. */
struct its_wire_mmio_write {
    uint32_t vm;
    uint8_t frame_kind;
    uint8_t width;
    uint16_t frame_index;
    uint64_t offset;
    uint64_t value;
    uint32_t device_id;
    uint32_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_mmio_write, 32);
ITS_WIRE_CHECK_AT(struct its_wire_mmio_write, device_id, 24);

/* INJECT request. */
struct its_wire_inject {
    uint32_t vm;
    uint32_t device_id;
    uint32_t event_id;
    uint32_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_inject, 16);

/* INJECT_BATCH request: this, then count * its_wire_inject_entry. */
struct its_wire_inject_batch {
    uint32_t vm;
    uint32_t count;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_inject_batch, 8);

struct its_wire_inject_entry {
    uint32_t device_id;
    uint32_t event_id;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_inject_entry, 8);

/* INJECT_BATCH reply. */
struct its_wire_inject_batch_reply {
    uint32_t injected;
    uint32_t blocked;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_inject_batch_reply, 8);

/* BIND_IRQFD request (with one eventfd). */
struct its_wire_bind_irqfd {
    uint32_t vm;
    uint32_t device_id;
    uint32_t event_id;
    uint32_t flags; /* ITS_WIRE_BIND_START_MASKED */
};
ITS_WIRE_CHECK_SIZE(struct its_wire_bind_irqfd, 16);

/* UNBIND_IRQFD, MASK and UNMASK requests. */
struct its_wire_irqfd_key {
    uint32_t vm;
    uint32_t device_id;
    uint32_t event_id;
    uint32_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_irqfd_key, 16);

/* SET_VCPU_NOTIFY (with one eventfd), CLEAR_VCPU_NOTIFY, HPPI, WAKE and CLEAR_ACK_SLOT requests, and
 * EVENT_VCPU_NOTIFY. */
struct its_wire_vcpu_ref {
    uint32_t vm;
    uint16_t vcpu;
    uint16_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_vcpu_ref, 8);

/* SUBSCRIBE request. */
struct its_wire_subscribe {
    uint32_t vm;
    uint32_t events; /* ITS_WIRE_EVENTS_* ; 0 unsubscribes */
};
ITS_WIRE_CHECK_SIZE(struct its_wire_subscribe, 8);

/* ACK request. */
struct its_wire_ack {
    uint32_t vm;
    uint16_t vcpu;
    uint8_t priority_mask;
    uint8_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_ack, 8);

/* WAIT_ACK request (added in 1.1). timeout_us 0 answers at once, as ACK; ITS_WIRE_WAIT_FOREVER waits
 * without limit. */
struct its_wire_wait_ack {
    uint32_t vm;
    uint16_t vcpu;
    uint8_t priority_mask;
    uint8_t reserved;
    uint32_t timeout_us;
    uint32_t reserved2;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_wait_ack, 16);

/* SET_ACK_SLOT request, with one descriptor: a memfd sealed with F_SEAL_SHRINK holding the slot word
 * at `offset`, a multiple of 8 (added in 1.2). */
struct its_wire_set_ack_slot {
    uint32_t vm;
    uint16_t vcpu;
    uint16_t reserved;
    uint64_t offset;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_set_ack_slot, 16);
ITS_WIRE_CHECK_AT(struct its_wire_set_ack_slot, offset, 8);

/* HPPI, ACK and WAIT_ACK replies, and PENDING entries. */
struct its_wire_lpi {
    uint32_t intid;
    uint8_t priority;
    uint8_t flags; /* ITS_WIRE_LPI_ENABLED; ITS_WIRE_LPI_MORE in ACK and WAIT_ACK replies */
    uint16_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_lpi, 8);

/* PENDING request. */
struct its_wire_pending {
    uint32_t vm;
    uint16_t vcpu;
    uint16_t reserved;
    uint32_t cursor;
    uint32_t max_entries;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_pending, 16);

/* PENDING reply: this, then count * its_wire_lpi. */
struct its_wire_pending_reply {
    uint32_t count;
    uint32_t next_cursor; /* 0: no more */
};
ITS_WIRE_CHECK_SIZE(struct its_wire_pending_reply, 8);

/* STATS request. */
struct its_wire_stats {
    uint32_t vm;
    uint32_t flags; /* ITS_WIRE_STATS_INCLUDE_SCHEMA */
};
ITS_WIRE_CHECK_SIZE(struct its_wire_stats, 8);

/* STATS reply: this; if SCHEMA_INCLUDED, stat_count descriptors; then stat_count value records. */
struct its_wire_stats_reply {
    uint64_t schema_id;
    uint32_t stat_count;
    uint32_t flags;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_stats_reply, 16);

/* A descriptor: this, name, help, ITS_WIRE_PAD8(name_length + help_length) zeros, bucket_count u64 bounds. */
struct its_wire_stat_descriptor {
    uint8_t kind;
    uint8_t unit;
    uint16_t bucket_count;
    uint16_t name_length;
    uint16_t help_length;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_stat_descriptor, 8);

/* A value record: this, then slot_count u64 slots. */
struct its_wire_stat_value {
    uint8_t kind;
    uint8_t reserved[3];
    uint32_t slot_count;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_stat_value, 8);

/* DUMP request. */
struct its_wire_dump {
    uint32_t vm;
    uint16_t section; /* ITS_WIRE_DUMP_* */
    uint16_t reserved;
    uint64_t cursor;  /* 0 starts the section */
    uint32_t max_entries;
    uint32_t reserved2;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_dump, 24);
ITS_WIRE_CHECK_AT(struct its_wire_dump, cursor, 8);

/* DUMP reply: this, then count entries of entry_size bytes. */
struct its_wire_dump_reply {
    uint32_t vm;
    uint16_t section;
    uint16_t entry_size;
    uint32_t count;
    uint32_t reserved;
    uint64_t next_cursor; /* ITS_WIRE_DUMP_END: no more */
};
ITS_WIRE_CHECK_SIZE(struct its_wire_dump_reply, 24);
ITS_WIRE_CHECK_AT(struct its_wire_dump_reply, next_cursor, 16);

struct its_wire_dump_device {
    uint32_t device_id;
    uint8_t event_id_bits;
    uint8_t reserved[3];
    uint64_t itt_address;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_dump_device, 16);

struct its_wire_dump_itte {
    uint32_t device_id;
    uint32_t event_id;
    uint32_t intid;
    uint16_t icid;
    uint16_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_dump_itte, 16);

struct its_wire_dump_collection {
    uint16_t icid;
    uint16_t vcpu;
    uint32_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_dump_collection, 8);

struct its_wire_dump_lpi {
    uint32_t intid;
    uint8_t priority;
    uint8_t flags; /* ITS_WIRE_LPI_ENABLED | ITS_WIRE_LPI_PENDING */
    uint16_t vcpu; /* ITS_WIRE_VCPU_NOT_ROUTED: not routed */
};
ITS_WIRE_CHECK_SIZE(struct its_wire_dump_lpi, 8);

/* SNAPSHOT_VM request. */
struct its_wire_snapshot_vm {
    uint32_t vm;
    uint32_t max_bytes;
    uint64_t offset; /* 0 captures a new image */
};
ITS_WIRE_CHECK_SIZE(struct its_wire_snapshot_vm, 16);

/* SNAPSHOT_VM reply and RESTORE_VM request: this, chunk_length bytes, ITS_WIRE_PAD8(chunk_length) zeros. */
struct its_wire_chunk {
    uint32_t vm;
    uint32_t chunk_length;
    uint64_t offset;
    uint64_t total_length;
    uint32_t flags; /* ITS_WIRE_CHUNK_LAST */
    uint32_t reserved;
};
ITS_WIRE_CHECK_SIZE(struct its_wire_chunk, 32);
ITS_WIRE_CHECK_AT(struct its_wire_chunk, flags, 24);

/* EVENT_VM_GONE. */
struct its_wire_vm_gone {
    uint32_t vm;
    uint32_t reason; /* ITS_WIRE_VM_GONE_* */
};
ITS_WIRE_CHECK_SIZE(struct its_wire_vm_gone, 8);

#endif /* ITS_WIRE_H */
