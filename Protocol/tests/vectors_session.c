/*
 * vectors_session.c - the golden vectors of HELLO, PING, VMs, memory, MMIO, injection, irqfds, vCPU
 * notification and the vCPU interface, of both events and of the three error exchanges: each payload
 * function checks the received payload `in` (len bytes) against PROTOCOL.md and builds the expected one.
 */
#include "check_vectors.h"

static const uint8_t token[16] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
                                  0x00, 0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99};

static void hello(const uint8_t *in, size_t len, struct out *out, int reply) {
    READ(struct its_wire_hello, h, 0);
    CHECK(h.major == 1 && h.minor == 0);
    CHECK(h.capabilities == (ITS_WIRE_CAP_ERROR_REPORTS | ITS_WIRE_CAP_EVENTS | ITS_WIRE_CAP_SNAPSHOT));
    CHECK(h.max_batch_entries == 1024);
    CHECK(h.max_frame_length == (reply ? ITS_WIRE_DEFAULT_MAX_FRAME_LENGTH : 0));
    struct its_wire_hello e = {1, 0, 0, ITS_WIRE_CAP_ERROR_REPORTS | ITS_WIRE_CAP_EVENTS | ITS_WIRE_CAP_SNAPSHOT,
                               reply ? 65536 : 0, 1024, reply ? 64 : 0, (uint16_t)(reply ? 1 : 0), 0};
    put(out, &e, sizeof e);
}
static void hello_request(const uint8_t *in, size_t len, struct out *out) { hello(in, len, out, 0); }
static void hello_reply(const uint8_t *in, size_t len, struct out *out) { hello(in, len, out, 1); }

static void ping(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_ping, p, 0);
    CHECK(p.nonce == UINT64_C(0x0123456789ABCDEF));
    struct its_wire_ping e = {UINT64_C(0x0123456789ABCDEF)};
    put(out, &e, sizeof e);
}

static void create_vm(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_create_vm, c, 0);
    CHECK(c.vcpu_count == 4 && c.device_id_bits == 16 && c.event_id_bits == 16 && c.intid_bits == 16);
    struct its_wire_create_vm e = {4, 16, 16, 16, {0, 0, 0}};
    put(out, &e, sizeof e);
}

static void vm_token(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_vm_token, t, 0);
    CHECK(t.vm == 1 && memcmp(t.token, token, 16) == 0);
    struct its_wire_vm_token e = {1, 0, {0}};
    memcpy(e.token, token, 16);
    put(out, &e, sizeof e);
}

static void attach_vm_reply(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_attach_vm_reply, a, 0);
    CHECK(a.vm == 1 && a.vcpu_count == 4 && a.device_id_bits == 16 && a.event_id_bits == 16 && a.intid_bits == 16);
    struct its_wire_attach_vm_reply e = {1, 4, 16, 16, 16, {0}};
    put(out, &e, sizeof e);
}

static void vm_one(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_vm, v, 0);
    CHECK(v.vm == 1);
    struct its_wire_vm e = {1, 0};
    put(out, &e, sizeof e);
}

static void vm_seven(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_vm, v, 0);
    CHECK(v.vm == 7);
    struct its_wire_vm e = {7, 0};
    put(out, &e, sizeof e);
}

static void list_vms_reply(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_list_vms_reply, r, 0);
    CHECK(r.count == 2);
    CHECK(len == sizeof r + r.count * sizeof(struct its_wire_vm_info));
    READ(struct its_wire_vm_info, a, 8);
    READ(struct its_wire_vm_info, b, 24);
    CHECK(a.vm == 1 && a.vcpu_count == 4 && a.state == ITS_WIRE_VM_STATE_ATTACHED && a.connections == 1);
    CHECK(b.vm == 2 && b.vcpu_count == 2 && b.device_id_bits == 20 && b.event_id_bits == 12 && b.intid_bits == 24);
    CHECK(b.state == ITS_WIRE_VM_STATE_ORPHANED && b.connections == 0);
    struct its_wire_list_vms_reply e = {2, 0};
    struct its_wire_vm_info e1 = {1, 4, 16, 16, 16, ITS_WIRE_VM_STATE_ATTACHED, 1, 0};
    struct its_wire_vm_info e2 = {2, 2, 20, 12, 24, ITS_WIRE_VM_STATE_ORPHANED, 0, 0};
    put(out, &e, sizeof e);
    put(out, &e1, sizeof e1);
    put(out, &e2, sizeof e2);
}

static void add_mem_region(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_add_mem_region, m, 0);
    CHECK(m.vm == 1 && m.guest_address == 0x40000000u && m.size == 0x10000000u && m.file_offset == 0);
    struct its_wire_add_mem_region e = {1, 0, 0x40000000u, 0x10000000u, 0};
    put(out, &e, sizeof e);
}

static void remove_mem_region(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_remove_mem_region, m, 0);
    CHECK(m.vm == 1 && m.guest_address == 0x40000000u && m.size == 0x10000000u);
    struct its_wire_remove_mem_region e = {1, 0, 0x40000000u, 0x10000000u};
    put(out, &e, sizeof e);
}

static void mmio_read(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_mmio_read, m, 0);
    CHECK(m.vm == 1 && m.frame_kind == ITS_WIRE_FRAME_ITS && m.width == 8 && m.frame_index == 0 && m.offset == 8);
    struct its_wire_mmio_read e = {1, ITS_WIRE_FRAME_ITS, 8, 0, 8};
    put(out, &e, sizeof e);
}

static void mmio_read_reply(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_mmio_read_reply, r, 0);
    CHECK(r.value == 0x1F701u);
    struct its_wire_mmio_read_reply e = {0x1F701u};
    put(out, &e, sizeof e);
}

static void mmio_write(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_mmio_write, m, 0);
    CHECK(m.vm == 1 && m.frame_kind == ITS_WIRE_FRAME_ITS && m.width == 4 && m.offset == ITS_WIRE_GITS_TRANSLATER);
    CHECK(m.value == 5 && m.device_id == 0x100);
    struct its_wire_mmio_write e = {1, ITS_WIRE_FRAME_ITS, 4, 0, ITS_WIRE_GITS_TRANSLATER, 5, 0x100, 0};
    put(out, &e, sizeof e);
}

static void inject(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_inject, i, 0);
    CHECK(i.vm == 1 && i.device_id == 0x100 && i.event_id == 5);
    struct its_wire_inject e = {1, 0x100, 5, 0};
    put(out, &e, sizeof e);
}

static void inject_unmapped(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_inject, i, 0);
    CHECK(i.vm == 1 && i.device_id == 0x300 && i.event_id == 9);
    struct its_wire_inject e = {1, 0x300, 9, 0};
    put(out, &e, sizeof e);
}

static void inject_batch(const uint8_t *in, size_t len, struct out *out) {
    static const struct its_wire_inject_entry pairs[3] = {{0x100, 0}, {0x100, 1}, {0x208, 7}};
    READ(struct its_wire_inject_batch, b, 0);
    CHECK(b.vm == 1 && b.count == 3);
    CHECK(len == sizeof b + b.count * sizeof(struct its_wire_inject_entry));
    for (uint32_t i = 0; i < 3; i++) {
        READ(struct its_wire_inject_entry, entry, sizeof b + i * sizeof entry);
        CHECK(entry.device_id == pairs[i].device_id && entry.event_id == pairs[i].event_id);
    }
    struct its_wire_inject_batch e = {1, 3};
    put(out, &e, sizeof e);
    put(out, pairs, sizeof pairs);
}

static void inject_batch_reply(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_inject_batch_reply, r, 0);
    CHECK(r.injected == 2 && r.blocked == 1);
    struct its_wire_inject_batch_reply e = {2, 1};
    put(out, &e, sizeof e);
}

static void bind_irqfd(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_bind_irqfd, b, 0);
    CHECK(b.vm == 1 && b.device_id == 0x100 && b.event_id == 2 && b.flags == 0);
    struct its_wire_bind_irqfd e = {1, 0x100, 2, 0};
    put(out, &e, sizeof e);
}

static void irqfd_key(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_irqfd_key, k, 0);
    CHECK(k.vm == 1 && k.device_id == 0x100 && k.event_id == 2);
    struct its_wire_irqfd_key e = {1, 0x100, 2, 0};
    put(out, &e, sizeof e);
}

static void vcpu_ref(const uint8_t *in, size_t len, struct out *out, uint32_t vm, uint16_t vcpu) {
    READ(struct its_wire_vcpu_ref, v, 0);
    CHECK(v.vm == vm && v.vcpu == vcpu);
    struct its_wire_vcpu_ref e = {vm, vcpu, 0};
    put(out, &e, sizeof e);
}
static void vcpu_1_0(const uint8_t *in, size_t len, struct out *out) { vcpu_ref(in, len, out, 1, 0); }
static void vcpu_1_2(const uint8_t *in, size_t len, struct out *out) { vcpu_ref(in, len, out, 1, 2); }
static void vcpu_1_3(const uint8_t *in, size_t len, struct out *out) { vcpu_ref(in, len, out, 1, 3); }

static void subscribe(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_subscribe, s, 0);
    CHECK(s.vm == 1 && s.events == (ITS_WIRE_EVENTS_VCPU_NOTIFY | ITS_WIRE_EVENTS_VM_GONE));
    struct its_wire_subscribe e = {1, ITS_WIRE_EVENTS_VCPU_NOTIFY | ITS_WIRE_EVENTS_VM_GONE};
    put(out, &e, sizeof e);
}

static void lpi_8192(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_lpi, l, 0);
    CHECK(l.intid == 8192 && l.priority == 0xA0 && l.flags == ITS_WIRE_LPI_ENABLED);
    struct its_wire_lpi e = {8192, 0xA0, ITS_WIRE_LPI_ENABLED, 0};
    put(out, &e, sizeof e);
}

static void lpi_8193_more(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_lpi, l, 0);
    CHECK(l.intid == 8193 && l.priority == 0x80 && l.flags == (ITS_WIRE_LPI_ENABLED | ITS_WIRE_LPI_MORE));
    struct its_wire_lpi e = {8193, 0x80, ITS_WIRE_LPI_ENABLED | ITS_WIRE_LPI_MORE, 0};
    put(out, &e, sizeof e);
}

static void ack_all(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_ack, a, 0);
    CHECK(a.vm == 1 && a.vcpu == 0 && a.priority_mask == 0xFF);
    struct its_wire_ack e = {1, 0, 0xFF, 0};
    put(out, &e, sizeof e);
}

static void ack(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_ack, a, 0);
    CHECK(a.vm == 1 && a.vcpu == 0 && a.priority_mask == 0xF0);
    struct its_wire_ack e = {1, 0, 0xF0, 0};
    put(out, &e, sizeof e);
}

static void wait_ack(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_wait_ack, w, 0);
    CHECK(w.vm == 1 && w.vcpu == 0 && w.priority_mask == 0xF0 && w.timeout_us == 10000);
    struct its_wire_wait_ack e = {1, 0, 0xF0, 0, 10000, 0};
    put(out, &e, sizeof e);
}

/* The slot word's macros agree with the bit table of section 6.16b, checked alongside the request. */
static void set_ack_slot(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_set_ack_slot, s, 0);
    CHECK(s.vm == 1 && s.vcpu == 2 && s.offset == 128 && s.offset % ITS_WIRE_ACK_SLOT_ALIGN == 0);
    CHECK(ITS_WIRE_ACK_SLOT_WORD_ARMED(0xF0) == UINT64_C(0x010000F000000000));
    uint64_t delivered = UINT64_C(0x820000A000002000);
    CHECK(ITS_WIRE_ACK_SLOT_STATE(delivered) == ITS_WIRE_ACK_SLOT_DELIVERED);
    CHECK(ITS_WIRE_ACK_SLOT_INTID(delivered) == 8192 && ITS_WIRE_ACK_SLOT_PRIORITY(delivered) == 0xA0);
    CHECK((delivered & ITS_WIRE_ACK_SLOT_MORE) != 0 && (delivered & ITS_WIRE_ACK_SLOT_RESERVED) == 0);
    CHECK((ITS_WIRE_ACK_SLOT_RESERVED | ITS_WIRE_ACK_SLOT_MORE | ITS_WIRE_ACK_SLOT_STATE_MASK
           | ITS_WIRE_ACK_SLOT_PRIORITY_MASK | ITS_WIRE_ACK_SLOT_INTID_MASK) == UINT64_MAX);
    struct its_wire_set_ack_slot e = {1, 2, 0, 128};
    put(out, &e, sizeof e);
}

static void pending(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_pending, p, 0);
    CHECK(p.vm == 1 && p.vcpu == 0 && p.cursor == 8192 && p.max_entries == 16);
    struct its_wire_pending e = {1, 0, 0, 8192, 16};
    put(out, &e, sizeof e);
}

static void pending_reply(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_pending_reply, r, 0);
    CHECK(r.count == 2 && r.next_cursor == 0);
    CHECK(len == sizeof r + r.count * sizeof(struct its_wire_lpi));
    READ(struct its_wire_lpi, a, 8);
    READ(struct its_wire_lpi, b, 16);
    CHECK(a.intid == 8193 && a.priority == 0xA0 && a.flags == ITS_WIRE_LPI_ENABLED);
    CHECK(b.intid == 8200 && b.priority == 0x80 && b.flags == 0);
    struct its_wire_pending_reply e = {2, 0};
    struct its_wire_lpi e1 = {8193, 0xA0, ITS_WIRE_LPI_ENABLED, 0}, e2 = {8200, 0x80, 0, 0};
    put(out, &e, sizeof e);
    put(out, &e1, sizeof e1);
    put(out, &e2, sizeof e2);
}

static void vm_gone(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_vm_gone, g, 0);
    CHECK(g.vm == 2 && g.reason == ITS_WIRE_VM_GONE_GRACE_EXPIRED);
    struct its_wire_vm_gone e = {2, ITS_WIRE_VM_GONE_GRACE_EXPIRED};
    put(out, &e, sizeof e);
}

static void error_text(const uint8_t *in, size_t len, struct out *out, uint32_t detail, const char *text) {
    READ(struct its_wire_error, r, 0);
    size_t text_length = strlen(text);
    CHECK(r.detail == detail && r.text_length == text_length);
    CHECK(len == sizeof r + text_length + ITS_WIRE_PAD8(text_length));
    CHECK(memcmp(in + sizeof r, text, text_length) == 0);
    struct its_wire_error e = {detail, (uint16_t)text_length, 0};
    put(out, &e, sizeof e);
    put(out, text, text_length);
    put_zeros(out, ITS_WIRE_PAD8(text_length));
}
static void error_no_such_vm(const uint8_t *in, size_t len, struct out *out) { error_text(in, len, out, 7, "no VM 7"); }
static void error_blocked(const uint8_t *in, size_t len, struct out *out) { error_text(in, len, out, 0, ""); }
static void error_version(const uint8_t *in, size_t len, struct out *out) {
    error_text(in, len, out, ITS_WIRE_MAJOR << 16 | ITS_WIRE_MINOR, "");
}

static void authenticate(const uint8_t *in, size_t len, struct out *out) {
    static const char secret[] = "s3cret-token";
    READ(struct its_wire_authenticate, a, 0);
    CHECK(a.secret_length == sizeof secret - 1 && a.reserved == 0);
    CHECK(len == sizeof a + a.secret_length + ITS_WIRE_PAD8(a.secret_length));
    CHECK(memcmp(in + sizeof a, secret, a.secret_length) == 0);
    struct its_wire_authenticate e = {(uint32_t)(sizeof secret - 1), 0};
    put(out, &e, sizeof e);
    put(out, secret, sizeof secret - 1);
    put_zeros(out, ITS_WIRE_PAD8(sizeof secret - 1));
}

static void hello_major_2(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_hello, h, 0);
    CHECK(h.major == 2 && h.minor == 0 && h.capabilities == 0 && h.max_frame_length == 0);
    struct its_wire_hello e = {2, 0, 0, 0, 0, 0, 0, 0, 0};
    put(out, &e, sizeof e);
}

const struct vector session_vectors[] = {
    {"01-hello.request.hex", ITS_WIRE_OP_HELLO, REQ, 1, 0, hello_request},
    {"01-hello.reply.hex", ITS_WIRE_OP_HELLO, REP, 1, 0, hello_reply},
    {"02-ping.request.hex", ITS_WIRE_OP_PING, REQ, 2, 0, ping},
    {"02-ping.reply.hex", ITS_WIRE_OP_PING, REP, 2, 0, ping},
    {"03-create_vm.request.hex", ITS_WIRE_OP_CREATE_VM, REQ, 3, 0, create_vm},
    {"03-create_vm.reply.hex", ITS_WIRE_OP_CREATE_VM, REP, 3, 0, vm_token},
    {"04-attach_vm.request.hex", ITS_WIRE_OP_ATTACH_VM, REQ, 4, 0, vm_token},
    {"04-attach_vm.reply.hex", ITS_WIRE_OP_ATTACH_VM, REP, 4, 0, attach_vm_reply},
    {"05-destroy_vm.request.hex", ITS_WIRE_OP_DESTROY_VM, REQ, 5, 0, vm_one},
    {"05-destroy_vm.reply.hex", ITS_WIRE_OP_DESTROY_VM, REP, 5, 0, NULL},
    {"06-list_vms.request.hex", ITS_WIRE_OP_LIST_VMS, REQ, 6, 0, NULL},
    {"06-list_vms.reply.hex", ITS_WIRE_OP_LIST_VMS, REP, 6, 0, list_vms_reply},
    {"07-add_mem_region.request.hex", ITS_WIRE_OP_ADD_MEM_REGION, REQ, 7, 0, add_mem_region},
    {"07-add_mem_region.reply.hex", ITS_WIRE_OP_ADD_MEM_REGION, REP, 7, 0, NULL},
    {"08-remove_mem_region.request.hex", ITS_WIRE_OP_REMOVE_MEM_REGION, REQ, 8, 0, remove_mem_region},
    {"08-remove_mem_region.reply.hex", ITS_WIRE_OP_REMOVE_MEM_REGION, REP, 8, 0, NULL},
    {"09-mmio_read.request.hex", ITS_WIRE_OP_MMIO_READ, REQ, 9, 0, mmio_read},
    {"09-mmio_read.reply.hex", ITS_WIRE_OP_MMIO_READ, REP, 9, 0, mmio_read_reply},
    {"10-mmio_write.request.hex", ITS_WIRE_OP_MMIO_WRITE, REQ, 10, 0, mmio_write},
    {"10-mmio_write.reply.hex", ITS_WIRE_OP_MMIO_WRITE, REP, 10, 0, NULL},
    {"11-inject.request.hex", ITS_WIRE_OP_INJECT, REQ, 11, 0, inject},
    {"11-inject.reply.hex", ITS_WIRE_OP_INJECT, REP, 11, 0, NULL},
    {"12-inject_batch.request.hex", ITS_WIRE_OP_INJECT_BATCH, REQ, 12, 0, inject_batch},
    {"12-inject_batch.reply.hex", ITS_WIRE_OP_INJECT_BATCH, REP, 12, 0, inject_batch_reply},
    {"13-bind_irqfd.request.hex", ITS_WIRE_OP_BIND_IRQFD, REQ, 13, 0, bind_irqfd},
    {"13-bind_irqfd.reply.hex", ITS_WIRE_OP_BIND_IRQFD, REP, 13, 0, NULL},
    {"14-unbind_irqfd.request.hex", ITS_WIRE_OP_UNBIND_IRQFD, REQ, 14, 0, irqfd_key},
    {"14-unbind_irqfd.reply.hex", ITS_WIRE_OP_UNBIND_IRQFD, REP, 14, 0, NULL},
    {"15-mask.request.hex", ITS_WIRE_OP_MASK, REQ, 15, 0, irqfd_key},
    {"15-mask.reply.hex", ITS_WIRE_OP_MASK, REP, 15, 0, NULL},
    {"16-unmask.request.hex", ITS_WIRE_OP_UNMASK, REQ, 16, 0, irqfd_key},
    {"16-unmask.reply.hex", ITS_WIRE_OP_UNMASK, REP, 16, 0, NULL},
    {"17-set_vcpu_notify.request.hex", ITS_WIRE_OP_SET_VCPU_NOTIFY, REQ, 17, 0, vcpu_1_2},
    {"17-set_vcpu_notify.reply.hex", ITS_WIRE_OP_SET_VCPU_NOTIFY, REP, 17, 0, NULL},
    {"18-clear_vcpu_notify.request.hex", ITS_WIRE_OP_CLEAR_VCPU_NOTIFY, REQ, 18, 0, vcpu_1_2},
    {"18-clear_vcpu_notify.reply.hex", ITS_WIRE_OP_CLEAR_VCPU_NOTIFY, REP, 18, 0, NULL},
    {"19-subscribe.request.hex", ITS_WIRE_OP_SUBSCRIBE, REQ, 19, 0, subscribe},
    {"19-subscribe.reply.hex", ITS_WIRE_OP_SUBSCRIBE, REP, 19, 0, NULL},
    {"20-hppi.request.hex", ITS_WIRE_OP_HPPI, REQ, 20, 0, vcpu_1_0},
    {"20-hppi.reply.hex", ITS_WIRE_OP_HPPI, REP, 20, 0, lpi_8192},
    {"21-ack.request.hex", ITS_WIRE_OP_ACK, REQ, 21, 0, ack},
    {"21-ack.reply.hex", ITS_WIRE_OP_ACK, REP, 21, 0, lpi_8192},
    {"22-pending.request.hex", ITS_WIRE_OP_PENDING, REQ, 22, 0, pending},
    {"22-pending.reply.hex", ITS_WIRE_OP_PENDING, REP, 22, 0, pending_reply},
    {"31-event_vcpu_notify.event.hex", ITS_WIRE_OP_EVENT_VCPU_NOTIFY, EVT, 1, 0, vcpu_1_3},
    {"32-event_vm_gone.event.hex", ITS_WIRE_OP_EVENT_VM_GONE, EVT, 2, 0, vm_gone},
    {"33-error_no_such_vm.request.hex", ITS_WIRE_OP_DESTROY_VM, REQ, 33, 0, vm_seven},
    {"33-error_no_such_vm.reply.hex", ITS_WIRE_OP_DESTROY_VM, ERR, 33, ITS_WIRE_NO_SUCH_VM, error_no_such_vm},
    {"34-error_translation_blocked.request.hex", ITS_WIRE_OP_INJECT, ITS_WIRE_FLAG_NO_REPLY, 34, 0, inject_unmapped},
    {"34-error_translation_blocked.reply.hex", ITS_WIRE_OP_INJECT, ERR, 34, ITS_WIRE_TRANSLATION_BLOCKED,
     error_blocked},
    {"35-error_version_mismatch.request.hex", ITS_WIRE_OP_HELLO, REQ, 1, 0, hello_major_2},
    {"35-error_version_mismatch.reply.hex", ITS_WIRE_OP_HELLO, ERR, 1, ITS_WIRE_VERSION_MISMATCH, error_version},
    {"36-authenticate.request.hex", ITS_WIRE_OP_AUTHENTICATE, REQ, 36, 0, authenticate},
    {"36-authenticate.reply.hex", ITS_WIRE_OP_AUTHENTICATE, REP, 36, 0, NULL},
    {"37-wait_ack.request.hex", ITS_WIRE_OP_WAIT_ACK, REQ, 37, 0, wait_ack},
    {"37-wait_ack.reply.hex", ITS_WIRE_OP_WAIT_ACK, REP, 37, 0, lpi_8192},
    {"38-wake.request.hex", ITS_WIRE_OP_WAKE, REQ, 38, 0, vcpu_1_0},
    {"38-wake.reply.hex", ITS_WIRE_OP_WAKE, REP, 38, 0, NULL},
    {"39-set_ack_slot.request.hex", ITS_WIRE_OP_SET_ACK_SLOT, REQ, 39, 0, set_ack_slot},
    {"39-set_ack_slot.reply.hex", ITS_WIRE_OP_SET_ACK_SLOT, REP, 39, 0, NULL},
    {"40-clear_ack_slot.request.hex", ITS_WIRE_OP_CLEAR_ACK_SLOT, REQ, 40, 0, vcpu_1_2},
    {"40-clear_ack_slot.reply.hex", ITS_WIRE_OP_CLEAR_ACK_SLOT, REP, 40, 0, NULL},
    {"41-ack_more.request.hex", ITS_WIRE_OP_ACK, REQ, 41, 0, ack_all},
    {"41-ack_more.reply.hex", ITS_WIRE_OP_ACK, REP, 41, 0, lpi_8193_more},
};
const size_t session_vector_count = sizeof session_vectors / sizeof session_vectors[0];
