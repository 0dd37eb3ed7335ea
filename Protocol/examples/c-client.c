/*
 * c-client.c - an itsd client in C11 with only its_wire.h and libc.
 *
 * Runs the whole flow a VMM and its guest go through, against the itsd listening on the Unix socket
 * named by the only argument (PROTOCOL.md sections 3, 4 and 6):
 *
 *   HELLO; CREATE_VM (2 vCPUs); a memfd sealed against shrinking as guest RAM (ADD_MEM_REGION);
 *   the guest driver's work through MMIO_WRITE and guest memory: the LPI configuration table, one
 *   pending table per vCPU, GICR_PROPBASER, GICR_PENDBASER and GICR_CTLR.EnableLPIs on every
 *   redistributor, the Device and Collection tables (GITS_BASER<n>, found by their Type), the
 *   command queue (GITS_CBASER), GITS_CTLR.Enabled, then MAPD, MAPC, MAPTI and SYNC through the
 *   queue and GITS_CWRITER, polling GITS_CREADR until it catches up; SET_VCPU_NOTIFY with an
 *   eventfd; one MSI each by INJECT, INJECT_BATCH, a bound eventfd (BIND_IRQFD) and a write to
 *   GITS_TRANSLATER; a wait on the notify eventfd; HPPI and ACK until every injected LPI is taken;
 *   WAKE and WAIT_ACK (added in 1.1): a latched wake ends a wait at once, a short wait times out;
 *   an acknowledge slot (added in 1.2): a sealed memfd's word armed, SET_ACK_SLOT, an MSI the server
 *   delivers into the slot before it writes the notify eventfd, the take by compare-and-swap,
 *   CLEAR_ACK_SLOT; DESTROY_VM.
 *
 * Every reply is checked. Exits 0 when the flow completes, 1 with a message naming the failed step
 * on stderr otherwise, 2 on bad usage.
 *
 * Build: gcc -std=c11 -Wall -Wextra -Werror -pedantic -I.. c-client.c (Protocol/Makefile, c-client).
 */
#define _GNU_SOURCE 1 /* memfd_create, MFD_*, F_ADD_SEALS */

#include "its_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* GICv3 register offsets (IHI 0069, 12.19 for the ITS, 12.11 for RD_base). */
#define GITS_CTLR 0x0000u
#define GITS_TYPER 0x0008u
#define GITS_CBASER 0x0080u
#define GITS_CWRITER 0x0088u
#define GITS_CREADR 0x0090u
#define GITS_BASER(n) (0x0100u + 8u * (n))
#define GICR_CTLR 0x0000u
#define GICR_TYPER 0x0008u
#define GICR_PROPBASER 0x0070u
#define GICR_PENDBASER 0x0078u

#define BASER_VALID (UINT64_C(1) << 63)
#define BASER_TYPE(v) (((v) >> 56) & 0x7u)
#define BASER_TYPE_DEVICES 1u
#define BASER_TYPE_COLLECTIONS 4u
#define BASER_ENTRY_SIZE(v) ((((v) >> 48) & 0x1Fu) + 1u)
#define PENDBASER_PTZ (UINT64_C(1) << 62)
#define TYPER_PTA (UINT64_C(1) << 19)

/* ITS commands (IHI 0069, 5.3): DW0[7:0] is the command number. */
#define CMD_SYNC 0x05u
#define CMD_MAPD 0x08u
#define CMD_MAPC 0x09u
#define CMD_MAPTI 0x0Au
#define CMD_BYTES 32u

/* The guest's memory map: one 8 MiB region at guest address 0. */
#define RAM_SIZE (UINT64_C(8) << 20)
#define PROP_TABLE UINT64_C(0x100000)    /* LPI configuration table, 4K aligned */
#define PEND_TABLES UINT64_C(0x200000)   /* one 64K-aligned pending table per vCPU */
#define COMMAND_QUEUE UINT64_C(0x400000) /* one 4K page: 128 commands */
#define DEVICE_TABLE UINT64_C(0x500000)
#define COLLECTION_TABLE UINT64_C(0x600000)
#define ITT_BASE UINT64_C(0x700000)

/* The VM and what the flow maps: DeviceID 7, EventIDs 0-3 -> LPIs 8192-8195, collection 0 -> vCPU 1. */
#define VCPUS 2u
#define ID_BITS 16u
#define DEVICE 7u
#define EVENT_BITS 8u
#define LPIS 4u
#define FIRST_LPI 8192u
#define COLLECTION 0u
#define TARGET_VCPU 1u
#define LPI_CONFIG 0xA3u /* priority 0xA0, bit 1 RES1, bit 0 Enable */

#define TIMEOUT_MS 5000

static const char *step = "start";

static void die(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "c-client: %s failed: ", step);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static const char *status_name(uint32_t status) {
    switch (status) {
    case ITS_WIRE_TRUNCATED: return "TRUNCATED";
    case ITS_WIRE_TRAILING_BYTES: return "TRAILING_BYTES";
    case ITS_WIRE_LENGTH_BELOW_HEADER: return "LENGTH_BELOW_HEADER";
    case ITS_WIRE_FRAME_TOO_LARGE: return "FRAME_TOO_LARGE";
    case ITS_WIRE_UNKNOWN_OPCODE: return "UNKNOWN_OPCODE";
    case ITS_WIRE_RESERVED_FLAGS: return "RESERVED_FLAGS";
    case ITS_WIRE_FLAG_CONFLICT: return "FLAG_CONFLICT";
    case ITS_WIRE_FD_COUNT_MISMATCH: return "FD_COUNT_MISMATCH";
    case ITS_WIRE_BATCH_COUNT_MISMATCH: return "BATCH_COUNT_MISMATCH";
    case ITS_WIRE_NONZERO_PADDING: return "NONZERO_PADDING";
    case ITS_WIRE_BAD_STRING: return "BAD_STRING";
    case ITS_WIRE_BAD_VALUE: return "BAD_VALUE";
    case ITS_WIRE_VERSION_MISMATCH: return "VERSION_MISMATCH";
    case ITS_WIRE_NOT_HELLO_FIRST: return "NOT_HELLO_FIRST";
    case ITS_WIRE_HELLO_REPEATED: return "HELLO_REPEATED";
    case ITS_WIRE_FD_NOT_ALLOWED_ON_TCP: return "FD_NOT_ALLOWED_ON_TCP";
    case ITS_WIRE_BAD_FD: return "BAD_FD";
    case ITS_WIRE_CAPABILITY_NOT_AGREED: return "CAPABILITY_NOT_AGREED";
    case ITS_WIRE_NO_SUCH_VM: return "NO_SUCH_VM";
    case ITS_WIRE_BAD_TOKEN: return "BAD_TOKEN";
    case ITS_WIRE_NOT_ATTACHED: return "NOT_ATTACHED";
    case ITS_WIRE_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case ITS_WIRE_NO_SUCH_VCPU: return "NO_SUCH_VCPU";
    case ITS_WIRE_BAD_VM_CONFIG: return "BAD_VM_CONFIG";
    case ITS_WIRE_BAD_MEM_REGION: return "BAD_MEM_REGION";
    case ITS_WIRE_MEM_REGION_OVERLAP: return "MEM_REGION_OVERLAP";
    case ITS_WIRE_NO_SUCH_MEM_REGION: return "NO_SUCH_MEM_REGION";
    case ITS_WIRE_BAD_MMIO_FRAME: return "BAD_MMIO_FRAME";
    case ITS_WIRE_BAD_MMIO_OFFSET: return "BAD_MMIO_OFFSET";
    case ITS_WIRE_BAD_MMIO_WIDTH: return "BAD_MMIO_WIDTH";
    case ITS_WIRE_TRANSLATION_BLOCKED: return "TRANSLATION_BLOCKED";
    case ITS_WIRE_ITS_DISABLED: return "ITS_DISABLED";
    case ITS_WIRE_NOT_BOUND: return "NOT_BOUND";
    case ITS_WIRE_ALREADY_BOUND: return "ALREADY_BOUND";
    case ITS_WIRE_LIMIT_EXCEEDED: return "LIMIT_EXCEEDED";
    case ITS_WIRE_BUSY: return "BUSY";
    case ITS_WIRE_BAD_CURSOR: return "BAD_CURSOR";
    case ITS_WIRE_BAD_SNAPSHOT: return "BAD_SNAPSHOT";
    case ITS_WIRE_INTERNAL: return "INTERNAL";
    default: return "an unknown status";
    }
}

/* ---- The connection ---------------------------------------------------------------------------- */

struct connection {
    int fd;
    uint32_t next_id;
    uint32_t max_frame_length; /* 4096 until HELLO's reply agrees another */
    uint8_t frame[ITS_WIRE_SERVER_MAX_FRAME_LENGTH];
};

static struct connection conn;

static void connect_to(const char *path) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address.sun_path) die("socket path longer than %zu bytes", sizeof address.sun_path - 1);
    memcpy(address.sun_path, path, strlen(path));
    conn.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (conn.fd < 0) die("socket: %s", strerror(errno));
    /* A server that stops answering makes a receive fail instead of hanging the client. */
    struct timeval timeout = {.tv_sec = TIMEOUT_MS / 1000, .tv_usec = 0};
    if (setsockopt(conn.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) die("SO_RCVTIMEO: %s", strerror(errno));
    if (connect(conn.fd, (const struct sockaddr *)&address, sizeof address) != 0) die("connect %s: %s", path, strerror(errno));
    conn.next_id = 1;
    conn.max_frame_length = ITS_WIRE_PRE_HELLO_MAX_FRAME_LENGTH;
}

/* Sends one request frame; `fd` (or -1) travels as SCM_RIGHTS in the same sendmsg (section 4). */
static uint32_t send_request(uint16_t opcode, const void *payload, size_t payload_length, int fd) {
    uint8_t bytes[64 + ITS_WIRE_HEADER_LENGTH];
    if (ITS_WIRE_HEADER_LENGTH + payload_length > sizeof bytes) die("request of %zu bytes is too long for this client", payload_length);
    struct its_wire_header header = {
        .length = (uint32_t)(ITS_WIRE_HEADER_LENGTH + payload_length),
        .opcode = opcode,
        .flags = 0,
        .message_id = conn.next_id++,
        .status = 0,
    };
    memcpy(bytes, &header, sizeof header);
    if (payload_length > 0) memcpy(bytes + sizeof header, payload, payload_length);

    struct iovec iov = {.iov_base = bytes, .iov_len = header.length};
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        message.msg_control = control.buffer;
        message.msg_controllen = sizeof control.buffer;
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    }
    ssize_t sent;
    do {
        sent = sendmsg(conn.fd, &message, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) die("sendmsg: %s", strerror(errno));
    if ((size_t)sent != header.length) die("sendmsg sent %zd of %u bytes", sent, header.length);
    return header.message_id;
}

static void receive_exactly(void *buffer, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t n = recv(conn.fd, (uint8_t *)buffer + done, length - done, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) die("no reply within %d ms", TIMEOUT_MS);
        if (n < 0) die("recv: %s", strerror(errno));
        if (n == 0) die("itsd closed the connection");
        done += (size_t)n;
    }
}

/*
 * Receives the reply to request `id` into conn.frame and returns its payload length. An error reply
 * ends the client with its status, detail and text. Events are skipped (this client subscribes to
 * none, so there should be none).
 */
static size_t receive_reply(uint16_t opcode, uint32_t id) {
    for (;;) {
        struct its_wire_header header;
        receive_exactly(&header, sizeof header);
        if (header.length < ITS_WIRE_HEADER_LENGTH || header.length > conn.max_frame_length) {
            die("the server sent a frame of %u bytes (limit %u)", header.length, conn.max_frame_length);
        }
        size_t payload_length = header.length - ITS_WIRE_HEADER_LENGTH;
        receive_exactly(conn.frame, payload_length);
        if (header.flags == ITS_WIRE_FLAG_EVENT) continue;
        if (!(header.flags & ITS_WIRE_FLAG_REPLY)) die("frame with flags 0x%x is not a reply", header.flags);
        if (header.message_id != id) die("reply to message %u while waiting for %u", header.message_id, id);
        if (header.flags & ITS_WIRE_FLAG_ERROR) {
            struct its_wire_error error;
            memset(&error, 0, sizeof error);
            if (payload_length >= sizeof error) memcpy(&error, conn.frame, sizeof error);
            int text_length = error.text_length <= payload_length - sizeof error ? error.text_length : 0;
            die("%s (status %u), detail %u%s%.*s", status_name(header.status), header.status, error.detail,
                text_length > 0 ? ": " : "", text_length, (const char *)conn.frame + sizeof error);
        }
        if (header.opcode != opcode) die("reply has opcode 0x%04x, request had 0x%04x", header.opcode, opcode);
        if (header.status != ITS_WIRE_OK) die("a reply without ERROR has status %u", header.status);
        return payload_length;
    }
}

/* One request and its reply; the reply's payload must be `reply_length` bytes (copied to `reply`). */
static void call(uint16_t opcode, const void *request, size_t request_length, int fd, void *reply, size_t reply_length) {
    uint32_t id = send_request(opcode, request, request_length, fd);
    size_t got = receive_reply(opcode, id);
    if (got != reply_length) die("reply payload is %zu bytes, expected %zu", got, reply_length);
    if (reply_length > 0) memcpy(reply, conn.frame, reply_length);
}

/* ---- Requests ---------------------------------------------------------------------------------- */

static uint32_t vm;

static uint64_t mmio_read(uint8_t frame_kind, uint16_t frame_index, uint64_t offset, uint8_t width) {
    struct its_wire_mmio_read request = {.vm = vm, .frame_kind = frame_kind, .width = width, .frame_index = frame_index, .offset = offset};
    struct its_wire_mmio_read_reply reply;
    call(ITS_WIRE_OP_MMIO_READ, &request, sizeof request, -1, &reply, sizeof reply);
    return reply.value;
}

static void mmio_write(uint8_t frame_kind, uint16_t frame_index, uint64_t offset, uint8_t width, uint64_t value, uint32_t device_id) {
    struct its_wire_mmio_write request;
    memset(&request, 0, sizeof request);
    request.vm = vm;
    request.frame_kind = frame_kind;
    request.width = width;
    request.frame_index = frame_index;
    request.offset = offset;
    request.value = value;
    request.device_id = device_id;
    call(ITS_WIRE_OP_MMIO_WRITE, &request, sizeof request, -1, NULL, 0);
}

static uint64_t its_read(uint64_t offset, uint8_t width) { return mmio_read(ITS_WIRE_FRAME_ITS, 0, offset, width); }
static void its_write(uint64_t offset, uint8_t width, uint64_t value) { mmio_write(ITS_WIRE_FRAME_ITS, 0, offset, width, value, 0); }

/* HPPI or ACK on the target vCPU: the INTID, or ITS_WIRE_INTID_NONE. */
static uint32_t take(uint16_t opcode) {
    struct its_wire_lpi reply;
    if (opcode == ITS_WIRE_OP_HPPI) {
        struct its_wire_vcpu_ref request = {.vm = vm, .vcpu = TARGET_VCPU, .reserved = 0};
        call(opcode, &request, sizeof request, -1, &reply, sizeof reply);
    } else {
        struct its_wire_ack request = {.vm = vm, .vcpu = TARGET_VCPU, .priority_mask = 0xFF, .reserved = 0};
        call(opcode, &request, sizeof request, -1, &reply, sizeof reply);
    }
    return reply.intid;
}

/* WAIT_ACK on the target vCPU (added in 1.1): the INTID it acknowledged, or ITS_WIRE_INTID_NONE. */
static uint32_t wait_ack(uint32_t timeout_us) {
    struct its_wire_wait_ack request = {.vm = vm, .vcpu = TARGET_VCPU, .priority_mask = 0xFF, .reserved = 0,
                                        .timeout_us = timeout_us, .reserved2 = 0};
    struct its_wire_lpi reply;
    call(ITS_WIRE_OP_WAIT_ACK, &request, sizeof request, -1, &reply, sizeof reply);
    return reply.intid;
}

/* ---- Guest memory ------------------------------------------------------------------------------ */

static uint8_t *ram;

static void guest_write64(uint64_t address, uint64_t value) { memcpy(ram + address, &value, sizeof value); }

/* Appends one command at GITS_CWRITER's offset `*writer` in the queue. */
static void queue_command(uint64_t *writer, uint64_t dw0, uint64_t dw1, uint64_t dw2, uint64_t dw3) {
    uint64_t words[4] = {dw0, dw1, dw2, dw3};
    for (unsigned i = 0; i < 4; i++) guest_write64(COMMAND_QUEUE + *writer + 8u * i, words[i]);
    *writer += CMD_BYTES;
}

static long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void sleep_ms(long milliseconds) {
    struct timespec pause = {.tv_sec = milliseconds / 1000, .tv_nsec = (milliseconds % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
}

/* Waits up to `timeout_ms` for the eventfd to be signalled and reads (resets) its counter. */
static bool wait_eventfd(int fd, int timeout_ms) {
    struct pollfd entry = {.fd = fd, .events = POLLIN, .revents = 0};
    int ready;
    do {
        ready = poll(&entry, 1, timeout_ms);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) die("poll: %s", strerror(errno));
    if (ready == 0) return false;
    uint64_t counter;
    if (read(fd, &counter, sizeof counter) != (ssize_t)sizeof counter) die("read eventfd: %s", strerror(errno));
    return true;
}

/* ---- The flow ---------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
        return 2;
    }

    step = "connect";
    connect_to(argv[1]);

    step = "HELLO";
    struct its_wire_hello hello;
    memset(&hello, 0, sizeof hello);
    hello.major = ITS_WIRE_MAJOR;
    hello.minor = ITS_WIRE_MINOR;
    hello.capabilities = ITS_WIRE_CAP_ERROR_REPORTS; /* limits 0: the defaults */
    struct its_wire_hello agreed;
    call(ITS_WIRE_OP_HELLO, &hello, sizeof hello, -1, &agreed, sizeof agreed);
    if (agreed.major != ITS_WIRE_MAJOR) die("server answered major version %u", agreed.major);
    if (agreed.max_frame_length < ITS_WIRE_MIN_MAX_FRAME_LENGTH || agreed.max_frame_length > ITS_WIRE_SERVER_MAX_FRAME_LENGTH) {
        die("agreed max_frame_length %u is out of range", agreed.max_frame_length);
    }
    if (agreed.max_batch_entries == 0 || agreed.max_in_flight == 0) die("the reply holds a 0 limit");
    conn.max_frame_length = agreed.max_frame_length;

    step = "CREATE_VM";
    struct its_wire_create_vm config = {.vcpu_count = VCPUS, .device_id_bits = ID_BITS, .event_id_bits = ID_BITS, .intid_bits = ID_BITS};
    struct its_wire_vm_token created;
    call(ITS_WIRE_OP_CREATE_VM, &config, sizeof config, -1, &created, sizeof created);
    if (created.vm == 0 || created.vm == ITS_WIRE_VM_ALL) die("server returned VM id 0x%x", created.vm);
    vm = created.vm;

    step = "guest RAM memfd";
    int memfd = memfd_create("c-client-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0) die("memfd_create: %s", strerror(errno));
    if (ftruncate(memfd, (off_t)RAM_SIZE) != 0) die("ftruncate: %s", strerror(errno));
    if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) die("F_ADD_SEALS F_SEAL_SHRINK: %s", strerror(errno));
    void *mapped = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (mapped == MAP_FAILED) die("mmap: %s", strerror(errno));
    ram = mapped;

    step = "ADD_MEM_REGION";
    struct its_wire_add_mem_region region = {.vm = vm, .reserved = 0, .guest_address = 0, .size = RAM_SIZE, .file_offset = 0};
    call(ITS_WIRE_OP_ADD_MEM_REGION, &region, sizeof region, memfd, NULL, 0);
    close(memfd); /* the server holds its own reference (section 4, Ownership) */

    /* LPI configuration table: every LPI disabled (zero) except those the flow maps. */
    step = "redistributor setup";
    for (unsigned i = 0; i < LPIS; i++) ram[PROP_TABLE + i] = LPI_CONFIG;
    uint16_t target_processor = 0;
    for (uint16_t vcpu = 0; vcpu < VCPUS; vcpu++) {
        uint64_t typer = mmio_read(ITS_WIRE_FRAME_REDISTRIBUTOR, vcpu, GICR_TYPER, 8);
        if (((typer >> 8) & 0xFFFF) != vcpu) die("GICR_TYPER.Processor_Number of vCPU %u is %u", vcpu, (unsigned)((typer >> 8) & 0xFFFF));
        if (!(typer & 1)) die("GICR_TYPER.PLPIS is 0 on vCPU %u", vcpu);
        if (vcpu == TARGET_VCPU) target_processor = (uint16_t)((typer >> 8) & 0xFFFF);
        /* PROPBASER.IDbits = 15: 16 bits of INTID, as CREATE_VM asked; the pending table starts zeroed (PTZ). */
        mmio_write(ITS_WIRE_FRAME_REDISTRIBUTOR, vcpu, GICR_PROPBASER, 8, PROP_TABLE | (ID_BITS - 1), 0);
        mmio_write(ITS_WIRE_FRAME_REDISTRIBUTOR, vcpu, GICR_PENDBASER, 8, (PEND_TABLES + ((uint64_t)vcpu << 16)) | PENDBASER_PTZ, 0);
        mmio_write(ITS_WIRE_FRAME_REDISTRIBUTOR, vcpu, GICR_CTLR, 4, 1, 0);
        if (!(mmio_read(ITS_WIRE_FRAME_REDISTRIBUTOR, vcpu, GICR_CTLR, 4) & 1)) die("GICR_CTLR.EnableLPIs did not stick on vCPU %u", vcpu);
    }

    step = "ITS setup";
    uint64_t gits_typer = its_read(GITS_TYPER, 8);
    if (gits_typer & TYPER_PTA) die("GITS_TYPER.PTA is 1: collections would target physical addresses");
    uint64_t itt_entry_size = ((gits_typer >> 4) & 0xF) + 1;
    if ((UINT64_C(1) << EVENT_BITS) * itt_entry_size > COLLECTION_TABLE - DEVICE_TABLE) die("ITT entries of %u bytes do not fit", (unsigned)itt_entry_size);
    bool have_devices = false, have_collections = false;
    for (unsigned n = 0; n < 8; n++) {
        uint64_t baser = its_read(GITS_BASER(n), 8);
        uint64_t base;
        unsigned type = (unsigned)BASER_TYPE(baser);
        if (type == BASER_TYPE_DEVICES) {
            base = DEVICE_TABLE;
            have_devices = true;
            if ((DEVICE + 1) * BASER_ENTRY_SIZE(baser) > 4096) die("DeviceID %u is beyond one page of device table", DEVICE);
        } else if (type == BASER_TYPE_COLLECTIONS) {
            base = COLLECTION_TABLE;
            have_collections = true;
        } else {
            continue;
        }
        /* Valid, 4K pages, flat, Size 0: one page. */
        its_write(GITS_BASER(n), 8, BASER_VALID | base);
        if (!(its_read(GITS_BASER(n), 8) & BASER_VALID)) die("GITS_BASER%u did not take Valid", n);
    }
    if (!have_devices || !have_collections) die("no GITS_BASER<n> for %s", have_devices ? "collections" : "devices");
    its_write(GITS_CBASER, 8, BASER_VALID | COMMAND_QUEUE); /* Size 0: one 4K page */
    its_write(GITS_CTLR, 4, 1);
    if (!(its_read(GITS_CTLR, 4) & 1)) die("GITS_CTLR.Enabled did not stick");

    step = "command queue";
    uint64_t writer = its_read(GITS_CWRITER, 8);
    uint64_t rdbase = target_processor; /* PTA = 0: RDbase is the processor number */
    queue_command(&writer, (uint64_t)DEVICE << 32 | CMD_MAPD, EVENT_BITS - 1, BASER_VALID | ITT_BASE, 0);
    queue_command(&writer, CMD_MAPC, 0, BASER_VALID | rdbase << 16 | COLLECTION, 0);
    for (uint32_t event = 0; event < LPIS; event++) {
        queue_command(&writer, (uint64_t)DEVICE << 32 | CMD_MAPTI, (uint64_t)(FIRST_LPI + event) << 32 | event, COLLECTION, 0);
    }
    queue_command(&writer, CMD_SYNC, 0, rdbase << 16, 0);
    its_write(GITS_CWRITER, 8, writer);
    long long deadline = now_ms() + TIMEOUT_MS;
    uint64_t reader;
    while ((reader = its_read(GITS_CREADR, 8)) != writer) {
        if (reader & 1) die("GITS_CREADR.Stalled at offset 0x%llx", (unsigned long long)(reader & ~UINT64_C(1)));
        if (now_ms() > deadline) die("GITS_CREADR is 0x%llx after %d ms, GITS_CWRITER 0x%llx", (unsigned long long)reader, TIMEOUT_MS, (unsigned long long)writer);
        sleep_ms(1);
    }

    step = "SET_VCPU_NOTIFY";
    int notify = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (notify < 0) die("eventfd: %s", strerror(errno));
    struct its_wire_vcpu_ref notify_request = {.vm = vm, .vcpu = TARGET_VCPU, .reserved = 0};
    call(ITS_WIRE_OP_SET_VCPU_NOTIFY, &notify_request, sizeof notify_request, notify, NULL, 0);

    /* One MSI by each route: EventID 0 by INJECT, 1 by INJECT_BATCH, 2 by an irqfd, 3 by GITS_TRANSLATER. */
    step = "INJECT";
    struct its_wire_inject inject = {.vm = vm, .device_id = DEVICE, .event_id = 0, .reserved = 0};
    call(ITS_WIRE_OP_INJECT, &inject, sizeof inject, -1, NULL, 0);

    step = "INJECT_BATCH";
    struct {
        struct its_wire_inject_batch batch;
        struct its_wire_inject_entry entries[1];
    } batch = {.batch = {.vm = vm, .count = 1}, .entries = {{.device_id = DEVICE, .event_id = 1}}};
    _Static_assert(sizeof batch == 16, "INJECT_BATCH with one pair is 16 bytes");
    struct its_wire_inject_batch_reply injected;
    call(ITS_WIRE_OP_INJECT_BATCH, &batch, sizeof batch, -1, &injected, sizeof injected);
    if (injected.injected != 1 || injected.blocked != 0) die("%u injected and %u blocked, expected 1 and 0", injected.injected, injected.blocked);

    step = "BIND_IRQFD";
    int irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (irqfd < 0) die("eventfd: %s", strerror(errno));
    struct its_wire_bind_irqfd bind = {.vm = vm, .device_id = DEVICE, .event_id = 2, .flags = 0};
    call(ITS_WIRE_OP_BIND_IRQFD, &bind, sizeof bind, irqfd, NULL, 0);
    step = "irqfd signal";
    uint64_t one = 1;
    if (write(irqfd, &one, sizeof one) != (ssize_t)sizeof one) die("write eventfd: %s", strerror(errno));

    step = "GITS_TRANSLATER write";
    mmio_write(ITS_WIRE_FRAME_ITS, 0, ITS_WIRE_GITS_TRANSLATER, 4, 3, DEVICE);

    step = "vCPU notify eventfd";
    if (!wait_eventfd(notify, TIMEOUT_MS)) die("not signalled within %d ms", TIMEOUT_MS);

    /*
     * Take LPIs as the vCPU would: HPPI, then ACK, until ACK answers 1023. The irqfd's MSI travels
     * apart from this connection and may land after the vCPU ran dry; the notify eventfd then fires
     * again, so wait for it before concluding that an LPI is missing.
     */
    step = "HPPI/ACK";
    unsigned taken[LPIS] = {0};
    unsigned total = 0;
    deadline = now_ms() + TIMEOUT_MS;
    while (total < LPIS) {
        uint32_t highest = take(ITS_WIRE_OP_HPPI);
        uint32_t acked = take(ITS_WIRE_OP_ACK);
        if (acked == ITS_WIRE_INTID_NONE) {
            if (highest != ITS_WIRE_INTID_NONE) die("HPPI showed LPI %u but ACK returned 1023", highest);
            long long left = deadline - now_ms();
            if (left <= 0 || !wait_eventfd(notify, (int)left)) die("only %u of %u LPIs delivered within %d ms", total, LPIS, TIMEOUT_MS);
            continue;
        }
        if (acked < FIRST_LPI || acked >= FIRST_LPI + LPIS) die("ACK returned LPI %u, which the flow never mapped", acked);
        if (taken[acked - FIRST_LPI]++ > 0) die("LPI %u acknowledged twice", acked);
        total++;
    }
    if (take(ITS_WIRE_OP_HPPI) != ITS_WIRE_INTID_NONE) die("HPPI shows an LPI after all were taken");
    if (take(ITS_WIRE_OP_ACK) != ITS_WIRE_INTID_NONE) die("ACK returns an LPI after all were taken");

    /* Nothing is deliverable: a WAKE sent before the wait is latched and ends it at once, and the
     * wait after that runs into its 1 ms timeout. */
    step = "WAKE/WAIT_ACK";
    struct its_wire_vcpu_ref kick = {.vm = vm, .vcpu = TARGET_VCPU, .reserved = 0};
    call(ITS_WIRE_OP_WAKE, &kick, sizeof kick, -1, NULL, 0);
    if (wait_ack(ITS_WIRE_WAIT_FOREVER) != ITS_WIRE_INTID_NONE) die("WAIT_ACK after WAKE returned an LPI");
    if (wait_ack(1000) != ITS_WIRE_INTID_NONE) die("WAIT_ACK returned an LPI after all were taken");

    /* The acknowledge slot of the target vCPU: the server acknowledges the next LPI into the armed word
     * and then writes the notify eventfd; the vCPU takes it by compare-and-swap, with no ACK. */
    if (agreed.minor >= 2) {
        step = "acknowledge slot memfd";
        int slots = memfd_create("c-client-ack-slots", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (slots < 0) die("memfd_create: %s", strerror(errno));
        if (ftruncate(slots, 4096) != 0) die("ftruncate: %s", strerror(errno));
        if (fcntl(slots, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) die("F_ADD_SEALS: %s", strerror(errno));
        void *slot_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, slots, 0);
        if (slot_page == MAP_FAILED) die("mmap: %s", strerror(errno));
        /* One cache line per vCPU; the word is 8-byte aligned and lock-free on every 64-bit target. */
        _Atomic uint64_t *slot = (_Atomic uint64_t *)((uint8_t *)slot_page + 64u * TARGET_VCPU);

        step = "arm the slot";
        uint64_t word = atomic_load(slot);
        if (word != 0) die("a new slot holds 0x%llx, not IDLE", (unsigned long long)word);
        if (!atomic_compare_exchange_strong(slot, &word, ITS_WIRE_ACK_SLOT_WORD_ARMED(0xFF))) die("the word changed before SET");

        step = "SET_ACK_SLOT";
        struct its_wire_set_ack_slot set_slot = {.vm = vm, .vcpu = TARGET_VCPU, .reserved = 0, .offset = 64u * TARGET_VCPU};
        call(ITS_WIRE_OP_SET_ACK_SLOT, &set_slot, sizeof set_slot, slots, NULL, 0);
        close(slots); /* the server keeps its mapping of the page, not the descriptor */

        step = "INJECT into the slot";
        call(ITS_WIRE_OP_INJECT, &inject, sizeof inject, -1, NULL, 0);
        if (!wait_eventfd(notify, TIMEOUT_MS)) die("the notify eventfd was not written within %d ms", TIMEOUT_MS);

        step = "take from the slot";
        word = atomic_load(slot); /* after the eventfd: the server changed the word before writing it */
        if (word & ITS_WIRE_ACK_SLOT_RESERVED) die("the word 0x%llx has reserved bits set", (unsigned long long)word);
        if (ITS_WIRE_ACK_SLOT_STATE(word) != ITS_WIRE_ACK_SLOT_DELIVERED) die("the word 0x%llx is not DELIVERED", (unsigned long long)word);
        if (ITS_WIRE_ACK_SLOT_INTID(word) != FIRST_LPI || ITS_WIRE_ACK_SLOT_PRIORITY(word) != (LPI_CONFIG & 0xFCu)) {
            die("the slot holds LPI %u priority 0x%x", ITS_WIRE_ACK_SLOT_INTID(word), ITS_WIRE_ACK_SLOT_PRIORITY(word));
        }
        if (word & ITS_WIRE_ACK_SLOT_MORE) die("more is set with nothing else pending");
        if (!atomic_compare_exchange_strong(slot, &word, ITS_WIRE_ACK_SLOT_WORD_ARMED(0xFF))) die("the word changed under the take");
        if (take(ITS_WIRE_OP_HPPI) != ITS_WIRE_INTID_NONE) die("HPPI shows the LPI the slot took");

        step = "CLEAR_ACK_SLOT";
        struct its_wire_vcpu_ref clear_slot = {.vm = vm, .vcpu = TARGET_VCPU, .reserved = 0};
        call(ITS_WIRE_OP_CLEAR_ACK_SLOT, &clear_slot, sizeof clear_slot, -1, NULL, 0);
        munmap(slot_page, 4096);
    }

    step = "DESTROY_VM";
    struct its_wire_vm destroy = {.vm = vm, .reserved = 0};
    call(ITS_WIRE_OP_DESTROY_VM, &destroy, sizeof destroy, -1, NULL, 0);

    close(irqfd);
    close(notify);
    munmap(mapped, RAM_SIZE);
    close(conn.fd);
    printf("c-client: VM %u: LPIs %u-%u injected by INJECT, INJECT_BATCH, irqfd and GITS_TRANSLATER, all acknowledged\n", vm,
           FIRST_LPI, FIRST_LPI + LPIS - 1);
    if (agreed.minor >= 2) printf("c-client: LPI %u taken again from the acknowledge slot\n", FIRST_LPI);
    return 0;
}
