// Memory ordering for the virtqueue the demo shares with a vhost-user back-end in another process.
//
// Swift has no fence for plain memory that another process reads, so the demo calls these around
// the ring index updates (virtio 1.x, 2.7.13: publish ring entries before the index; read the used
// index before the entries it covers). Each is one GCC builtin.
#ifndef VHOST_DEMO_SUPPORT_H
#define VHOST_DEMO_SUPPORT_H

/// Orders every earlier store before every later store (the store barrier before avail.idx).
void vhost_demo_store_fence(void);
/// Orders every earlier load before every later load (after reading used.idx).
void vhost_demo_load_fence(void);
/// A full barrier: every earlier access before every later one.
void vhost_demo_full_fence(void);

#endif
