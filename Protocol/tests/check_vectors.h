/*
 * check_vectors.h - what the parts of check_vectors share: the failure count, the CHECK and READ
 * macros, an output buffer to build the expected frame in, and the table row of one golden vector.
 */
#ifndef CHECK_VECTORS_H
#define CHECK_VECTORS_H

#include "its_wire.h"

#include <stdio.h>
#include <string.h>

#define MAX_FRAME 8192

/* Failed checks so far, and the vector being checked (for messages). Defined in check_vectors.c. */
extern int failures;
extern const char *current;

/* Counts and reports a failed check, and goes on. */
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s: %s:%d: failed: %s\n", current, __FILE__, __LINE__, #cond); \
            failures++;                                                               \
        }                                                                             \
    } while (0)

/* Copies a struct of the payload out of the received bytes (bounded by the zero-filled buffer). */
#define READ(type, var, at)                      \
    type var;                                    \
    CHECK((size_t)(at) + sizeof(type) <= len);   \
    memcpy(&var, in + (at), sizeof var)

struct out {
    uint8_t bytes[MAX_FRAME];
    size_t length;
};

static inline void put(struct out *out, const void *data, size_t size) {
    memcpy(out->bytes + out->length, data, size);
    out->length += size;
}

static inline void put_zeros(struct out *out, size_t size) {
    memset(out->bytes + out->length, 0, size);
    out->length += size;
}

static inline void put_u64(struct out *out, uint64_t value) { put(out, &value, sizeof value); }

static inline uint64_t get_u64(const uint8_t *in, size_t at) {
    uint64_t value;
    memcpy(&value, in + at, sizeof value);
    return value;
}

/* The flags of a vector's frame. */
#define REQ 0u
#define REP ITS_WIRE_FLAG_REPLY
#define ERR (ITS_WIRE_FLAG_REPLY | ITS_WIRE_FLAG_ERROR)
#define EVT ITS_WIRE_FLAG_EVENT

/* One golden vector: its file, the header it must carry, and the function that checks its payload. */
struct vector {
    const char *file;
    uint16_t opcode, flags;
    uint32_t id, status;
    void (*payload)(const uint8_t *in, size_t len, struct out *out); /* NULL: no payload */
};

/* The vectors, in two tables by the part of PROTOCOL.md they cover. */
extern const struct vector session_vectors[];   /* vectors_session.c: sections 3 to 6.16, 5, errors */
extern const size_t session_vector_count;
extern const struct vector state_vectors[];     /* vectors_state.c: sections 6.17 to 6.19 */
extern const size_t state_vector_count;

#endif /* CHECK_VECTORS_H */
