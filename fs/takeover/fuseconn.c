// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/fuse.h>
#include <fuse_lowlevel.h>

#include "cleanup.h"
#include "fuseconn.h"
#include "macro.h"

#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7 /* Linux 6.9 */
#endif

/* The unique id of the replayed INIT. The kernel numbers requests with small even values (odd
 * ones are interrupts), so this never collides with a real request. */
#define REPLAY_UNIQUE UINT64_C(0xfffffffffffffff0)

/* libfuse hands the io hooks the session's userdata, not ours, and a process serves one FUSE
 * connection: the attached connection is this module's one global. */
static FuseConn *attached_conn;

struct FuseConn {
	int fd;
	int stop_fd; /* eventfd: readable once a drain was requested */
	bool attached, adopted;
	pthread_mutex_t lock;
	uint8_t init[FUSE_CONN_INIT_MAX];
	size_t init_len;
	bool have_init, replay_pending;
	uint64_t requests;
	uint64_t first_reply_us, last_reply_us; /* CLOCK_REALTIME, replies to the kernel */
};

static int conn_new(int fd, FuseConn **ret)
{
	FuseConn *c;
	int fl = fcntl(fd, F_GETFL);

	/* Non-blocking so that a worker that lost the race for a request goes back to poll(),
	 * where a drain can reach it, instead of sleeping in read(). */
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return negative_errno();
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0) {
		int r = negative_errno();
		free(c);
		return r;
	}
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

int fuse_conn_mount(const char *mountpoint, const char *fsname, FuseConn **ret)
{
	_cleanup_close_ int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	struct stat st;
	char opts[256];
	FuseConn *c;
	int r;

	if (fd < 0)
		return negative_errno();
	if (stat(mountpoint, &st) < 0)
		return negative_errno();
	snprintf(opts, sizeof opts,
		 "fd=%d,rootmode=%o,user_id=0,group_id=0,allow_other,default_permissions", fd,
		 st.st_mode & S_IFMT);
	if (mount(fsname, mountpoint, "fuse.svidfs", MS_NOSUID | MS_NODEV | MS_RDONLY, opts) < 0)
		return negative_errno();
	r = conn_new(fd, &c);
	if (r < 0) {
		umount2(mountpoint, MNT_DETACH);
		return r;
	}
	TAKE_FD(fd);
	*ret = c;
	return 0;
}

int fuse_conn_adopt(int fd, const void *init, size_t init_len, FuseConn **ret)
{
	const struct fuse_in_header *h = init;
	FuseConn *c;
	int r;

	if (fd < 0 || init_len < sizeof *h || init_len > FUSE_CONN_INIT_MAX ||
	    h->opcode != FUSE_INIT || h->len != init_len)
		return -EINVAL;
	r = conn_new(fd, &c);
	if (r < 0)
		return r;
	memcpy(c->init, init, init_len);
	c->init_len = init_len;
	c->have_init = c->replay_pending = c->adopted = true;
	*ret = c;
	return 0;
}

FuseConn *fuse_conn_free(FuseConn *c)
{
	if (!c)
		return NULL;
	if (attached_conn == c)
		attached_conn = NULL;
	if (!c->attached && c->fd >= 0)
		close(c->fd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

static ssize_t conn_read(int fd, void *buf, size_t len, void *userdata)
{
	FuseConn *c = attached_conn;
	ssize_t n;

	pthread_mutex_lock(&c->lock);
	if (c->replay_pending && len >= c->init_len) {
		/* Replay the kernel's INIT once so libfuse initialises its session as the old
		 * daemon did; its reply is swallowed in conn_writev. */
		struct fuse_in_header *h = buf;
		c->replay_pending = false;
		memcpy(buf, c->init, c->init_len);
		h->unique = REPLAY_UNIQUE;
		pthread_mutex_unlock(&c->lock);
		return (ssize_t)c->init_len;
	}
	pthread_mutex_unlock(&c->lock);

	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = c->stop_fd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p[1].revents) {
			/* Drain: libfuse treats ENODEV as the end of the session. */
			errno = ENODEV;
			return -1;
		}
		n = read(fd, buf, len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		break;
	}
	if (n >= (ssize_t)sizeof(struct fuse_in_header)) {
		const struct fuse_in_header *h = buf;
		__atomic_add_fetch(&c->requests, 1, __ATOMIC_RELAXED);
		if (h->opcode == FUSE_INIT && (size_t)n <= FUSE_CONN_INIT_MAX) {
			pthread_mutex_lock(&c->lock);
			memcpy(c->init, buf, (size_t)n);
			c->init_len = (size_t)n;
			c->have_init = true;
			pthread_mutex_unlock(&c->lock);
		}
	}
	return n;
}

static uint64_t realtime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static ssize_t conn_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	FuseConn *c = attached_conn;
	ssize_t n;

	if (count > 0 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
		const struct fuse_out_header *h = iov[0].iov_base;
		if (h->unique == REPLAY_UNIQUE) {
			size_t total = 0;
			for (int i = 0; i < count; i++)
				total += iov[i].iov_len;
			return (ssize_t)total;
		}
	}
	n = writev(fd, iov, count);
	if (n > 0 && c) {
		uint64_t now = realtime_us(), zero = 0;
		__atomic_store_n(&c->last_reply_us, now, __ATOMIC_RELAXED);
		__atomic_compare_exchange_n(&c->first_reply_us, &zero, now, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	return n;
}

/* An adopted connection: the kernel is initialised and may already have requests queued. libfuse
 * answers any request it processes before the INIT with EIO, and its MT loop starts a second
 * worker before the first has processed what it read: with the INIT replayed through the loop,
 * a queued READ could overtake it and fail (issue 8: rare EIO for O_DIRECT readers after an
 * adoption). So the replayed INIT is processed here, on the caller's thread, before any worker
 * exists. */
static int replay_init(FuseConn *c, struct fuse_session *se)
{
	struct fuse_buf buf = {.mem = NULL};
	int r = fuse_session_receive_buf(se, &buf);

	if (r > 0)
		fuse_session_process_buf(se, &buf);
	free(buf.mem);
	if (r <= 0)
		return r < 0 ? r : -EIO;
	pthread_mutex_lock(&c->lock);
	bool replayed = !c->replay_pending;
	pthread_mutex_unlock(&c->lock);
	if (!replayed || fuse_session_exited(se))
		return -EPROTO; /* libfuse refused the recorded INIT (and logged why) */
	return 0;
}

int fuse_conn_attach(FuseConn *c, struct fuse_session *se)
{
	static const struct fuse_custom_io io = {
		.read = conn_read,
		.writev = conn_writev,
	};
	int r;

	if (attached_conn)
		return -EBUSY;
	attached_conn = c;
	r = fuse_session_custom_io(se, &io, c->fd);
	if (r < 0) {
		attached_conn = NULL;
		return r;
	}
	c->attached = true;
	return c->replay_pending ? replay_init(c, se) : 0;
}

int fuse_conn_fd(const FuseConn *c)
{
	return c->fd;
}

bool fuse_conn_adopted(const FuseConn *c)
{
	return c->adopted;
}

int fuse_conn_get_init(FuseConn *c, const void **ret, size_t *ret_len)
{
	int r = -EAGAIN;

	pthread_mutex_lock(&c->lock);
	if (c->have_init) {
		*ret = c->init;
		*ret_len = c->init_len;
		r = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

int fuse_conn_request_resend(FuseConn *c)
{
	struct fuse_out_header h = {
		.len = sizeof h,
		.error = FUSE_NOTIFY_RESEND,
		.unique = 0,
	};
	if (write(c->fd, &h, sizeof h) == (ssize_t)sizeof h)
		return 0;
	/* Kernels before 6.9 reject the unknown notification code with EINVAL. */
	return errno == EINVAL ? -EOPNOTSUPP : negative_errno();
}

void fuse_conn_drain(FuseConn *c)
{
	uint64_t one = 1;
	if (write(c->stop_fd, &one, sizeof one) < 0) {
		/* the counter cannot overflow with a handful of writes */
	}
}

uint64_t fuse_conn_requests(const FuseConn *c)
{
	return __atomic_load_n(&c->requests, __ATOMIC_RELAXED);
}

uint64_t fuse_conn_first_reply_us(const FuseConn *c)
{
	return __atomic_load_n(&c->first_reply_us, __ATOMIC_RELAXED);
}

uint64_t fuse_conn_last_reply_us(const FuseConn *c)
{
	return __atomic_load_n(&c->last_reply_us, __ATOMIC_RELAXED);
}
