// epoll for its-load, which Swift's Glibc module does not expose on this Linux (sys/epoll.h).
// Thin wrappers with no logic of their own.
#ifndef ITS_LOAD_H
#define ITS_LOAD_H

#include <stdint.h>

/// epoll_create1(EPOLL_CLOEXEC).
int its_load_epoll_create(void);
/// epoll_ctl(epfd, EPOLL_CTL_ADD, fd, {EPOLLIN, .data.u64 = token}).
int its_load_epoll_add(int epfd, int fd, uint64_t token);
/// epoll_wait(epfd, ...): writes the tokens of up to `capacity` ready descriptors to `tokens` and
/// returns their number, 0 on timeout, -1 on error (EINTR included).
int its_load_epoll_wait(int epfd, uint64_t *tokens, int capacity, int timeout_ms);

#endif
