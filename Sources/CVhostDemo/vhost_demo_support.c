#include "vhost_demo_support.h"

void vhost_demo_store_fence(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
void vhost_demo_load_fence(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
void vhost_demo_full_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
