// System interfaces the server needs that Swift's Glibc module does not expose on this Linux:
// eventfd, memfd_create and file seals, the CMSG_* macros for SCM_RIGHTS and SO_PEERCRED, and
// posix_spawn's closefrom action.
//
// The header uses only fixed-width types and `void *` for `struct msghdr *`, so that it includes no
// system header under different feature macros than Swift's Glibc module; its_support.c includes
// them with _GNU_SOURCE. Every function is a thin wrapper with no logic of its own; the three
// atomics are inline so that the hot paths calling them make no call.
#ifndef ITS_SUPPORT_H
#define ITS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/// eventfd(initval, EFD_CLOEXEC [| EFD_NONBLOCK]).
int its_eventfd(unsigned int initval, int nonblock);
/// memfd_create(name, MFD_CLOEXEC [| MFD_ALLOW_SEALING]).
int its_memfd_create(const char *name, int allow_sealing);

/// The file seal bits.
int its_seal_shrink(void);
int its_seal_grow(void);
int its_seal_seal(void);
/// fcntl(fd, F_ADD_SEALS, seals) and fcntl(fd, F_GET_SEALS).
int its_add_seals(int fd, int seals);
int its_get_seals(int fd);

/// The calling thread's errno.
int its_errno(void);

/// Bytes of control buffer for `count` descriptors (CMSG_SPACE).
size_t its_cmsg_space_fds(size_t count);
/// Points the `struct msghdr` at `control` (its_cmsg_space_fds(count) bytes) holding one
/// SCM_RIGHTS message with `fds`.
void its_cmsg_put_fds(void *msghdr, void *control, const int *fds, size_t count);
/// Collects the SCM_RIGHTS descriptors of a received `struct msghdr` into `fds` (room for
/// `capacity`) and returns how many; any beyond `capacity` are closed and counted in `*dropped`.
size_t its_cmsg_take_fds(void *msghdr, int *fds, size_t capacity, size_t *dropped);
/// Whether a received `struct msghdr` had its control data truncated (MSG_CTRUNC).
int its_msg_ctrunc(const void *msghdr);

/// getrandom(buffer, length, 0): bytes from the kernel's random number generator.
long its_getrandom(void *buffer, size_t length);

/// accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC).
int its_accept4(int fd);

/// posix_spawn_file_actions_addclosefrom_np(actions, from) on a `posix_spawn_file_actions_t *`
/// (glibc 2.34 or later): the child closes every descriptor from `from` up. 0, or an errno value.
int its_spawn_close_from(void *actions, int from);

/// SO_PEERCRED of a connected Unix socket.
int its_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);

/// Atomic load (acquire) of a 64-bit word another process shares, such as an acknowledge slot.
static inline uint64_t its_atomic_load_u64(const uint64_t *word) {
    return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/// Atomic compare-and-swap (acquire-release) of a shared 64-bit word: returns 1 when `*word` held
/// `*expected` and now holds `desired`; otherwise returns 0 and leaves the value found in `*expected`.
static inline int its_atomic_cas_u64(uint64_t *word, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n(word, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/// Atomic fetch-or (acquire-release) of a shared 64-bit word: sets `bits` whatever else the word
/// holds, and returns the value it held before.
static inline uint64_t its_atomic_fetch_or_u64(uint64_t *word, uint64_t bits) {
    return __atomic_fetch_or(word, bits, __ATOMIC_ACQ_REL);
}

#endif
