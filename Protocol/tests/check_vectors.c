/*
 * check_vectors.c - decodes every golden vector in Protocol/vectors with its_wire.h, checks its
 * fields against the values PROTOCOL.md gives, builds the same frame again from those values with
 * the header's structs, and compares the bytes. Also checks that no vector file is left unchecked.
 * The payloads of each message are in vectors_session.c and vectors_state.c.
 *
 * usage: check_vectors VECTOR_DIRECTORY
 */
#define _POSIX_C_SOURCE 200809L
#include "check_vectors.h"

#include <dirent.h>
#include <stdlib.h>

int failures;
const char *current;

/* Reads a vector: hex byte pairs, whitespace ignored, '#' to end of line a comment. */
static size_t read_hex(const char *path, uint8_t *bytes, size_t capacity) {
    FILE *file = fopen(path, "r");
    if (!file) {
        fprintf(stderr, "%s: cannot open\n", path);
        failures++;
        return 0;
    }
    size_t count = 0;
    int c, high = -1, comment = 0;
    while ((c = fgetc(file)) != EOF) {
        if (comment) {
            comment = c != '\n';
            continue;
        }
        if (c == '#') {
            comment = 1;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        int value = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (value < 0 || count >= capacity) {
            fprintf(stderr, "%s: bad character or too long\n", path);
            failures++;
            break;
        }
        if (high < 0) {
            high = value;
        } else {
            bytes[count++] = (uint8_t)(high << 4 | value);
            high = -1;
        }
    }
    if (high >= 0) {
        fprintf(stderr, "%s: odd number of hex digits\n", path);
        failures++;
    }
    fclose(file);
    return count;
}

static void check_vector(const char *directory, const struct vector *v) {
    static uint8_t bytes[MAX_FRAME];
    char path[4096];
    current = v->file;
    memset(bytes, 0, sizeof bytes);
    snprintf(path, sizeof path, "%s/%s", directory, v->file);
    size_t length = read_hex(path, bytes, sizeof bytes);
    CHECK(length >= ITS_WIRE_HEADER_LENGTH);
    if (length < ITS_WIRE_HEADER_LENGTH) return;

    struct its_wire_header header;
    memcpy(&header, bytes, sizeof header);
    CHECK(header.length == length);
    CHECK(header.opcode == v->opcode);
    CHECK(header.flags == v->flags);
    CHECK((header.flags & ~ITS_WIRE_FLAGS_DEFINED) == 0);
    CHECK(header.message_id == v->id);
    CHECK(header.status == v->status);

    struct out out = {{0}, 0};
    struct its_wire_header expected = {0, v->opcode, v->flags, v->id, v->status};
    put(&out, &expected, sizeof expected);
    if (v->payload) v->payload(bytes + sizeof header, length - sizeof header, &out);
    uint32_t built = (uint32_t)out.length;
    memcpy(out.bytes, &built, sizeof built);
    CHECK(out.length == length);
    CHECK(memcmp(out.bytes, bytes, length) == 0);
}

/* The row of the table that checks `file`, or NULL. */
static const struct vector *find_vector(const char *file) {
    for (size_t i = 0; i < session_vector_count; i++) {
        if (strcmp(session_vectors[i].file, file) == 0) return &session_vectors[i];
    }
    for (size_t i = 0; i < state_vector_count; i++) {
        if (strcmp(state_vectors[i].file, file) == 0) return &state_vectors[i];
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTOR_DIRECTORY\n", argv[0]);
        return 2;
    }
    int passed = 0, failed = 0;
    for (size_t i = 0; i < session_vector_count + state_vector_count; i++) {
        const struct vector *v = i < session_vector_count ? &session_vectors[i]
                                                            : &state_vectors[i - session_vector_count];
        int before = failures;
        check_vector(argv[1], v);
        if (failures == before) passed++; else failed++;
    }

    /* Every .hex file in the directory is one of the tables'. */
    current = argv[1];
    DIR *directory = opendir(argv[1]);
    CHECK(directory != NULL);
    size_t files = 0;
    for (struct dirent *entry; directory && (entry = readdir(directory));) {
        size_t n = strlen(entry->d_name);
        if (n < 4 || strcmp(entry->d_name + n - 4, ".hex") != 0) continue;
        files++;
        if (!find_vector(entry->d_name)) {
            fprintf(stderr, "%s: not checked by check_vectors\n", entry->d_name);
            failures++;
        }
    }
    if (directory) closedir(directory);
    CHECK(files == session_vector_count + state_vector_count);
    if (failures > 0 && failed == 0) failed = 1; /* a directory problem, not a vector's */

    printf("its_wire.h: %d passed, %d failed\n", passed, failed);
    return failures ? 1 : 0;
}
