// SPDX-License-Identifier: Apache-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "macro.h"
#include "sessions.h"
#include "memtrim.h"
#include "tree.h"
#include "util.h"

#define SELF_SOURCE "workload-api"
#define TICK_MS 250
/* Give freed memory back (memtrim.h) after at least 16 removals and 1 s without one, or every
 * 1,024 removals of a long churn. */
#define TRIM_MIN_REMOVALS 16
#define TRIM_QUIET_MS 1000
#define TRIM_MAX_REMOVALS 1024
#define STALE_STATUS_S 10 /* re-render status.json this often while a stream is down */

typedef struct Agent {
	const char *name;
	AgentConn *conn;
	AgentSub *x509_bundles, *jwt_bundles;
	struct Sessions *s;
	bool healthy;	    /* as the failover logic sees it (with hysteresis) */
	int64_t changed_ms; /* when the raw health last flipped */
	bool raw;
} Agent;

typedef struct SubCtx {
	struct Sessions *s;
	char *name;
	char *agent; /* source name for the store */
	uint64_t epoch;
} SubCtx;

/* A reference to a workload: its owner's name and, for a CSI volume, the target path. */
typedef struct WlsRef {
	char *name, *target;
} WlsRef;

typedef struct Wls {
	struct Wls *next_hash;
	Workload *w;
	WlsRef *refs;
	size_t n_refs;
	bool persist;
	size_t *order; /* indexes into s->agents; the failover list */
	size_t n_order;
	bool self;
	ssize_t cur; /* index into order of the serving agent, -1 none */
	AgentSub *sub;
	SubCtx *ctx;
	uint64_t epoch;
	bool empty;	    /* the serving agent's last message had no SVID */
	size_t diag_logged; /* hash of the diagnosis last logged, 0 none (ticker only) */
} Wls;

struct Sessions {
	SessionsOptions o;
	SvidStore *store;
	Registry *registry;
	Agent *agents;
	size_t n_agents;
	AgentConn *self_conn;
	AgentSub *self_jwt_bundles;

	pthread_mutex_t ops;  /* serialises subscribe/cancel sequences; outer lock */
	pthread_mutex_t lock; /* the registry; inner lock, never held across agent calls */
	pthread_cond_t changed;
	Wls **hash;
	size_t n_hash, n;
	uint64_t epoch;

	pthread_t ticker;
	bool ticker_running, stop;
	pthread_mutex_t tick_lock;
	pthread_cond_t tick_cond;
	uint64_t watchdog_usec;
	SessionsSlots slots; /* optional: slots remembered across a takeover */
	void (*listener)(void *userdata); /* under lock: SVIDs changed or a workload went away */
	void *listener_userdata;
	MemTrim *trim;
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t str_hash(const char *s)
{
	size_t h = 5381;
	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

/* ---- registry (s->lock held) ---- */

static Wls **hash_find(Sessions *s, const char *name)
{
	Wls **p = &s->hash[str_hash(name) & (s->n_hash - 1)];
	while (*p && !streq(workload_name((*p)->w), name))
		p = &(*p)->next_hash;
	return p;
}

static void hash_grow(Sessions *s)
{
	size_t nb = s->n_hash * 2;
	Wls **b = calloc(nb, sizeof *b);
	if (!b)
		return;
	for (size_t i = 0; i < s->n_hash; i++)
		for (Wls *e = s->hash[i], *next; e; e = next) {
			next = e->next_hash;
			size_t h = str_hash(workload_name(e->w)) & (nb - 1);
			e->next_hash = b[h];
			b[h] = e;
		}
	free(s->hash);
	s->hash = b;
	s->n_hash = nb;
}

static void wls_insert(Sessions *s, Wls *e)
{
	Wls **h = hash_find(s, workload_name(e->w));
	e->next_hash = NULL;
	*h = e;
	if (++s->n > s->n_hash)
		hash_grow(s);
}

static void wls_remove(Sessions *s, Wls *e)
{
	Wls **h = hash_find(s, workload_name(e->w));
	if (*h == e)
		*h = e->next_hash;
	s->n--;
}

static void subctx_free(SubCtx *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->agent);
	free(c);
}

static void wls_free(Wls *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_refs; i++) {
		free(e->refs[i].name);
		free(e->refs[i].target);
	}
	free(e->refs);
	free(e->order);
	subctx_free(e->ctx);
	workload_unref(e->w);
	free(e);
}

/* ---- agent callbacks (connection threads) ---- */

static void on_x509(void *userdata, const SvidX509Update *u)
{
	SubCtx *c = userdata;
	Sessions *s = c->s;
	bool current;

	pthread_mutex_lock(&s->lock);
	Wls *e = *hash_find(s, c->name);
	current = e && e->epoch == c->epoch;
	if (current)
		e->empty = u->n_svids == 0;
	pthread_mutex_unlock(&s->lock);
	if (!current)
		return;
	int r = svid_store_update_x509(s->store, c->name, c->agent, u, now_s());
	if (r < 0 && r != -ENOENT)
		log_warning_errno(r,
				  "update for %s from agent %s rejected; serving the last good "
				  "state",
				  c->name, c->agent);
	else if (r >= 0)
		log_debug("%s: %zu SVID(s) from agent %s", c->name, u->n_svids, c->agent);
}

static void on_x509_bundles(void *userdata, const SvidBundleInput *b, size_t n)
{
	Agent *a = userdata;
	int r = svid_store_set_x509_bundles(a->s->store, a->name, b, n, now_s());
	if (r < 0)
		log_warning_errno(r, "X.509 bundles from agent %s rejected", a->name);
}

static void on_jwt_bundles(void *userdata, const SvidBundleInput *b, size_t n)
{
	Agent *a = userdata;
	int r = svid_store_set_jwt_bundles(a->s->store, a->name, b, n, now_s());
	if (r < 0)
		log_warning_errno(r, "JWT bundles from agent %s rejected", a->name);
}

static void on_self_jwt_bundles(void *userdata, const SvidBundleInput *b, size_t n)
{
	Sessions *s = userdata;
	int r = svid_store_set_jwt_bundles(s->store, SELF_SOURCE, b, n, now_s());
	if (r < 0)
		log_warning_errno(r, "JWT bundles from the Workload API rejected");
}

/* The store's change callback: on the writer's thread, store lock not held. */
static void on_store_change(void *userdata, const char *name, uint32_t slot, uint64_t generation,
			    bool removed)
{
	Sessions *s = userdata;

	if (removed)
		return; /* sessions_unregister removed the directory itself */
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->changed);
	if (s->listener)
		s->listener(s->listener_userdata);
	pthread_mutex_unlock(&s->lock);
	registry_generation_changed(s->registry, name, generation);
}

/* ---- subscriptions ---- */

static int selectors_of(const Registration *r, AgentSelector **ret_sel, char ***ret_buf,
			size_t *ret_n)
{
	AgentSelector *sel = calloc(r->n_selectors + 1, sizeof *sel);
	char **buf = calloc(r->n_selectors + 1, sizeof *buf);

	if (!sel || !buf) {
		free(sel);
		free(buf);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->n_selectors; i++) {
		buf[i] = strdup(r->selectors[i]);
		if (!buf[i]) {
			for (size_t j = 0; j < i; j++)
				free(buf[j]);
			free(buf);
			free(sel);
			return -ENOMEM;
		}
		char *c = strchr(buf[i], ':');
		*c = 0;
		sel[i] = (AgentSelector){buf[i], c + 1};
	}
	*ret_sel = sel;
	*ret_buf = buf;
	*ret_n = r->n_selectors;
	return 0;
}

static void selectors_free(AgentSelector *sel, char **buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(buf[i]);
	free(buf);
	free(sel);
}

/* grpc/status.h's code; this module stays free of gRPC headers. */
#define GRPC_CODE_PERMISSION_DENIED 7

/* svidfs's own SPIFFE ID, from self/ (Workload API) when configured; "" otherwise. */
static void own_spiffe_id(Sessions *s, char *buf, size_t len)
{
	SvidSet *set = NULL;

	buf[0] = 0;
	if (!s->self_conn || svid_store_get(s->store, "self", &set) < 0)
		return;
	if (svid_set_n_svids(set) > 0)
		snprintf(buf, len, "%s", svid_set_spiffe_id(set, 0));
	svid_set_unref(set);
}

/* The stream state an operator reads in status.json, `svidfsctl status` and the CSI error:
 * what the agent said and, for the two answers that are configuration errors, what to fix.
 * - An empty SVID list on an open stream: SPIRE's answer to selectors no entry matches (it
 *   never says so otherwise; clients that wait for an SVID just time out).
 * - PermissionDenied: the agent refused svidfs itself as a delegate. */
static const char *stream_text(Sessions *s, const AgentSubState *st, const Registration *reg,
			       bool empty, char *buf, size_t len)
{
	char id[300];
	size_t o;

	switch (st->phase) {
	case AGENT_SUB_STREAMING:
		if (!empty || !reg)
			return "streaming";
		o = (size_t)snprintf(buf, len,
				     "streaming, but the agent returned no SVID for these selectors:");
		for (size_t i = 0; i < reg->n_selectors && o < len; i++)
			o += (size_t)snprintf(buf + o, len - o, "%s %s", i ? "," : "",
					      reg->selectors[i]);
		if (o < len)
			snprintf(buf + o, len - o,
				 " (no registration entry matches them, or the agent has not "
				 "synced it yet)");
		return buf;
	case AGENT_SUB_CONNECTING:
		if (!st->restarts || !st->last_error[0])
			return "connecting";
		o = (size_t)snprintf(buf, len, "connecting (last attempt: %.200s)", st->last_error);
		break;
	default:
		o = (size_t)snprintf(buf, len, "%s%s%.200s", agent_sub_phase_to_string(st->phase),
				     st->last_error[0] ? ": " : "", st->last_error);
		break;
	}
	if (st->last_grpc_status == GRPC_CODE_PERMISSION_DENIED && o < len) {
		own_spiffe_id(s, id, sizeof id);
		if (strstr(st->last_error, "no identity issued"))
			snprintf(buf + o, len - o,
				 "; the agent has no registration entry for svidfs itself%s%s%s",
				 id[0] ? " (svidfs is " : "", id, id[0] ? " elsewhere)" : "");
		else
			snprintf(buf + o, len - o,
				 "; the agent refused svidfs%s%s%s as a delegate: add %s to "
				 "authorized_delegates in the agent's configuration",
				 id[0] ? " (" : "", id, id[0] ? ")" : "",
				 id[0] ? "it" : "svidfs's SPIFFE ID");
	}
	return buf;
}

/* Points `name` at agent position `pos` of its list (-1: none): cancels the old stream and
 * opens the new one. Caller holds s->ops (not s->lock). */
static int switch_agent(Sessions *s, const char *name, ssize_t pos)
{
	AgentSub *old = NULL, *sub = NULL;
	SubCtx *old_ctx = NULL, *ctx = NULL;
	AgentConn *conn = NULL;
	AgentSelector *sel = NULL;
	char **buf = NULL;
	size_t n_sel = 0;
	const char *agent_name = NULL;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	Wls *e = *hash_find(s, name);
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		return -ENOENT;
	}
	old = TAKE_PTR(e->sub);
	old_ctx = TAKE_PTR(e->ctx);
	e->cur = pos;
	e->epoch = ++s->epoch;
	e->empty = false;
	uint64_t epoch = e->epoch;
	if (pos >= 0) {
		if (e->self) {
			conn = s->self_conn;
			agent_name = SELF_SOURCE;
		} else {
			Agent *a = &s->agents[e->order[pos]];
			conn = a->conn;
			agent_name = a->name;
			r = selectors_of(workload_registration(e->w), &sel, &buf, &n_sel);
		}
	}
	pthread_mutex_unlock(&s->lock);

	/* Cancel first: when it returns, no callback of the old stream runs any more. */
	agent_sub_cancel(old);
	subctx_free(old_ctx);
	if (pos < 0 || r < 0)
		return r;

	ctx = calloc(1, sizeof *ctx);
	if (!ctx || !(ctx->name = strdup(name)) || !(ctx->agent = strdup(agent_name))) {
		subctx_free(ctx);
		selectors_free(sel, buf, n_sel);
		return log_error_errno(-ENOMEM, "cannot subscribe %s", name);
	}
	ctx->s = s;
	ctx->epoch = epoch;
	r = agent_subscribe_x509(conn, sel, n_sel, 0, on_x509, ctx, &sub);
	selectors_free(sel, buf, n_sel);
	if (r < 0) {
		subctx_free(ctx);
		return log_error_errno(r, "cannot subscribe %s to agent %s", name, agent_name);
	}
	Workload *w = NULL;
	AgentSubState st = {};
	bool have_state = agent_sub_get_state(sub, &st) >= 0;
	pthread_mutex_lock(&s->lock);
	e = *hash_find(s, name);
	if (e && e->epoch == epoch) {
		e->sub = sub;
		e->ctx = ctx;
		sub = NULL;
		ctx = NULL;
		w = workload_ref(e->w);
	}
	pthread_mutex_unlock(&s->lock);
	if (w) {
		/* Say who serves it now; the ticker refines the stream state. */
		WorkloadStream ws = {};
		char text[sizeof ws.state];
		snprintf(ws.agent, sizeof ws.agent, "%s", agent_name);
		snprintf(ws.state, sizeof ws.state, "%s",
			 have_state ? stream_text(s, &st, NULL, false, text, sizeof text)
				    : "connecting");
		ws.last_message_at = have_state ? st.last_message_at : 0;
		if (workload_set_stream(w, &ws))
			registry_status_changed(s->registry, w);
		workload_unref(w);
	}
	agent_sub_cancel(sub); /* removed or switched meanwhile */
	subctx_free(ctx);
	log_info("%s: served by agent %s", name, agent_name);
	return 0;
}

/* The first healthy agent of the list; if none is healthy, keep the current one (or the first):
 * the last good state stays served either way. Caller holds s->lock. */
static ssize_t preferred_agent(Sessions *s, const Wls *e)
{
	if (e->self)
		return 0;
	for (size_t i = 0; i < e->n_order; i++)
		if (s->agents[e->order[i]].healthy)
			return (ssize_t)i;
	return e->cur >= 0 ? e->cur : 0;
}

/* ---- persistence ---- */

static int state_path(Sessions *s, const Registration *r, char **ret)
{
	_cleanup_free_ char *file = NULL;
	int k = registration_state_file(r, &file);
	if (k < 0)
		return k;
	if (asprintf(ret, "%s/registrations/%s", s->o.state_dir, file) < 0)
		return -ENOMEM;
	return 0;
}

/* Writes the registration and its references (no secrets) atomically; unlinks it with no
 * references. A reference's target follows its ref= line as target=. */
static int persist(Sessions *s, const Registration *r, const WlsRef *refs, size_t n_refs)
{
	_cleanup_free_ char *path = NULL, *tmp = NULL, *dir = NULL, *text = NULL;
	_cleanup_close_ int fd = -1;
	KvMsg *m = NULL;
	size_t len;
	int k;

	k = state_path(s, r, &path);
	if (k < 0)
		return log_error_errno(k, "cannot name the state file of %s", r->name);
	if (n_refs == 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			return log_error_errno(negative_errno(), "cannot remove %s", path);
		return 0;
	}
	if (asprintf(&dir, "%s/registrations", s->o.state_dir) < 0 ||
	    asprintf(&tmp, "%s.tmp", path) < 0)
		return log_error_errno(-ENOMEM, "cannot persist %s", r->name);
	k = mkdir_p(dir, 0755, 0700);
	if (k < 0)
		return log_error_errno(k, "cannot create %s", dir);
	k = kv_new(&m);
	if (k >= 0)
		k = registration_to_kv(r, m);
	for (size_t i = 0; k >= 0 && i < n_refs; i++) {
		k = kv_add(m, "ref", refs[i].name);
		if (k >= 0 && refs[i].target)
			k = kv_add(m, "target", refs[i].target);
	}
	if (k >= 0)
		k = kv_format(m, &text, &len);
	kv_free(m);
	if (k < 0)
		return log_error_errno(k, "cannot format the registration of %s", r->name);
	/* Never write what restore would refuse (the limits keep files far below it). */
	if (len > SESSIONS_STATE_FILE_MAX)
		return log_error_errno(-EFBIG, "the registration of %s would take %zu bytes", r->name,
				       len);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_error_errno(negative_errno(), "cannot write %s", tmp);
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		k = negative_errno();
		unlink(tmp);
		return log_error_errno(k, "cannot write %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		k = negative_errno();
		unlink(tmp);
		return log_error_errno(k, "cannot rename %s", tmp);
	}
	return 0;
}

/* ---- public ---- */

int sessions_new(const SessionsOptions *o, SvidStore *store, Registry *reg, Sessions **ret)
{
	Sessions *s = calloc(1, sizeof *s);

	if (!s)
		return -ENOMEM;
	s->o = *o;
	s->store = store;
	s->registry = reg;
	s->n_hash = 256;
	s->hash = calloc(s->n_hash, sizeof *s->hash);
	s->agents = calloc(o->n_agents, sizeof *s->agents);
	if (!s->hash || !s->agents ||
	    memtrim_new(TRIM_MIN_REMOVALS, TRIM_QUIET_MS, TRIM_MAX_REMOVALS, &s->trim) < 0) {
		free(s->hash);
		free(s->agents);
		free(s);
		return -ENOMEM;
	}
	s->n_agents = o->n_agents;
	for (size_t i = 0; i < s->n_agents; i++) {
		s->agents[i].name = o->agents[i].name;
		s->agents[i].s = s;
	}
	pthread_mutex_init(&s->ops, NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	pthread_mutex_init(&s->tick_lock, NULL);
	pthread_cond_init(&s->tick_cond, NULL);
	svid_store_set_change_callback(store, on_store_change, s);
	*ret = s;
	return 0;
}

/* Whether an SVID of the workload expired after status.json was last rendered. */
static bool expired_since_render(Sessions *s, Workload *w, int64_t now)
{
	SvidSet *set = NULL;
	bool r = false;

	if (svid_store_get(s->store, workload_name(w), &set) < 0)
		return false;
	int64_t rendered = workload_status_rendered_at(w);
	for (size_t i = 0; i < svid_set_n_svids(set) && !r; i++) {
		int64_t na = svid_set_not_after(set, i);
		r = na > 0 && now > na && rendered <= na;
	}
	svid_set_unref(set);
	return r;
}

/* One pass of the ticker: agent health with hysteresis, workload moves, stream facts. */
static void tick(Sessions *s)
{
	int64_t ms = now_ms(), now = now_s();
	static unsigned ticks;
	bool expiry_check = ticks++ % (1000 / TICK_MS) == 0; /* about once a second */
	_cleanup_free_ char **names = NULL;
	size_t n = 0;

	for (size_t i = 0; i < s->n_agents; i++) {
		Agent *a = &s->agents[i];
		AgentSubState st;
		bool raw = agent_sub_get_state(a->x509_bundles, &st) >= 0 &&
			   st.phase == AGENT_SUB_STREAMING;
		if (raw != a->raw) {
			a->raw = raw;
			a->changed_ms = ms;
		}
		bool healthy = a->healthy;
		if (raw != a->healthy && ms - a->changed_ms >= (int64_t)s->o.failover_ms)
			healthy = raw;
		if (healthy != a->healthy) {
			log_full_errno(healthy ? LOG_NOTICE : LOG_WARNING, 0, "agent %s is %s",
				       a->name, healthy ? "up" : "down");
			pthread_mutex_lock(&s->lock);
			a->healthy = healthy;
			pthread_mutex_unlock(&s->lock);
		}
	}

	if (registry_list_all(s->registry, &names, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		ssize_t want = -1, cur = -1;
		Workload *w = NULL;
		AgentSub *sub = NULL;
		WorkloadStream ws = {};
		AgentSubState st = {};
		char buf[sizeof ws.state];
		bool empty = false;
		size_t diag_logged = 0;

		pthread_mutex_lock(&s->ops);
		pthread_mutex_lock(&s->lock);
		Wls *e = *hash_find(s, names[i]);
		if (e) {
			want = preferred_agent(s, e);
			cur = e->cur;
			w = workload_ref(e->w);
		}
		pthread_mutex_unlock(&s->lock);
		if (e && want != cur) {
			log_notice("%s: moving to agent position %zd", names[i], want);
			switch_agent(s, names[i], want);
		}
		/* Stream facts (agent_sub_get_state is safe while s->ops keeps the sub alive). */
		pthread_mutex_lock(&s->lock);
		e = *hash_find(s, names[i]);
		if (e && e->sub) {
			sub = e->sub;
			empty = e->empty;
			diag_logged = e->diag_logged;
			snprintf(ws.agent, sizeof ws.agent, "%s",
				 e->self ? SELF_SOURCE : s->agents[e->order[e->cur]].name);
		}
		pthread_mutex_unlock(&s->lock);
		if (sub && agent_sub_get_state(sub, &st) >= 0) {
			snprintf(ws.state, sizeof ws.state, "%s",
				 stream_text(s, &st, w ? workload_registration(w) : NULL, empty,
					     buf, sizeof buf));
			ws.last_message_at = st.last_message_at;
		} else
			snprintf(ws.state, sizeof ws.state, "none");
		pthread_mutex_unlock(&s->ops);
		if (w) {
			bool changed = workload_set_stream(w, &ws);
			/* One line per new diagnosis (not per retry, not for the "connecting"
			 * between two refusals): the refusal or the empty answer, as said. */
			bool diagnosis = (st.phase == AGENT_SUB_STREAMING && empty) ||
					 ((st.phase == AGENT_SUB_BACKOFF ||
					   st.phase == AGENT_SUB_STOPPED) &&
					  st.last_grpc_status == GRPC_CODE_PERMISSION_DENIED);
			size_t h = diagnosis ? str_hash(ws.state) | 1 : 0;
			if (diagnosis && h != diag_logged)
				log_warning("%s: agent %s: %s", names[i], ws.agent, ws.state);
			if ((diagnosis && h != diag_logged) ||
			    (!diagnosis && st.phase == AGENT_SUB_STREAMING && diag_logged)) {
				pthread_mutex_lock(&s->lock);
				if ((e = *hash_find(s, names[i])))
					e->diag_logged = h;
				pthread_mutex_unlock(&s->lock);
			}
			if (!changed && st.phase != AGENT_SUB_STREAMING &&
			    now - workload_status_rendered_at(w) >= STALE_STATUS_S)
				changed = true; /* show the growing staleness */
			if (!changed && expiry_check && expired_since_render(s, w, now))
				changed = true; /* an SVID expired: status.json flags it */
			if (changed) {
				workload_status_touch(w, now);
				registry_status_changed(s->registry, w);
			}
			workload_unref(w);
		}
		free(names[i]);
	}

	if (s->watchdog_usec) {
		static int64_t last;
		if (ms - last >= (int64_t)(s->watchdog_usec / 2000)) {
			sd_notify(0, "WATCHDOG=1");
			last = ms;
		}
	}
	/* Keys that do not fit the locked heap cannot be stored or rendered: say so early. */
	static bool heap_warned;
	size_t used = CRYPTO_secure_used();
	if (CRYPTO_secure_malloc_initialized() && used > s->o.secure_heap / 10 * 9) {
		if (!heap_warned)
			log_warning("secure heap %zu of %zu bytes used: raise secure_heap", used,
				    s->o.secure_heap);
		heap_warned = true;
	} else if (used < s->o.secure_heap / 10 * 8)
		heap_warned = false;

	size_t pods, ids, ready;
	sessions_count(s, &pods, &ids, &ready);
	static size_t last_pods = SIZE_MAX, last_ids, last_ready;
	if (pods != last_pods || ids != last_ids || ready != last_ready) {
		sd_notifyf(0, "STATUS=%zu pod(s), %zu identit%s, %zu with SVIDs", pods, ids,
			   ids == 1 ? "y" : "ies", ready);
		last_pods = pods;
		last_ids = ids;
		last_ready = ready;
	}
}

/* After a burst of removals, the heap memory they freed goes back to the kernel. */
static void trim_if_due(Sessions *s)
{
	if (!memtrim_due(s->trim, (uint64_t)now_ms()))
		return;
	int64_t t0 = now_ms();
	int64_t freed = memtrim_run();
	log_debug("gave %lld kB of freed memory back to the kernel in %lld ms",
		  (long long)(freed > 0 ? freed / 1024 : 0), (long long)(now_ms() - t0));
}

static void *ticker_thread(void *userdata)
{
	Sessions *s = userdata;

	pthread_mutex_lock(&s->tick_lock);
	while (!s->stop) {
		pthread_mutex_unlock(&s->tick_lock);
		tick(s);
		trim_if_due(s);
		pthread_mutex_lock(&s->tick_lock);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!s->stop)
			pthread_cond_timedwait(&s->tick_cond, &s->tick_lock, &ts);
	}
	pthread_mutex_unlock(&s->tick_lock);
	return NULL;
}

static int load_persisted(Sessions *s)
{
	_cleanup_free_ char *dir = NULL;
	DIR *d;
	struct dirent *de;
	unsigned loaded = 0, failed = 0;

	if (asprintf(&dir, "%s/registrations", s->o.state_dir) < 0)
		return -ENOMEM;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0
				       : log_error_errno(negative_errno(), "cannot open %s", dir);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 6 || !streq(de->d_name + l - 5, ".conf"))
			continue;
		_cleanup_free_ char *path = NULL;
		KvMsg *m = NULL;
		const char *why = NULL;
		unsigned refs = 0;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
			break;
		/* Whatever size persist() wrote: it refuses to write more than this. */
		int k = kv_read_file(path, SESSIONS_STATE_FILE_MAX, &m);
		for (size_t i = 0; k >= 0 && i < kv_count(m); i++) {
			if (!streq(kv_key(m, i), "ref"))
				continue;
			const char *target = i + 1 < kv_count(m) && streq(kv_key(m, i + 1), "target")
						 ? kv_value(m, i + 1)
						 : NULL;
			SessionsRef ref = {kv_value(m, i), target, SESSIONS_REF_RESTORED};
			Registration *r = NULL;
			k = registration_from_kv(m, &r, &why);
			if (k >= 0) /* takes r */
				k = sessions_register(s, r, &ref, NULL, NULL, &why);
			refs++;
		}
		kv_free(m);
		if (k >= 0 && refs == 0) {
			k = -EINVAL;
			why = "no ref";
		}
		if (k < 0) {
			log_error_errno(k, "cannot restore the registration %s%s%s", path,
					why ? ": " : "", why ? why : "");
			failed++;
		} else
			loaded++;
	}
	closedir(d);
	if (loaded || failed)
		log_info("restored %u registration(s) from %s (%u failed)", loaded, dir, failed);
	return 0;
}

int sessions_start(Sessions *s)
{
	int r;

	for (size_t i = 0; i < s->n_agents; i++) {
		Agent *a = &s->agents[i];
		AgentConnConfig cc = {.address = s->o.agents[i].address,
				      .api = AGENT_API_DELEGATED,
				      .name = a->name};
		r = agent_conn_new(&cc, &a->conn);
		if (r < 0)
			return log_error_errno(r, "cannot set up agent %s (%s)", a->name,
					       cc.address);
		r = agent_subscribe_x509_bundles(a->conn, on_x509_bundles, a, &a->x509_bundles);
		if (r >= 0)
			r = agent_subscribe_jwt_bundles(a->conn, on_jwt_bundles, a,
							&a->jwt_bundles);
		if (r < 0)
			return log_error_errno(r, "cannot subscribe to agent %s's bundles",
					       a->name);
		/* Optimistic until proven otherwise, so the first subscriptions go to the first
		 * agent of each list rather than waiting for the hysteresis. */
		a->healthy = a->raw = true;
		a->changed_ms = now_ms();
	}
	if (s->o.workload_socket) {
		AgentConnConfig cc = {.address = s->o.workload_socket,
				      .api = AGENT_API_WORKLOAD,
				      .name = SELF_SOURCE};
		r = agent_conn_new(&cc, &s->self_conn);
		if (r < 0)
			return log_error_errno(r, "cannot set up the Workload API (%s)",
					       cc.address);
		r = agent_subscribe_jwt_bundles(s->self_conn, on_self_jwt_bundles, s,
						&s->self_jwt_bundles);
		if (r < 0)
			return log_error_errno(r, "cannot subscribe to the Workload API bundles");
		KvMsg *m = NULL;
		Registration *reg = NULL;
		const char *why = NULL;
		r = kv_new(&m);
		if (r >= 0)
			r = kv_add(m, "kind", "self");
		if (r >= 0)
			r = registration_from_kv(m, &reg, &why);
		kv_free(m);
		if (r >= 0)
			r = sessions_register(s, reg, &(SessionsRef){"config", NULL, SESSIONS_REF_CONFIG},
					      NULL, NULL, &why);
		if (r < 0)
			return log_error_errno(r, "cannot set up self/");
	}
	for (size_t i = 0; i < s->o.n_identities; i++) {
		Registration *reg = NULL;
		const char *why = NULL;
		_cleanup_free_ char *ref = NULL;
		r = registration_from_identity_file(s->o.identities[i], &reg, &why);
		if (r >= 0 && asprintf(&ref, "config:%s", s->o.identity_files[i]) < 0)
			r = -ENOMEM;
		if (r >= 0)
			r = sessions_register(s, reg, &(SessionsRef){ref, NULL, SESSIONS_REF_CONFIG},
					      NULL, NULL, &why);
		else
			registration_free(reg);
		if (r < 0)
			log_error_errno(r, "identity file %s refused%s%s",
					s->o.identity_files[i], why ? ": " : "", why ? why : "");
	}
	r = load_persisted(s);
	if (r < 0)
		return r;
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0)
		s->watchdog_usec = usec;
	r = -pthread_create(&s->ticker, NULL, ticker_thread, s);
	if (r < 0)
		return log_error_errno(r, "cannot start the session ticker");
	s->ticker_running = true;
	return 0;
}

void sessions_stop(Sessions *s)
{
	_cleanup_free_ char **names = NULL;
	size_t n = 0;

	if (s->ticker_running) {
		pthread_mutex_lock(&s->tick_lock);
		s->stop = true;
		pthread_cond_signal(&s->tick_cond);
		pthread_mutex_unlock(&s->tick_lock);
		pthread_join(s->ticker, NULL);
		s->ticker_running = false;
	}
	if (registry_list_all(s->registry, &names, &n) >= 0)
		for (size_t i = 0; i < n; i++) {
			pthread_mutex_lock(&s->ops);
			switch_agent(s, names[i], -1);
			pthread_mutex_unlock(&s->ops);
			free(names[i]);
		}
	for (size_t i = 0; i < s->n_agents; i++) {
		agent_sub_cancel(TAKE_PTR(s->agents[i].x509_bundles));
		agent_sub_cancel(TAKE_PTR(s->agents[i].jwt_bundles));
		s->agents[i].conn = agent_conn_free(s->agents[i].conn);
	}
	agent_sub_cancel(TAKE_PTR(s->self_jwt_bundles));
	s->self_conn = agent_conn_free(s->self_conn);
}

Sessions *sessions_free(Sessions *s)
{
	if (!s)
		return NULL;
	sessions_stop(s);
	svid_store_set_change_callback(s->store, NULL, NULL);
	for (size_t i = 0; i < s->n_hash; i++)
		for (Wls *e = s->hash[i], *next; e; e = next) {
			next = e->next_hash;
			wls_free(e);
		}
	free(s->hash);
	free(s->agents);
	memtrim_free(s->trim);
	pthread_mutex_destroy(&s->ops);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->tick_lock);
	pthread_cond_destroy(&s->tick_cond);
	free(s);
	return NULL;
}

static int resolve_agents(Sessions *s, const Registration *r, size_t **ret, size_t *ret_n,
			  const char **ret_error)
{
	size_t n = r->n_agents ? r->n_agents : s->n_agents;
	size_t *order = calloc(n ? n : 1, sizeof *order);

	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!r->n_agents) {
			order[i] = i;
			continue;
		}
		size_t j;
		for (j = 0; j < s->n_agents; j++)
			if (streq(s->agents[j].name, r->agents[i]))
				break;
		if (j == s->n_agents) {
			free(order);
			*ret_error = "unknown agent (not in the daemon's config)";
			return -EINVAL;
		}
		order[i] = j;
	}
	*ret = order;
	*ret_n = n;
	return 0;
}

static bool no_control_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool ref_name_valid(const char *n)
{
	size_t l = strlen(n);
	return l > 0 && l <= SESSIONS_REF_MAX && no_control_chars(n);
}

static bool target_valid(const char *t)
{
	return t[0] == '/' && strlen(t) <= SESSIONS_TARGET_MAX && no_control_chars(t);
}

static ssize_t ref_index(const Wls *e, const char *name)
{
	for (size_t i = 0; i < e->n_refs; i++)
		if (streq(e->refs[i].name, name))
			return (ssize_t)i;
	return -1;
}

/* Adds a reference to an existing workload, or records the target of one it has. Caller holds
 * s->ops and s->lock. 1 when something changed, 0 when it was there already, -errno. */
static int ref_add(Wls *e, const SessionsRef *ref, const char *name, const char *target,
		   const char **ret_error)
{
	ssize_t have = ref_index(e, name);

	if (target && ref->origin == SESSIONS_REF_CONTROL)
		for (size_t i = 0; i < e->n_refs; i++)
			if ((ssize_t)i != have && e->refs[i].target &&
			    streq(e->refs[i].target, target)) {
				*ret_error = "another volume id is already published at this target "
					     "path";
				return -EEXIST;
			}
	if (have >= 0) {
		if (!target || e->refs[have].target)
			return 0; /* idempotent; a reference keeps the target it was made with */
		e->refs[have].target = strdup(target);
		return e->refs[have].target ? 1 : -ENOMEM;
	}
	if (ref->origin == SESSIONS_REF_CONTROL && e->n_refs >= SESSIONS_MAX_REFS) {
		*ret_error = "too many references to this workload (at most 64: one per svidfs "
			     "volume of the pod)";
		return -ENOSPC;
	}
	WlsRef *p = realloc(e->refs, (e->n_refs + 1) * sizeof *p);
	if (!p)
		return -ENOMEM;
	e->refs = p;
	p[e->n_refs] = (WlsRef){strdup(name), target ? strdup(target) : NULL};
	if (!p[e->n_refs].name || (target && !p[e->n_refs].target)) {
		free(p[e->n_refs].name);
		free(p[e->n_refs].target);
		return -ENOMEM;
	}
	e->n_refs++;
	return 1;
}

/* Undoes ref_add's change (it returned 1). Caller holds s->ops and s->lock. */
static void ref_undo(Wls *e, const char *name, bool had)
{
	ssize_t i = ref_index(e, name);

	if (i < 0)
		return;
	free(e->refs[i].target);
	e->refs[i].target = NULL;
	if (had)
		return;
	free(e->refs[i].name);
	e->refs[i] = e->refs[--e->n_refs];
}

int sessions_register(Sessions *s, Registration *reg, const SessionsRef *ref, char **ret_name,
		      unsigned *ret_refs, const char **ret_error)
{
	_cleanup_free_ size_t *order = NULL;
	_cleanup_free_ char *name = NULL;
	const char *rn = ref->name && *ref->name ? ref->name : "default";
	const char *target = ref->target && *ref->target ? ref->target : NULL;
	bool control = ref->origin == SESSIONS_REF_CONTROL;
	bool want_persist = ref->origin != SESSIONS_REF_CONFIG;
	size_t n_order = 0;
	uint32_t slot;
	int r;

	*ret_error = NULL;
	if (control && !ref_name_valid(rn)) {
		registration_free(reg);
		*ret_error = "ref must be 1-255 bytes without control characters";
		return -EINVAL;
	}
	if (control && target && !target_valid(target)) {
		registration_free(reg);
		*ret_error = "target must be an absolute path of at most 4095 bytes";
		return -EINVAL;
	}
	name = strdup(reg->name);
	if (!name) {
		registration_free(reg);
		return -ENOMEM;
	}
	if (reg->kind != REGISTRATION_SELF) {
		r = resolve_agents(s, reg, &order, &n_order, ret_error);
		if (r < 0) {
			registration_free(reg);
			return r;
		}
	}
	pthread_mutex_lock(&s->ops);
	pthread_mutex_lock(&s->lock);
	Wls *e = *hash_find(s, name);
	if (e) {
		if (!registration_equal(workload_registration(e->w), reg)) {
			pthread_mutex_unlock(&s->lock);
			pthread_mutex_unlock(&s->ops);
			registration_free(reg);
			*ret_error = "the workload is registered with other settings";
			return -EEXIST;
		}
		registration_free(reg);
		bool had = ref_index(e, rn) >= 0;
		r = ref_add(e, ref, rn, target, ret_error);
		if (r > 0)
			e->persist = e->persist || want_persist;
		unsigned refs = (unsigned)e->n_refs;
		pthread_mutex_unlock(&s->lock);
		/* Restored references are on disk already; s->ops keeps e and its refs stable. */
		if (r > 0 && e->persist && ref->origin != SESSIONS_REF_RESTORED &&
		    persist(s, workload_registration(e->w), e->refs, e->n_refs) < 0) {
			pthread_mutex_lock(&s->lock);
			ref_undo(e, rn, had);
			pthread_mutex_unlock(&s->lock);
			*ret_error = "cannot write the registration to the state directory";
			r = -EIO;
		}
		pthread_mutex_unlock(&s->ops);
		if (r >= 0 && ret_refs)
			*ret_refs = refs;
		if (r >= 0 && ret_name)
			*ret_name = TAKE_PTR(name);
		return MIN(r, 0);
	}
	pthread_mutex_unlock(&s->lock);

	/* After a takeover: the slot and directory serial the kernel knows this workload by. */
	uint64_t dir_serial = 0;
	r = -ENOENT;
	if (s->slots.find && s->slots.find(s->slots.userdata, name, &slot, &dir_serial) >= 0) {
		r = svid_store_add_slot(s->store, name, slot);
		if (r < 0) {
			log_warning_errno(r, "%s: its old slot %u is taken; its old directory inode "
					     "goes stale", name, slot);
			dir_serial = 0;
		}
	}
	if (r < 0)
		r = svid_store_add(s->store, name, &slot);
	if (r < 0) {
		pthread_mutex_unlock(&s->ops);
		registration_free(reg);
		return log_error_errno(r, "cannot add %s to the store", name);
	}
	if (slot > TREE_SLOT_MAX) {
		svid_store_remove(s->store, name);
		pthread_mutex_unlock(&s->ops);
		registration_free(reg);
		*ret_error = "too many workloads";
		return -ENOSPC;
	}
	e = calloc(1, sizeof *e);
	if (!e || workload_new_with_serial(reg, slot, dir_serial, &e->w) < 0) {
		free(e);
		svid_store_remove(s->store, name);
		pthread_mutex_unlock(&s->ops);
		registration_free(reg);
		return -ENOMEM;
	}
	e->persist = want_persist;
	r = ref_add(e, ref, rn, target, ret_error);
	/* On disk before anyone can see it: a failure leaves nothing behind. */
	if (r > 0 && control && persist(s, workload_registration(e->w), e->refs, e->n_refs) < 0) {
		*ret_error = "cannot write the registration to the state directory";
		r = -EIO;
	}
	if (r < 0) {
		wls_free(e);
		svid_store_remove(s->store, name);
		pthread_mutex_unlock(&s->ops);
		return r;
	}
	e->self = workload_registration(e->w)->kind == REGISTRATION_SELF;
	e->order = TAKE_PTR(order);
	e->n_order = n_order;
	e->cur = -1;
	pthread_mutex_lock(&s->lock);
	r = (wls_insert(s, e), 0);
	ssize_t want = r >= 0 ? preferred_agent(s, e) : -1;
	pthread_mutex_unlock(&s->lock);
	if (r < 0) {
		if (control)
			persist(s, workload_registration(e->w), NULL, 0);
		wls_free(e);
		svid_store_remove(s->store, name);
		pthread_mutex_unlock(&s->ops);
		return r;
	}
	if (s->slots.set)
		s->slots.set(s->slots.userdata, slot, workload_dir_serial(e->w), name);
	r = registry_add(s->registry, e->w);
	if (r < 0)
		log_error_errno(r, "%s: cannot show its directory", name);
	r = switch_agent(s, name, want);
	pthread_mutex_unlock(&s->ops);
	log_info("registered %s (ref %s)", name, rn);
	if (ret_refs)
		*ret_refs = 1;
	if (ret_name)
		*ret_name = TAKE_PTR(name);
	return r < 0 ? r : 0;
}

int sessions_unregister(Sessions *s, const char *name, const char *ref, unsigned *ret_refs,
			bool *ret_removed)
{
	int r = 0;

	pthread_mutex_lock(&s->ops);
	pthread_mutex_lock(&s->lock);
	Wls *e = *hash_find(s, name);
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		pthread_mutex_unlock(&s->ops);
		return -ENOENT;
	}
	bool changed = false;
	for (size_t i = 0; i < e->n_refs;) {
		if (!ref || streq(e->refs[i].name, ref)) {
			free(e->refs[i].name);
			free(e->refs[i].target);
			memmove(e->refs + i, e->refs + i + 1,
				(e->n_refs - i - 1) * sizeof *e->refs);
			e->n_refs--;
			changed = true;
		} else
			i++;
	}
	unsigned refs = (unsigned)e->n_refs;
	pthread_mutex_unlock(&s->lock);
	/* A failure is logged; the reference is gone from memory either way. */
	if (e->persist && changed)
		persist(s, workload_registration(e->w), e->refs, e->n_refs);
	if (refs > 0) {
		pthread_mutex_unlock(&s->ops);
		*ret_refs = refs;
		*ret_removed = false;
		return 0;
	}

	switch_agent(s, name, -1);
	pthread_mutex_lock(&s->lock);
	wls_remove(s, e);
	pthread_cond_broadcast(&s->changed);
	if (s->listener)
		s->listener(s->listener_userdata);
	pthread_mutex_unlock(&s->lock);
	Workload *w = e->w;
	if (s->slots.set)
		s->slots.set(s->slots.userdata, workload_slot(w), 0, NULL);
	r = svid_store_remove(s->store, name);
	if (r < 0 && r != -ENOENT)
		log_error_errno(r, "cannot remove %s from the store", name);
	/* The directory goes: the bytes its inodes pinned, its name, its pollers. */
	(void)registry_remove(s->registry, name);
	wls_free(e);
	memtrim_note_removal(s->trim, (uint64_t)now_ms());
	pthread_mutex_unlock(&s->ops);
	log_info("unregistered %s", name);
	*ret_refs = 0;
	*ret_removed = true;
	return 0;
}

int sessions_wait(Sessions *s, const char *name, int timeout_ms, size_t *ret_svids)
{
	struct timespec deadline;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (!*hash_find(s, name)) {
			r = -ENOENT;
			break;
		}
		SvidSet *set = NULL;
		size_t n = 0;
		/* The store has its own lock and never calls back into us from get. */
		if (svid_store_get(s->store, name, &set) >= 0) {
			n = svid_set_n_svids(set);
			svid_set_unref(set);
		}
		if (n > 0) {
			*ret_svids = n;
			break;
		}
		if (pthread_cond_timedwait(&s->changed, &s->lock, &deadline) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int sessions_svids(Sessions *s, const char *name, size_t *ret_svids)
{
	SvidSet *set = NULL;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	bool known = *hash_find(s, name) != NULL;
	pthread_mutex_unlock(&s->lock);
	if (!known)
		return -ENOENT;
	if (svid_store_get(s->store, name, &set) >= 0) {
		n = svid_set_n_svids(set);
		svid_set_unref(set);
	}
	if (n == 0)
		return -EAGAIN;
	*ret_svids = n;
	return 0;
}

void sessions_set_change_listener(Sessions *s, void (*fn)(void *userdata), void *userdata)
{
	pthread_mutex_lock(&s->lock);
	s->listener = fn;
	s->listener_userdata = userdata;
	pthread_mutex_unlock(&s->lock);
}

int sessions_resubscribe(Sessions *s, const char *name)
{
	pthread_mutex_lock(&s->ops);
	pthread_mutex_lock(&s->lock);
	Wls *e = *hash_find(s, name);
	ssize_t want = e ? preferred_agent(s, e) : -1;
	pthread_mutex_unlock(&s->lock);
	int r = e ? switch_agent(s, name, want) : -ENOENT;
	pthread_mutex_unlock(&s->ops);
	return r;
}

unsigned sessions_refs(Sessions *s, const char *name)
{
	pthread_mutex_lock(&s->lock);
	Wls *e = *hash_find(s, name);
	unsigned n = e ? (unsigned)e->n_refs : 0;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void sessions_count(Sessions *s, size_t *ret_pods, size_t *ret_ids, size_t *ret_ready)
{
	size_t pods = 0, ids = 0, ready = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_hash; i++)
		for (Wls *e = s->hash[i]; e; e = e->next_hash) {
			RegistrationKind k = workload_registration(e->w)->kind;
			pods += k == REGISTRATION_POD;
			ids += k == REGISTRATION_IDENTITY;
			ready += workload_generation(e->w) > 0;
		}
	pthread_mutex_unlock(&s->lock);
	*ret_pods = pods;
	*ret_ids = ids;
	*ret_ready = ready;
}

int sessions_fetch_jwt(Sessions *s, const char *name, const char *audience)
{
	AgentConn *conn = NULL;
	AgentSelector *sel = NULL;
	char **buf = NULL;
	size_t n_sel = 0, n = 0;
	AgentJwt *jwts = NULL;
	const char *agent = NULL;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	Wls *e = *hash_find(s, name);
	if (!e)
		r = -ENOENT;
	else if (e->self) {
		conn = s->self_conn;
		agent = SELF_SOURCE;
	} else {
		size_t pos = e->cur >= 0 ? (size_t)e->cur : 0;
		conn = s->agents[e->order[pos]].conn;
		agent = s->agents[e->order[pos]].name;
		r = selectors_of(workload_registration(e->w), &sel, &buf, &n_sel);
	}
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return r;
	/* Connections live until sessions_stop; selectors were copied. */
	r = agent_fetch_jwt(conn, sel, n_sel, 0, &audience, 1, 5000, &jwts, &n);
	selectors_free(sel, buf, n_sel);
	if (r < 0)
		return log_warning_errno(r, "%s: no JWT-SVID for audience %s from agent %s", name,
					 audience, agent);
	if (n == 0) {
		agent_jwt_free(jwts, n);
		return log_warning_errno(-ENOENT, "%s: agent %s issued no JWT-SVID for %s", name,
					 agent, audience);
	}
	SvidJwtInput in = {.spiffe_id = jwts[0].spiffe_id,
			   .token = jwts[0].token,
			   .hint = jwts[0].hint,
			   .expires_at = jwts[0].expires_at,
			   .issued_at = jwts[0].issued_at};
	r = svid_store_put_jwt(s->store, name, audience, &in);
	agent_jwt_free(jwts, n);
	if (r < 0)
		return log_warning_errno(r, "%s: JWT-SVID for %s refused", name, audience);
	return 0;
}

void sessions_set_slots(Sessions *s, const SessionsSlots *slots)
{
	s->slots = slots ? *slots : (SessionsSlots){};
}
