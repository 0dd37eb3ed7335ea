/*
 * vectors_state.c - the golden vectors of STATS, DUMP, SNAPSHOT_VM and RESTORE_VM: each payload
 * function checks the received payload `in` (len bytes) against PROTOCOL.md and builds the expected one.
 */
#include "check_vectors.h"

static const char image[12] = {'I', 'T', 'S', 'S', 'N', 'A', 'P', 1, 0, 0, 0, 0x2A};

static void stats_request(const uint8_t *in, size_t len, struct out *out, uint32_t vm, uint32_t flags) {
    READ(struct its_wire_stats, s, 0);
    CHECK(s.vm == vm && s.flags == flags);
    struct its_wire_stats e = {vm, flags};
    put(out, &e, sizeof e);
}
static void stats_schema(const uint8_t *in, size_t len, struct out *out) {
    stats_request(in, len, out, 1, ITS_WIRE_STATS_INCLUDE_SCHEMA);
}
static void stats_all(const uint8_t *in, size_t len, struct out *out) { stats_request(in, len, out, ITS_WIRE_VM_ALL, 0); }

struct stat_spec {
    uint8_t kind, unit;
    const char *name, *help;
    uint16_t buckets;
    uint64_t bounds[3];
    uint32_t slots;
    uint64_t values[6];
};
static const struct stat_spec stats[3] = {
    {ITS_WIRE_STAT_COUNTER, ITS_WIRE_UNIT_NONE, "lpis_injected_total", "LPIs made pending", 0, {0}, 1, {1234}},
    {ITS_WIRE_STAT_GAUGE, ITS_WIRE_UNIT_NONE, "vcpus_pending", "vCPUs with a deliverable LPI", 0, {0}, 1, {2}},
    {ITS_WIRE_STAT_HISTOGRAM, ITS_WIRE_UNIT_NANOSECONDS, "inject_latency_ns", "Decode to pending", 3,
     {1000, 10000, 100000}, 6, {10, 42000, 3, 5, 2, 0}},
};

/* Walks a STATS reply with the header's structs, checking each field, and builds the expected one. */
static void stats_reply(const uint8_t *in, size_t len, struct out *out, int with_schema) {
    READ(struct its_wire_stats_reply, r, 0);
    CHECK(r.schema_id == 0x5EED && r.stat_count == 3);
    CHECK(r.flags == (with_schema ? ITS_WIRE_STATS_SCHEMA_INCLUDED : 0u));
    struct its_wire_stats_reply e = {0x5EED, 3, with_schema ? ITS_WIRE_STATS_SCHEMA_INCLUDED : 0u};
    put(out, &e, sizeof e);
    size_t at = sizeof r;
    for (int i = 0; with_schema && i < 3; i++) {
        const struct stat_spec *s = &stats[i];
        READ(struct its_wire_stat_descriptor, d, at);
        size_t name_length = strlen(s->name), help_length = strlen(s->help);
        CHECK(d.kind == s->kind && d.unit == s->unit && d.bucket_count == s->buckets);
        CHECK(d.name_length == name_length && d.help_length == help_length);
        at += sizeof d;
        CHECK(at + name_length + help_length <= len);
        CHECK(memcmp(in + at, s->name, name_length) == 0);
        CHECK(memcmp(in + at + name_length, s->help, help_length) == 0);
        at += name_length + help_length + ITS_WIRE_PAD8(name_length + help_length);
        for (int b = 0; b < s->buckets; b++, at += 8) CHECK(get_u64(in, at) == s->bounds[b]);
        struct its_wire_stat_descriptor ed = {s->kind, s->unit, s->buckets, (uint16_t)name_length,
                                              (uint16_t)help_length};
        put(out, &ed, sizeof ed);
        put(out, s->name, name_length);
        put(out, s->help, help_length);
        put_zeros(out, ITS_WIRE_PAD8(name_length + help_length));
        for (int b = 0; b < s->buckets; b++) put_u64(out, s->bounds[b]);
    }
    for (int i = 0; i < 3; i++) {
        const struct stat_spec *s = &stats[i];
        READ(struct its_wire_stat_value, v, at);
        CHECK(v.kind == s->kind && v.slot_count == s->slots);
        at += sizeof v;
        for (uint32_t k = 0; k < s->slots; k++, at += 8) CHECK(get_u64(in, at) == s->values[k]);
        struct its_wire_stat_value ev = {s->kind, {0, 0, 0}, s->slots};
        put(out, &ev, sizeof ev);
        for (uint32_t k = 0; k < s->slots; k++) put_u64(out, s->values[k]);
    }
    CHECK(at == len);
}
static void stats_reply_schema(const uint8_t *in, size_t len, struct out *out) { stats_reply(in, len, out, 1); }
static void stats_reply_values(const uint8_t *in, size_t len, struct out *out) { stats_reply(in, len, out, 0); }

static void dump(const uint8_t *in, size_t len, struct out *out, uint16_t section, uint64_t cursor, uint32_t max) {
    READ(struct its_wire_dump, d, 0);
    CHECK(d.vm == 1 && d.section == section && d.cursor == cursor && d.max_entries == max);
    struct its_wire_dump e = {1, section, 0, cursor, max, 0};
    put(out, &e, sizeof e);
}
static void dump_devices(const uint8_t *in, size_t len, struct out *out) { dump(in, len, out, ITS_WIRE_DUMP_DEVICES, 0, 64); }
static void dump_itt(const uint8_t *in, size_t len, struct out *out) { dump(in, len, out, ITS_WIRE_DUMP_ITT, 0, 2); }
static void dump_collections(const uint8_t *in, size_t len, struct out *out) {
    dump(in, len, out, ITS_WIRE_DUMP_COLLECTIONS, 0, 64);
}
static void dump_lpis(const uint8_t *in, size_t len, struct out *out) { dump(in, len, out, ITS_WIRE_DUMP_LPIS, 8192, 64); }

static void dump_reply_head(const uint8_t *in, size_t len, struct out *out, uint16_t section, uint16_t size,
                            uint32_t count, uint64_t next) {
    READ(struct its_wire_dump_reply, r, 0);
    CHECK(r.vm == 1 && r.section == section && r.entry_size == size && r.count == count && r.next_cursor == next);
    CHECK(len == sizeof r + (size_t)r.count * r.entry_size);
    struct its_wire_dump_reply e = {1, section, size, count, 0, next};
    put(out, &e, sizeof e);
}

static void dump_devices_reply(const uint8_t *in, size_t len, struct out *out) {
    dump_reply_head(in, len, out, ITS_WIRE_DUMP_DEVICES, 16, 1, ITS_WIRE_DUMP_END);
    READ(struct its_wire_dump_device, d, 24);
    CHECK(d.device_id == 0x100 && d.event_id_bits == 5 && d.itt_address == 0x48000000u);
    struct its_wire_dump_device e = {0x100, 5, {0, 0, 0}, 0x48000000u};
    put(out, &e, sizeof e);
}

static void dump_itt_reply(const uint8_t *in, size_t len, struct out *out) {
    dump_reply_head(in, len, out, ITS_WIRE_DUMP_ITT, 16, 2, 2);
    READ(struct its_wire_dump_itte, a, 24);
    READ(struct its_wire_dump_itte, b, 40);
    CHECK(a.device_id == 0x100 && a.event_id == 0 && a.intid == 8192 && a.icid == 0);
    CHECK(b.device_id == 0x100 && b.event_id == 1 && b.intid == 8193 && b.icid == 1);
    struct its_wire_dump_itte e1 = {0x100, 0, 8192, 0, 0}, e2 = {0x100, 1, 8193, 1, 0};
    put(out, &e1, sizeof e1);
    put(out, &e2, sizeof e2);
}

static void dump_collections_reply(const uint8_t *in, size_t len, struct out *out) {
    dump_reply_head(in, len, out, ITS_WIRE_DUMP_COLLECTIONS, 8, 2, ITS_WIRE_DUMP_END);
    READ(struct its_wire_dump_collection, a, 24);
    READ(struct its_wire_dump_collection, b, 32);
    CHECK(a.icid == 0 && a.vcpu == 0 && b.icid == 1 && b.vcpu == 3);
    struct its_wire_dump_collection e1 = {0, 0, 0}, e2 = {1, 3, 0};
    put(out, &e1, sizeof e1);
    put(out, &e2, sizeof e2);
}

static void dump_lpis_reply(const uint8_t *in, size_t len, struct out *out) {
    dump_reply_head(in, len, out, ITS_WIRE_DUMP_LPIS, 8, 2, ITS_WIRE_DUMP_END);
    READ(struct its_wire_dump_lpi, a, 24);
    READ(struct its_wire_dump_lpi, b, 32);
    CHECK(a.intid == 8192 && a.priority == 0xA0 && a.flags == (ITS_WIRE_LPI_ENABLED | ITS_WIRE_LPI_PENDING));
    CHECK(a.vcpu == 0);
    CHECK(b.intid == 8193 && b.priority == 0x80 && b.flags == ITS_WIRE_LPI_ENABLED && b.vcpu == 1);
    struct its_wire_dump_lpi e1 = {8192, 0xA0, ITS_WIRE_LPI_ENABLED | ITS_WIRE_LPI_PENDING, 0};
    struct its_wire_dump_lpi e2 = {8193, 0x80, ITS_WIRE_LPI_ENABLED, 1};
    put(out, &e1, sizeof e1);
    put(out, &e2, sizeof e2);
}

static void snapshot_vm(const uint8_t *in, size_t len, struct out *out) {
    READ(struct its_wire_snapshot_vm, s, 0);
    CHECK(s.vm == 1 && s.max_bytes == 4096 && s.offset == 0);
    struct its_wire_snapshot_vm e = {1, 4096, 0};
    put(out, &e, sizeof e);
}

static void chunk(const uint8_t *in, size_t len, struct out *out, uint32_t vm) {
    READ(struct its_wire_chunk, c, 0);
    CHECK(c.vm == vm && c.chunk_length == 12 && c.offset == 0 && c.total_length == 12);
    CHECK(c.flags == ITS_WIRE_CHUNK_LAST);
    CHECK(len == sizeof c + c.chunk_length + ITS_WIRE_PAD8(c.chunk_length));
    CHECK(memcmp(in + sizeof c, image, sizeof image) == 0);
    struct its_wire_chunk e = {vm, 12, 0, 12, ITS_WIRE_CHUNK_LAST, 0};
    put(out, &e, sizeof e);
    put(out, image, sizeof image);
    put_zeros(out, ITS_WIRE_PAD8(sizeof image));
}
static void chunk_vm1(const uint8_t *in, size_t len, struct out *out) { chunk(in, len, out, 1); }
static void chunk_vm2(const uint8_t *in, size_t len, struct out *out) { chunk(in, len, out, 2); }

const struct vector state_vectors[] = {
    {"23-stats.request.hex", ITS_WIRE_OP_STATS, REQ, 23, 0, stats_schema},
    {"23-stats.reply.hex", ITS_WIRE_OP_STATS, REP, 23, 0, stats_reply_schema},
    {"24-stats_values.request.hex", ITS_WIRE_OP_STATS, REQ, 24, 0, stats_all},
    {"24-stats_values.reply.hex", ITS_WIRE_OP_STATS, REP, 24, 0, stats_reply_values},
    {"25-dump_devices.request.hex", ITS_WIRE_OP_DUMP, REQ, 25, 0, dump_devices},
    {"25-dump_devices.reply.hex", ITS_WIRE_OP_DUMP, REP, 25, 0, dump_devices_reply},
    {"26-dump_itt.request.hex", ITS_WIRE_OP_DUMP, REQ, 26, 0, dump_itt},
    {"26-dump_itt.reply.hex", ITS_WIRE_OP_DUMP, REP, 26, 0, dump_itt_reply},
    {"27-dump_collections.request.hex", ITS_WIRE_OP_DUMP, REQ, 27, 0, dump_collections},
    {"27-dump_collections.reply.hex", ITS_WIRE_OP_DUMP, REP, 27, 0, dump_collections_reply},
    {"28-dump_lpis.request.hex", ITS_WIRE_OP_DUMP, REQ, 28, 0, dump_lpis},
    {"28-dump_lpis.reply.hex", ITS_WIRE_OP_DUMP, REP, 28, 0, dump_lpis_reply},
    {"29-snapshot_vm.request.hex", ITS_WIRE_OP_SNAPSHOT_VM, REQ, 29, 0, snapshot_vm},
    {"29-snapshot_vm.reply.hex", ITS_WIRE_OP_SNAPSHOT_VM, REP, 29, 0, chunk_vm1},
    {"30-restore_vm.request.hex", ITS_WIRE_OP_RESTORE_VM, REQ, 30, 0, chunk_vm2},
    {"30-restore_vm.reply.hex", ITS_WIRE_OP_RESTORE_VM, REP, 30, 0, NULL},
};
const size_t state_vector_count = sizeof state_vectors / sizeof state_vectors[0];
