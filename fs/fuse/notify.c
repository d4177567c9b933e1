// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "inokey.h"
#include "log.h"
#include "macro.h"
#include "notify.h"

typedef enum EventType { EV_INVAL_ENTRY, EV_INVAL_INODE, EV_POLL } EventType;

typedef struct Event {
	struct Event *next;
	EventType type;
	uint64_t ino;
	struct fuse_pollhandle *ph;
	char name[]; /* EV_INVAL_ENTRY */
} Event;

struct Notify {
	pthread_mutex_t lock;
	pthread_cond_t cond, done;
	Event *head, **tail;
	struct fuse_session *se;
	const InoKey *key; /* borrowed: the kernel sees wrapped inode numbers */
	pthread_t thread;
	bool running, stop;
	uint64_t queued, sent;
};

int notify_new(Notify **ret)
{
	Notify *n = calloc(1, sizeof *n);

	if (!n)
		return -ENOMEM;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	pthread_cond_init(&n->done, NULL);
	n->tail = &n->head;
	*ret = n;
	return 0;
}

static void event_free(Event *e)
{
	if (e->type == EV_POLL && e->ph)
		fuse_pollhandle_destroy(e->ph);
	free(e);
}

static void send_event(Notify *n, Event *e)
{
	uint64_t ino = n->key ? ino_key_wrap(n->key, e->ino) : e->ino;
	int r = 0;

	switch (e->type) {
	case EV_INVAL_ENTRY:
		r = fuse_lowlevel_notify_inval_entry(n->se, ino, e->name, strlen(e->name));
		break;
	case EV_INVAL_INODE:
		r = fuse_lowlevel_notify_inval_inode(n->se, ino, 0, 0);
		break;
	case EV_POLL:
		r = fuse_lowlevel_notify_poll(e->ph);
		break;
	}
	/* -ENOENT: the kernel holds no such dentry/inode; -EBADF/-ENODEV: unmounting; -ENOSYS:
	 * before INIT (nothing cached yet). Normal. */
	if (r < 0 && r != -ENOENT && r != -EBADF && r != -ENODEV && r != -ENOSYS)
		log_warning_errno(r, "kernel notification (type %d, inode %#llx) failed",
				  (int)e->type, (unsigned long long)e->ino);
}

static void *notify_thread(void *userdata)
{
	Notify *n = userdata;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->head && !n->stop)
			pthread_cond_wait(&n->cond, &n->lock);
		if (!n->head && n->stop)
			break;
		Event *batch = n->head;
		n->head = NULL;
		n->tail = &n->head;
		pthread_mutex_unlock(&n->lock);
		uint64_t k = 0;
		for (Event *e = batch, *next; e; e = next) {
			next = e->next;
			send_event(n, e);
			event_free(e);
			k++;
		}
		pthread_mutex_lock(&n->lock);
		n->sent += k;
		pthread_cond_broadcast(&n->done);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

void notify_set_ino_key(Notify *n, const InoKey *key)
{
	n->key = key;
}

int notify_start(Notify *n, struct fuse_session *se)
{
	int r;

	pthread_mutex_lock(&n->lock);
	n->se = se;
	n->stop = false;
	pthread_mutex_unlock(&n->lock);
	r = -pthread_create(&n->thread, NULL, notify_thread, n);
	if (r < 0)
		return log_error_errno(r, "cannot start the notify thread");
	n->running = true;
	return 0;
}

void notify_stop(Notify *n)
{
	if (!n->running)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	n->running = false;
	n->se = NULL;
}

Notify *notify_free(Notify *n)
{
	if (!n)
		return NULL;
	notify_stop(n);
	for (Event *e = n->head, *next; e; e = next) {
		next = e->next;
		event_free(e);
	}
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
	pthread_cond_destroy(&n->done);
	free(n);
	return NULL;
}

static void enqueue(Notify *n, Event *e)
{
	pthread_mutex_lock(&n->lock);
	if (!n->running || n->stop) {
		pthread_mutex_unlock(&n->lock);
		event_free(e);
		return;
	}
	*n->tail = e;
	n->tail = &e->next;
	n->queued++;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

void notify_inval_entry(Notify *n, uint64_t parent, const char *name)
{
	size_t l = strlen(name);
	Event *e = calloc(1, sizeof *e + l + 1);

	if (!e) {
		log_error("out of memory queueing an invalidation of %s", name);
		return;
	}
	e->type = EV_INVAL_ENTRY;
	e->ino = parent;
	memcpy(e->name, name, l + 1);
	enqueue(n, e);
}

void notify_inval_inode(Notify *n, uint64_t ino)
{
	Event *e = calloc(1, sizeof *e);

	if (!e) {
		log_error("out of memory queueing an inode invalidation");
		return;
	}
	e->type = EV_INVAL_INODE;
	e->ino = ino;
	enqueue(n, e);
}

void notify_poll_wakeup(Notify *n, struct fuse_pollhandle *ph)
{
	Event *e = calloc(1, sizeof *e);

	if (!e) {
		fuse_pollhandle_destroy(ph);
		log_error("out of memory queueing a poll wake-up");
		return;
	}
	e->type = EV_POLL;
	e->ph = ph;
	enqueue(n, e);
}

void notify_sync(Notify *n)
{
	pthread_mutex_lock(&n->lock);
	uint64_t target = n->queued;
	while (n->running && n->sent < target)
		pthread_cond_wait(&n->done, &n->lock);
	pthread_mutex_unlock(&n->lock);
}

uint64_t notify_sent(Notify *n)
{
	pthread_mutex_lock(&n->lock);
	uint64_t s = n->sent;
	pthread_mutex_unlock(&n->lock);
	return s;
}
