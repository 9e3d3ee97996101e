/*
 * quiet_thread.h - threads that take no signals.
 *
 * detvm's signals are the main thread's: the stop signals (Ctrl-C) and the
 * host timer's kick of the vCPU, which is blocked outside KVM_RUN there.
 * A helper thread (the trace writer's, the checkpoint database's, record's
 * set-up, the VM's teardown) must not take one instead, so it starts with
 * every signal blocked: it inherits the mask its creator has while
 * creating it, which is then put back.
 */
#ifndef DETVM_QUIET_THREAD_H
#define DETVM_QUIET_THREAD_H

#include <pthread.h>

/* pthread_create(t, NULL, fn, arg) with every signal blocked in the new
 * thread.  0, or the error number (of pthread_sigmask or pthread_create). */
int quiet_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
