// SPDX-License-Identifier: Apache-2.0
/* Self-test of svidfs-devagent with a raw gRPC C core client: first message, selector matching,
 * header check, authorization, validation errors, rotation push, JWT-SVIDs against the JWKS,
 * bundles, nested CA chains, fault injection, clean shutdown. Prints TAP.
 * Usage: test-devagent-selftest /path/to/svidfs-devagent */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "delegatedidentity.pb-c.h"
#include "spire_types.pb-c.h"
#include "workload.pb-c.h"

#include "jwt.h"
#include "kv.h"

#define D_PREFIX "/spire.api.agent.delegatedidentity.v1.DelegatedIdentity/"
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsRequest DX509Req;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsResponse DX509Resp;
typedef Spire__Api__Agent__Delegatedidentity__V1__FetchJWTSVIDsRequest DJwtReq;
typedef Spire__Api__Agent__Delegatedidentity__V1__FetchJWTSVIDsResponse DJwtResp;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesResponse DX509BResp;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesResponse DJwtBResp;

static const char *devagent;
static char dir[64];
static unsigned test_no, failures;

static void ok(bool cond, const char *fmt, ...) _printf_(2, 3);
static void ok(bool cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%sok %u - ", cond ? "" : "not ", ++test_no);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	if (!cond)
		failures++;
}

/* ---- processes ---- */

typedef struct Agent {
	pid_t pid;
	char wsock[96], asock[96], csock[96];
} Agent;

static int start_agent(Agent *a, const char *name, const char *const *extra)
{
	const char *argv[64];
	int n = 0, pfd[2];
	char buf[16];

	snprintf(a->wsock, sizeof a->wsock, "%s/%s-w.sock", dir, name);
	snprintf(a->asock, sizeof a->asock, "%s/%s-a.sock", dir, name);
	snprintf(a->csock, sizeof a->csock, "%s/%s-c.sock", dir, name);
	if (pipe(pfd) < 0)
		return -errno;
	argv[n++] = devagent;
	argv[n++] = "--socket";
	argv[n++] = a->wsock;
	argv[n++] = "--admin-socket";
	argv[n++] = a->asock;
	argv[n++] = "--control";
	argv[n++] = a->csock;
	argv[n++] = "--ready-fd";
	argv[n++] = "3";
	for (; extra && *extra; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	a->pid = fork();
	if (a->pid == 0) {
		dup2(pfd[1], 3);
		if (pfd[1] != 3)
			close(pfd[1]);
		close(pfd[0]);
		execv(devagent, (char **)argv);
		_exit(127);
	}
	close(pfd[1]);
	ssize_t k = read(pfd[0], buf, sizeof buf);
	close(pfd[0]);
	return k > 0 ? 0 : -EIO;
}

static int stop_agent(Agent *a)
{
	int st = 0;
	if (a->pid <= 0)
		return -1;
	kill(a->pid, SIGTERM);
	waitpid(a->pid, &st, 0);
	a->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs `devagent ctl --control sock ARGS...`, returns its exit code; output into out. */
static int ctl(const Agent *a, char *out, size_t outlen, const char *fmt, ...) _printf_(4, 5);
static int ctl(const Agent *a, char *out, size_t outlen, const char *fmt, ...)
{
	char args[512], cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "%s ctl --control %s %s 2>&1", devagent, a->csock, args);
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	size_t n = out ? fread(out, 1, outlen - 1, f) : 0;
	if (out)
		out[n] = '\0';
	else {
		char sink[256];
		while (fread(sink, 1, sizeof sink, f) > 0)
			;
	}
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- a minimal streaming client ---- */

typedef struct Stream {
	grpc_channel *ch;
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *msg;
	int outstanding;
	bool status_done, recv_armed;
	size_t last_len;
} Stream;

static int tag_start, tag_status, tag_recv;

static grpc_channel *channel_for(const char *path)
{
	char target[128];
	grpc_arg args[2] = {
		{.type = GRPC_ARG_STRING, .key = (char *)GRPC_ARG_DEFAULT_AUTHORITY,
		 .value.string = (char *)"localhost"},
		{.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		 .value.integer = 64 << 20},
	};
	grpc_channel_args ca = {.num_args = 2, .args = args};
	snprintf(target, sizeof target, "unix://%s", path);
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(target, creds, &ca);
	grpc_channel_credentials_release(creds);
	return ch;
}

static void arm_recv(Stream *s)
{
	grpc_op op;
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &s->msg;
	if (grpc_call_start_batch(s->call, &op, 1, &tag_recv, NULL) == GRPC_CALL_OK) {
		s->outstanding++;
		s->recv_armed = true;
	}
}

static void stream_open(Stream *s, const char *sock, const char *method, const ProtobufCMessage *req,
			bool header)
{
	grpc_op ops[4];
	grpc_metadata md;
	memset(s, 0, sizeof *s);
	s->ch = channel_for(sock);
	s->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_metadata_array_init(&s->init_md);
	grpc_metadata_array_init(&s->trail_md);
	s->call = grpc_channel_create_call(s->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq,
					   grpc_slice_from_static_string(method), NULL,
					   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	size_t len = protobuf_c_message_get_packed_size(req);
	grpc_slice sl = grpc_slice_malloc(len);
	protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(sl));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	memset(ops, 0, sizeof ops);
	memset(&md, 0, sizeof md);
	md.key = grpc_slice_from_static_string("workload.spiffe.io");
	md.value = grpc_slice_from_static_string("true");
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = header ? 1 : 0;
	ops[0].data.send_initial_metadata.metadata = header ? &md : NULL;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
	if (grpc_call_start_batch(s->call, ops, 4, &tag_start, NULL) == GRPC_CALL_OK)
		s->outstanding++;
	grpc_byte_buffer_destroy(bb); /* the batch took the contents */
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &s->trail_md;
	ops[0].data.recv_status_on_client.status = &s->status;
	ops[0].data.recv_status_on_client.status_details = &s->details;
	if (grpc_call_start_batch(s->call, ops, 1, &tag_status, NULL) == GRPC_CALL_OK)
		s->outstanding++;
	arm_recv(s);
}

/* 1: a message (unpacked into *ret); 0: stream ended (s->status); -ETIMEDOUT. */
static int stream_next(Stream *s, const ProtobufCMessageDescriptor *d, int timeout_ms,
		       ProtobufCMessage **ret)
{
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
					     gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	if (!s->recv_armed && !s->status_done)
		arm_recv(s);
	for (;;) {
		if (!s->recv_armed && s->status_done)
			return 0;
		grpc_event ev = grpc_completion_queue_next(s->cq, deadline, NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT)
			return -ETIMEDOUT;
		if (ev.type != GRPC_OP_COMPLETE)
			return -EIO;
		s->outstanding--;
		if (ev.tag == &tag_status)
			s->status_done = true;
		else if (ev.tag == &tag_recv) {
			s->recv_armed = false;
			if (s->msg) {
				grpc_byte_buffer_reader r;
				grpc_byte_buffer_reader_init(&r, s->msg);
				grpc_slice flat = grpc_byte_buffer_reader_readall(&r);
				s->last_len = GRPC_SLICE_LENGTH(flat);
				*ret = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(flat),
								 GRPC_SLICE_START_PTR(flat));
				grpc_slice_unref(flat);
				grpc_byte_buffer_reader_destroy(&r);
				grpc_byte_buffer_destroy(s->msg);
				s->msg = NULL;
				return *ret ? 1 : -EBADMSG;
			}
		}
	}
}

static bool status_is(Stream *s, grpc_status_code code, const char *msg)
{
	ProtobufCMessage *m = NULL;
	int r;
	while ((r = stream_next(s, &x509_svidresponse__descriptor, 5000, &m)) == 1) {
		protobuf_c_message_free_unpacked(m, NULL);
		m = NULL;
	}
	if (r != 0)
		return false;
	bool good = s->status == code;
	if (msg)
		good = good && !grpc_slice_str_cmp(s->details, msg);
	if (!good) {
		char *d = grpc_slice_to_c_string(s->details);
		printf("# got status %d '%s', want %d '%s'\n", s->status, d, code, msg ? msg : "*");
		gpr_free(d);
	}
	return good;
}

static void stream_close(Stream *s)
{
	grpc_call_cancel(s->call, NULL);
	while (s->outstanding > 0) {
		grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		s->outstanding--;
		if (ev.tag == &tag_recv && s->msg) {
			grpc_byte_buffer_destroy(s->msg);
			s->msg = NULL;
		}
	}
	grpc_call_unref(s->call);
	grpc_completion_queue_shutdown(s->cq);
	while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(s->cq);
	grpc_channel_destroy(s->ch);
	grpc_metadata_array_destroy(&s->init_md);
	grpc_metadata_array_destroy(&s->trail_md);
	grpc_slice_unref(s->details);
}

/* ---- request builders ---- */

static void sub_x509(Stream *s, const Agent *a, const char *const *sel, int32_t pid)
{
	DX509Req req = SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_SVIDS_REQUEST__INIT;
	Spire__Api__Types__Selector items[8], *p[8];
	size_t n = 0;
	for (; sel && sel[n]; n++) {
		spire__api__types__selector__init(&items[n]);
		const char *c = strchr(sel[n], ':');
		static char types[8][32];
		snprintf(types[n], sizeof types[n], "%.*s", c ? (int)(c - sel[n]) : 0, sel[n]);
		items[n].type = types[n];
		items[n].value = c ? (char *)c + 1 : (char *)sel[n];
		p[n] = &items[n];
	}
	req.n_selectors = n;
	req.selectors = p;
	req.pid = pid;
	stream_open(s, a->asock, D_PREFIX "SubscribeToX509SVIDs", &req.base, false);
}

static DX509Resp *next_dx509(Stream *s, int timeout_ms)
{
	ProtobufCMessage *m = NULL;
	int r = stream_next(s, &spire__api__agent__delegatedidentity__v1__subscribe_to_x509_svids_response__descriptor,
			    timeout_ms, &m);
	return r == 1 ? (DX509Resp *)m : NULL;
}

static char *leaf_serial(const uint8_t *der, size_t len, int64_t *ret_not_after)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	if (!x)
		return NULL;
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *h = BN_bn2hex(bn);
	char *out = strdup(h);
	OPENSSL_free(h);
	BN_free(bn);
	if (ret_not_after) {
		struct tm tm;
		ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
		*ret_not_after = (int64_t)timegm(&tm);
	}
	X509_free(x);
	return out;
}

static bool uri_san_is(const uint8_t *der, size_t len, const char *want)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	bool good = false;
	if (!x)
		return false;
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int uris = 0;
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		if (g->type != GEN_URI)
			continue;
		uris++;
		good = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier) == strlen(want) &&
		       !memcmp(ASN1_STRING_get0_data(g->d.uniformResourceIdentifier), want, strlen(want));
	}
	GENERAL_NAMES_free(names);
	bool leaf_ok = !X509_check_ca(x) && (X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE) &&
		       !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
	X509_free(x);
	return good && uris == 1 && leaf_ok;
}

/* Verifies the chain (leaf first, DER elements) against root DER certs (concatenated). */
static bool chain_verifies(ProtobufCBinaryData *chain, size_t n, const uint8_t *roots, size_t rlen)
{
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509) *inter = sk_X509_new_null();
	X509 *leaf = NULL;
	bool good = false;
	for (const unsigned char *p = roots; p < roots + rlen;) {
		X509 *r = d2i_X509(NULL, &p, (long)(roots + rlen - p));
		if (!r)
			goto out;
		X509_STORE_add_cert(store, r);
		X509_free(r);
	}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = chain[i].data;
		X509 *x = d2i_X509(NULL, &p, (long)chain[i].len);
		if (!x)
			goto out;
		if (i == 0)
			leaf = x;
		else
			sk_X509_push(inter, x);
	}
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, leaf, inter);
	good = X509_verify_cert(ctx) == 1;
	X509_STORE_CTX_free(ctx);
out:
	X509_free(leaf);
	sk_X509_pop_free(inter, X509_free);
	X509_STORE_free(store);
	return good;
}

/* Pulls "x":"..." style members out of the first key of a JWKS. */
static char *json_member(const char *json, const char *name)
{
	char pat[32];
	snprintf(pat, sizeof pat, "\"%s\":\"", name);
	const char *p = strstr(json, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	const char *e = strchr(p, '"');
	return e ? strndup(p, (size_t)(e - p)) : NULL;
}

static bool jwt_verifies(const char *token, const char *jwks)
{
	char *x = json_member(jwks, "x"), *y = json_member(jwks, "y");
	uint8_t *bx = NULL, *by = NULL, *sig = NULL;
	size_t lx, ly, ls;
	bool good = false;
	EVP_PKEY *pk = NULL;
	const char *dot2 = strrchr(token, '.');
	if (!x || !y || !dot2 || b64url_decode(x, strlen(x), &bx, &lx) < 0 ||
	    b64url_decode(y, strlen(y), &by, &ly) < 0 ||
	    b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig, &ls) < 0 || lx != 32 || ly != 32 ||
	    ls != 64)
		goto out;
	uint8_t pub[65] = {4};
	memcpy(pub + 1, bx, 32);
	memcpy(pub + 33, by, 32);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub);
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY_fromdata_init(kctx);
	EVP_PKEY_fromdata(kctx, &pk, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(kctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	if (!pk)
		goto out;
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	unsigned char *der = NULL;
	int dlen = i2d_ECDSA_SIG(es, &der);
	ECDSA_SIG_free(es);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	good = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
	       EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)token,
				(size_t)(dot2 - token)) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
out:
	EVP_PKEY_free(pk);
	free(x);
	free(y);
	free(bx);
	free(by);
	free(sig);
	return good;
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One request on a persistent control connection; returns the reply status. */
static int ctl_direct(int fd, const char *op, const char *arg)
{
	KvMsg *q = NULL, *rep = NULL;
	int r = kv_new(&q);
	if (r >= 0)
		r = kv_add(q, "op", op);
	if (r >= 0 && arg)
		r = kv_add(q, "arg", arg);
	if (r >= 0)
		r = kv_write_fd(fd, q);
	if (r >= 0)
		r = kv_read_fd(fd, 65536, 5000, &rep);
	if (r >= 0)
		r = kv_get(rep, "status") ? atoi(kv_get(rep, "status")) : -EIO;
	kv_free(q);
	kv_free(rep);
	return r;
}

static int ctl_connect_fd(const Agent *a)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a->csock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
	return a < b ? -1 : a > b;
}

/* n subscriptions multiplexed on one channel; returns how many got their first message with
 * the expected SVID. */
static int many_streams(const Agent *a, int n)
{
	typedef struct {
		grpc_call *call;
		grpc_byte_buffer *msg;
		grpc_status_code status;
		grpc_slice details;
		grpc_metadata_array md, tmd;
		int tags[3];
		bool got;
	} C;
	grpc_channel *ch = channel_for(a->asock);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
	C *c = calloc((size_t)n, sizeof *c);
	int good = 0, outstanding = 0;
	for (int i = 0; i < n; i++) {
		char uid[32], sel[3][48];
		snprintf(uid, sizeof uid, "pod-%04d", i);
		snprintf(sel[0], sizeof sel[0], "pod-uid:%s", uid);
		snprintf(sel[1], sizeof sel[1], "ns:bench");
		snprintf(sel[2], sizeof sel[2], "sa:sa%d", i);
		Spire__Api__Types__Selector it[3], *p[3];
		for (int j = 0; j < 3; j++) {
			spire__api__types__selector__init(&it[j]);
			it[j].type = "k8s";
			it[j].value = sel[j];
			p[j] = &it[j];
		}
		DX509Req req = SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_SVIDS_REQUEST__INIT;
		req.n_selectors = 3;
		req.selectors = p;
		size_t len = protobuf_c_message_get_packed_size(&req.base);
		grpc_slice sl = grpc_slice_malloc(len);
		protobuf_c_message_pack(&req.base, GRPC_SLICE_START_PTR(sl));
		grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
		grpc_slice_unref(sl);
		grpc_metadata_array_init(&c[i].md);
		grpc_metadata_array_init(&c[i].tmd);
		c[i].call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
						     grpc_slice_from_static_string(D_PREFIX "SubscribeToX509SVIDs"),
						     NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		grpc_op ops[4];
		memset(ops, 0, sizeof ops);
		ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
		ops[1].op = GRPC_OP_SEND_MESSAGE;
		ops[1].data.send_message.send_message = bb;
		ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
		ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[3].data.recv_initial_metadata.recv_initial_metadata = &c[i].md;
		outstanding += grpc_call_start_batch(c[i].call, ops, 4, &c[i].tags[0], NULL) == GRPC_CALL_OK;
		grpc_byte_buffer_destroy(bb);
		memset(ops, 0, sizeof ops);
		ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
		ops[0].data.recv_status_on_client.trailing_metadata = &c[i].tmd;
		ops[0].data.recv_status_on_client.status = &c[i].status;
		ops[0].data.recv_status_on_client.status_details = &c[i].details;
		outstanding += grpc_call_start_batch(c[i].call, ops, 1, &c[i].tags[1], NULL) == GRPC_CALL_OK;
		memset(ops, 0, sizeof ops);
		ops[0].op = GRPC_OP_RECV_MESSAGE;
		ops[0].data.recv_message.recv_message = &c[i].msg;
		outstanding += grpc_call_start_batch(c[i].call, ops, 1, &c[i].tags[2], NULL) == GRPC_CALL_OK;
	}
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(60000, GPR_TIMESPAN));
	int received = 0;
	while (received < n) {
		grpc_event ev = grpc_completion_queue_next(cq, deadline, NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		outstanding--;
		int *t = ev.tag;
		for (int i = 0; i < n; i++) {
			if (t != &c[i].tags[2])
				continue;
			received++;
			if (c[i].msg) {
				grpc_byte_buffer_reader rd;
				grpc_byte_buffer_reader_init(&rd, c[i].msg);
				grpc_slice flat = grpc_byte_buffer_reader_readall(&rd);
				DX509Resp *resp = (DX509Resp *)protobuf_c_message_unpack(
					&spire__api__agent__delegatedidentity__v1__subscribe_to_x509_svids_response__descriptor,
					NULL, GRPC_SLICE_LENGTH(flat), GRPC_SLICE_START_PTR(flat));
				char want[64];
				snprintf(want, sizeof want, "/ns/bench/sa/sa%d", i);
				if (resp && resp->n_x509_svids == 1 && !strcmp(resp->x509_svids[0]->x509_svid->id->path, want))
					good++;
				if (resp)
					protobuf_c_message_free_unpacked(&resp->base, NULL);
				grpc_slice_unref(flat);
				grpc_byte_buffer_reader_destroy(&rd);
				grpc_byte_buffer_destroy(c[i].msg);
				c[i].msg = NULL;
			}
			break;
		}
	}
	for (int i = 0; i < n; i++)
		grpc_call_cancel(c[i].call, NULL);
	while (outstanding > 0) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		outstanding--;
	}
	for (int i = 0; i < n; i++) {
		if (c[i].msg)
			grpc_byte_buffer_destroy(c[i].msg);
		grpc_call_unref(c[i].call);
		grpc_metadata_array_destroy(&c[i].md);
		grpc_metadata_array_destroy(&c[i].tmd);
		grpc_slice_unref(c[i].details);
	}
	free(c);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_channel_destroy(ch);
	return good;
}

int main(int argc, char **argv)
{
	Agent a = {0}, b = {0}, n1 = {0};
	Stream s, s2;
	char out[4096];

	if (argc != 2) {
		fprintf(stderr, "usage: %s /path/to/svidfs-devagent\n", argv[0]);
		return 2;
	}
	devagent = argv[1];
	snprintf(dir, sizeof dir, "/tmp/svidfs-test.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	grpc_init();
	printf("1..73\n");

	const char *a_args[] = {"--trust-domain", "example.org", "--federate-with", "other.org",
				"--entry", "spiffe://example.org/web selectors=k8s:ns:default,k8s:sa:web hint=web federates_with=other.org",
				"--entry", "spiffe://example.org/me selectors=unix:uid:0",
				"--entry", "spiffe://example.org/admin selectors=k8s:ns:default admin=true", "--auto-k8s",
				NULL};
	ok(start_agent(&a, "a", a_args) == 0, "devagent starts and signals ready");

	/* 1. first message with a matching entry */
	const char *web_sel[] = {"k8s:ns:default", "k8s:sa:web", "k8s:pod-name:web-0", NULL};
	sub_x509(&s, &a, web_sel, 0);
	DX509Resp *r = next_dx509(&s, 5000);
	ok(r && r->n_x509_svids == 1, "SubscribeToX509SVIDs: first message has the matching SVID (admin entry excluded)");
	char *serial1 = NULL;
	if (r && r->n_x509_svids == 1) {
		Spire__Api__Types__X509SVID *x = r->x509_svids[0]->x509_svid;
		int64_t not_after = 0;
		serial1 = leaf_serial(x->cert_chain[0].data, x->cert_chain[0].len, &not_after);
		ok(!strcmp(x->id->trust_domain, "example.org") && !strcmp(x->id->path, "/web") &&
			   !strcmp(x->hint, "web"),
		   "SVID id and hint");
		ok(x->n_cert_chain == 1 && uri_san_is(x->cert_chain[0].data, x->cert_chain[0].len,
						      "spiffe://example.org/web"),
		   "leaf has one URI SAN, cA=false, digitalSignature");
		ok(x->expires_at == not_after, "expires_at equals NotAfter");
		ok(r->x509_svids[0]->x509_svid_key.len > 0, "private key included");
		ok(r->n_federates_with == 1 && !strcmp(r->federates_with[0], "spiffe://other.org"),
		   "federates_with lists spiffe://other.org");
	} else {
		for (int i = 0; i < 5; i++)
			ok(false, "(no SVID)");
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* 2. rotation push */
	int64_t t0 = mono_us();
	ok(ctl(&a, out, sizeof out, "rotate spiffe://example.org/web") == 0 && strstr(out, "rotated=1"),
	   "ctl rotate answers rotated=1");
	r = next_dx509(&s, 5000);
	int64_t dt = mono_us() - t0;
	char *serial2 = r && r->n_x509_svids == 1
				? leaf_serial(r->x509_svids[0]->x509_svid->cert_chain[0].data,
					      r->x509_svids[0]->x509_svid->cert_chain[0].len, NULL)
				: NULL;
	ok(serial1 && serial2 && strcmp(serial1, serial2) != 0, "rotation pushes a new serial (%lld us incl. ctl process)",
	   (long long)dt);
	free(serial1);
	free(serial2);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	stream_close(&s);

	/* 3. no match -> empty message, stream stays open, entry added later arrives */
	const char *pod_sel[] = {"k8s:pod-uid:abc", "k8s:ns:late", NULL};
	sub_x509(&s, &a, pod_sel, 0);
	r = next_dx509(&s, 5000);
	ok(r && r->n_x509_svids == 0 && r->n_federates_with == 0, "no match: empty x509_svids at once");
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	r = next_dx509(&s, 300);
	ok(!r && !s.status_done, "no match: stream stays open");
	ok(ctl(&a, out, sizeof out, "add-entry spiffe://example.org/late selectors=k8s:pod-uid:abc") == 0 &&
		   strstr(out, "id="),
	   "ctl add-entry");
	r = next_dx509(&s, 5000);
	ok(r && r->n_x509_svids == 1 && !strcmp(r->x509_svids[0]->x509_svid->id->path, "/late"),
	   "added entry is pushed to the open stream");
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	ok(ctl(&a, out, sizeof out, "remove-entry spiffe://example.org/late") == 0, "ctl remove-entry");
	r = next_dx509(&s, 5000);
	ok(r && r->n_x509_svids == 0, "removal pushes an empty snapshot");
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* 4. close-streams fault */
	ok(ctl(&a, out, sizeof out, "close-streams") == 0, "ctl close-streams");
	ok(status_is(&s, GRPC_STATUS_UNAVAILABLE, NULL), "close-streams ends the stream with UNAVAILABLE");
	stream_close(&s);

	/* 5. request validation */
	sub_x509(&s, &a, web_sel, 42);
	ok(status_is(&s, GRPC_STATUS_INVALID_ARGUMENT,
		     "must provide either selectors or non-zero PID, but not both"),
	   "selectors and pid together: InvalidArgument");
	stream_close(&s);
	sub_x509(&s, &a, NULL, 0);
	ok(status_is(&s, GRPC_STATUS_INVALID_ARGUMENT,
		     "must provide either selectors or non-zero PID, but not both"),
	   "neither selectors nor pid: InvalidArgument");
	stream_close(&s);
	const char *bad_sel[] = {":novalue", NULL};
	sub_x509(&s, &a, bad_sel, 0);
	ok(status_is(&s, GRPC_STATUS_INVALID_ARGUMENT, "could not parse provided selectors"),
	   "empty selector type: InvalidArgument");
	stream_close(&s);

	/* 6. pid mode: our own pid attests as unix:uid:0 */
	sub_x509(&s, &a, NULL, (int32_t)getpid());
	r = next_dx509(&s, 5000);
	ok(r && r->n_x509_svids == 1 && !strcmp(r->x509_svids[0]->x509_svid->id->path, "/me"),
	   "pid mode attests the process (unix:uid:0)");
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	stream_close(&s);

	/* 7. Workload API header and identity */
	X509SVIDRequest wreq = X509_SVIDREQUEST__INIT;
	stream_open(&s, a.wsock, "/SpiffeWorkloadAPI/FetchX509SVID", &wreq.base, false);
	ok(status_is(&s, GRPC_STATUS_INVALID_ARGUMENT, "security header missing from request"),
	   "Workload API without the security header: InvalidArgument");
	stream_close(&s);
	stream_open(&s, a.wsock, "/SpiffeWorkloadAPI/FetchX509SVID", &wreq.base, true);
	ProtobufCMessage *m = NULL;
	int k = stream_next(&s, &x509_svidresponse__descriptor, 5000, &m);
	X509SVIDResponse *wr = (X509SVIDResponse *)m;
	ok(k == 1 && wr->n_svids == 1 && !strcmp(wr->svids[0]->spiffe_id, "spiffe://example.org/me") &&
		   wr->svids[0]->bundle.len > 0,
	   "FetchX509SVID by uid: the unix:uid:0 SVID, with bundle");
	if (k == 1)
		protobuf_c_message_free_unpacked(m, NULL);
	stream_close(&s);
	stream_open(&s, a.asock, "/SpiffeWorkloadAPI/FetchX509SVID", &wreq.base, true);
	ok(status_is(&s, GRPC_STATUS_UNIMPLEMENTED, NULL), "Workload API method on the admin socket: Unimplemented");
	stream_close(&s);

	/* 8. bundles */
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesRequest breq =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_BUNDLES_REQUEST__INIT;
	stream_open(&s, a.asock, D_PREFIX "SubscribeToX509Bundles", &breq.base, false);
	m = NULL;
	k = stream_next(&s, &spire__api__agent__delegatedidentity__v1__subscribe_to_x509_bundles_response__descriptor,
			5000, &m);
	DX509BResp *br = (DX509BResp *)m;
	ok(k == 1 && br->n_ca_certificates == 2 &&
		   !strcmp(br->ca_certificates[0]->key, "spiffe://example.org") &&
		   !strcmp(br->ca_certificates[1]->key, "spiffe://other.org"),
	   "SubscribeToX509Bundles: own and federated trust domains");
	if (k == 1)
		protobuf_c_message_free_unpacked(m, NULL);
	stream_close(&s);

	/* Workload API bundles: SPIRE sends the own trust domain plus the federated bundles of the
	 * caller's entries, not every bundle it holds (uid 0 is spiffe://example.org/me, which
	 * federates with nothing). Found by the interop suite against SPIRE v1.13.3. */
	X509BundlesRequest wbreq = X509_BUNDLES_REQUEST__INIT;
	stream_open(&s, a.wsock, "/SpiffeWorkloadAPI/FetchX509Bundles", &wbreq.base, true);
	m = NULL;
	k = stream_next(&s, &x509_bundles_response__descriptor, 5000, &m);
	ok(k == 1 && ((X509BundlesResponse *)m)->n_bundles == 1 &&
		   !strcmp(((X509BundlesResponse *)m)->bundles[0]->key, "spiffe://example.org"),
	   "FetchX509Bundles: the own trust domain only for a caller that federates with none");
	if (k == 1)
		protobuf_c_message_free_unpacked(m, NULL);
	stream_close(&s);
	JWTBundlesRequest wjreq = JWTBUNDLES_REQUEST__INIT;
	stream_open(&s, a.wsock, "/SpiffeWorkloadAPI/FetchJWTBundles", &wjreq.base, true);
	m = NULL;
	k = stream_next(&s, &jwtbundles_response__descriptor, 5000, &m);
	ok(k == 1 && ((JWTBundlesResponse *)m)->n_bundles == 1 &&
		   !strcmp(((JWTBundlesResponse *)m)->bundles[0]->key, "spiffe://example.org"),
	   "FetchJWTBundles: the own trust domain only for a caller that federates with none");
	if (k == 1)
		protobuf_c_message_free_unpacked(m, NULL);
	stream_close(&s);

	/* 9. JWT */
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesRequest jbreq =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_JWTBUNDLES_REQUEST__INIT;
	stream_open(&s2, a.asock, D_PREFIX "SubscribeToJWTBundles", &jbreq.base, false);
	m = NULL;
	k = stream_next(&s2, &spire__api__agent__delegatedidentity__v1__subscribe_to_jwtbundles_response__descriptor,
			5000, &m);
	DJwtBResp *jb = (DJwtBResp *)m;
	char *jwks = k == 1 && jb->n_bundles >= 1
			     ? strndup((const char *)jb->bundles[0]->value.data, jb->bundles[0]->value.len)
			     : NULL;
	ok(jwks && !strstr(jwks, "\"use\"") && strstr(jwks, "\"crv\":\"P-256\""),
	   "SubscribeToJWTBundles: JWKS with an EC P-256 jwt-svid key");
	if (k == 1)
		protobuf_c_message_free_unpacked(m, NULL);
	stream_close(&s2);

	DJwtReq jreq = SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__FETCH_JWTSVIDS_REQUEST__INIT;
	Spire__Api__Types__Selector js[2], *jsp[2] = {&js[0], &js[1]};
	spire__api__types__selector__init(&js[0]);
	spire__api__types__selector__init(&js[1]);
	js[0].type = js[1].type = "k8s";
	js[0].value = "ns:default";
	js[1].value = "sa:web";
	jreq.n_selectors = 2;
	jreq.selectors = jsp;
	stream_open(&s, a.asock, D_PREFIX "FetchJWTSVIDs", &jreq.base, false);
	ok(status_is(&s, GRPC_STATUS_INVALID_ARGUMENT, NULL), "FetchJWTSVIDs without audience: InvalidArgument");
	stream_close(&s);
	char *aud[] = {"svc-a", "svc-b"};
	jreq.n_audience = 2;
	jreq.audience = aud;
	stream_open(&s, a.asock, D_PREFIX "FetchJWTSVIDs", &jreq.base, false);
	m = NULL;
	k = stream_next(&s, &spire__api__agent__delegatedidentity__v1__fetch_jwtsvids_response__descriptor,
			5000, &m);
	DJwtResp *jr = (DJwtResp *)m;
	bool jwt_ok = k == 1 && jr->n_svids == 1 && jwks && jwt_verifies(jr->svids[0]->token, jwks);
	ok(jwt_ok, "FetchJWTSVIDs: ES256 token verifies against the JWKS key");
	if (k == 1 && jr->n_svids == 1) {
		const char *tok = jr->svids[0]->token;
		const char *dot = strchr(tok, '.');
		uint8_t *hdr = NULL, *claims = NULL;
		size_t hl = 0, cl = 0;
		const char *dot2 = dot ? strchr(dot + 1, '.') : NULL;
		b64url_decode(tok, (size_t)(dot - tok), &hdr, &hl);
		if (dot2)
			b64url_decode(dot + 1, (size_t)(dot2 - dot - 1), &claims, &cl);
		char *kid = json_member(jwks, "kid"), want[160];
		snprintf(want, sizeof want, "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kid ? kid : "");
		ok(hdr && hl == strlen(want) && !memcmp(hdr, want, hl), "JWT header alg/kid/typ");
		ok(claims && memmem(claims, cl, "\"aud\":[\"svc-a\",\"svc-b\"]", 23) &&
			   memmem(claims, cl, "\"sub\":\"spiffe://example.org/web\"", 31) &&
			   jr->svids[0]->expires_at > jr->svids[0]->issued_at,
		   "JWT claims aud (array) and sub; expires_at > issued_at");
		free(kid);
		free(hdr);
		free(claims);
	} else {
		ok(false, "JWT header");
		ok(false, "JWT claims");
	}
	if (k == 1)
		protobuf_c_message_free_unpacked(m, NULL);
	stream_close(&s);
	free(jwks);
	js[0].value = "ns:nobody";
	stream_open(&s, a.asock, D_PREFIX "FetchJWTSVIDs", &jreq.base, false);
	ok(status_is(&s, GRPC_STATUS_PERMISSION_DENIED, "no identity issued"),
	   "FetchJWTSVIDs without a match: PermissionDenied");
	stream_close(&s);

	/* 10. an agent that does not authorize us and has no entries */
	char conf[96];
	snprintf(conf, sizeof conf, "%s/b.conf", dir);
	FILE *cf = fopen(conf, "w");
	fputs("# authorized delegates\nauthorized-uid 4242\nsvid-ttl 10m\n", cf);
	fclose(cf);
	const char *b_args[] = {"--config", conf, NULL};
	ok(start_agent(&b, "b", b_args) == 0, "second devagent (config file: authorized uid 4242 only) starts");
	sub_x509(&s, &b, web_sel, 0);
	ok(status_is(&s, GRPC_STATUS_PERMISSION_DENIED, "caller not configured as an authorized delegate"),
	   "unauthorized uid: PermissionDenied");
	stream_close(&s);
	stream_open(&s, b.wsock, "/SpiffeWorkloadAPI/FetchX509SVID", &wreq.base, true);
	ok(status_is(&s, GRPC_STATUS_PERMISSION_DENIED, "no identity issued"),
	   "Workload API caller without an entry: PermissionDenied");
	stream_close(&s);
	ok(stop_agent(&b) == 0 && access(b.wsock, F_OK) < 0 && access(b.asock, F_OK) < 0,
	   "SIGTERM: exit 0 and sockets removed");

	/* 11. nested: one root, an intermediate per agent */
	char root_cert[96], root_key[96], cmd[512];
	snprintf(root_cert, sizeof root_cert, "%s/root.pem", dir);
	snprintf(root_key, sizeof root_key, "%s/root.key", dir);
	snprintf(cmd, sizeof cmd, "%s gen-root --trust-domain example.org --out-cert %s --out-key %s",
		 devagent, root_cert, root_key);
	ok(system(cmd) == 0, "gen-root writes a root");
	const char *n_args[] = {"--trust-domain", "example.org", "--upstream-cert", root_cert,
				"--upstream-key", root_key, "--key-type", "rsa-2048",
				"--entry", "spiffe://example.org/web selectors=k8s:sa:web", NULL};
	ok(start_agent(&n1, "n1", n_args) == 0, "devagent with --upstream-cert starts");
	const char *n_sel[] = {"k8s:sa:web", NULL};
	sub_x509(&s, &n1, n_sel, 0);
	r = next_dx509(&s, 10000);
	FILE *f = fopen(root_cert, "r");
	X509 *root = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	unsigned char *root_der = NULL;
	int root_len = root ? i2d_X509(root, &root_der) : 0;
	ok(r && r->n_x509_svids == 1 && r->x509_svids[0]->x509_svid->n_cert_chain == 2 &&
		   root_len > 0 &&
		   chain_verifies(r->x509_svids[0]->x509_svid->cert_chain, 2, root_der, (size_t)root_len),
	   "nested: chain carries the intermediate and verifies against the shared root (RSA leaf)");
	OPENSSL_free(root_der);
	X509_free(root);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	stream_close(&s);
	ok(stop_agent(&n1) == 0, "nested devagent exits 0");



	/* 13. push latency from a control request to the stream, and 1,000 streams */
	sub_x509(&s, &a, web_sel, 0);
	if ((r = next_dx509(&s, 5000)))
		protobuf_c_message_free_unpacked(&r->base, NULL);
	int cfd = ctl_connect_fd(&a);
	int64_t lat[40];
	int nlat = 0;
	for (int i = 0; i < 40 && cfd >= 0; i++) {
		t0 = mono_us();
		if (ctl_direct(cfd, "rotate", "spiffe://example.org/web") != 0)
			break;
		r = next_dx509(&s, 3000);
		if (!r)
			break;
		lat[nlat++] = mono_us() - t0;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	qsort(lat, (size_t)nlat, sizeof *lat, cmp_i64);
	ok(nlat == 40 && lat[20] < 20000, "rotate -> pushed message: median %lld us, max %lld us (mint + push + ctl round trip)",
	   nlat ? (long long)lat[nlat / 2] : -1LL, nlat ? (long long)lat[nlat - 1] : -1LL);
	if (cfd >= 0)
		close(cfd);
	stream_close(&s);
	ok(many_streams(&a, 1000) == 1000, "1,000 concurrent subscriptions on one channel each get their SVID");
	/* Cancels reach the server asynchronously: allow a few seconds. */
	bool gone = false;
	for (int i = 0; i < 100 && !gone; i++) {
		gone = ctl(&a, out, sizeof out, "info") == 0 && strstr(out, "svid_streams=0");
		if (!gone)
			usleep(50 * 1000);
	}
	ok(gone, "all streams gone after cancel");
	/* 12. rotation at half the TTL, --auto-k8s, faults, first-SVID delay, restart */
	Agent fa = {0};
	const char *f_args[] = {"--svid-ttl", "2s", "--auto-k8s", "--entry",
				"spiffe://example.org/me selectors=unix:uid:0", NULL};
	ok(start_agent(&fa, "f", f_args) == 0, "devagent with --svid-ttl 2s --auto-k8s starts");
	const char *k8s_sel[] = {"k8s:pod-uid:u-1", "k8s:ns:shop", "k8s:sa:cart", NULL};
	sub_x509(&s, &fa, k8s_sel, 0);
	r = next_dx509(&s, 5000);
	ok(r && r->n_x509_svids == 1 && !strcmp(r->x509_svids[0]->x509_svid->id->path, "/ns/shop/sa/cart"),
	   "--auto-k8s: spiffe://td/ns/NS/sa/SA for a pod's selectors");
	char *sa = r && r->n_x509_svids == 1 ? leaf_serial(r->x509_svids[0]->x509_svid->cert_chain[0].data,
							    r->x509_svids[0]->x509_svid->cert_chain[0].len, NULL)
					     : NULL;
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	t0 = mono_us();
	r = next_dx509(&s, 4000);
	dt = mono_us() - t0;
	char *sb = r && r->n_x509_svids == 1 ? leaf_serial(r->x509_svids[0]->x509_svid->cert_chain[0].data,
							    r->x509_svids[0]->x509_svid->cert_chain[0].len, NULL)
					     : NULL;
	ok(sa && sb && strcmp(sa, sb) && dt < 2500000, "re-minted and pushed at half the TTL (after %lld ms)",
	   (long long)dt / 1000);
	free(sa);
	free(sb);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	ok(ctl(&fa, out, sizeof out, "stall 800") == 0, "ctl stall 800");
	t0 = mono_us();
	/* A half-TTL push may have been on the wire before the stall began. */
	if ((r = next_dx509(&s, 50)))
		protobuf_c_message_free_unpacked(&r->base, NULL);
	r = next_dx509(&s, 350);
	ok(!r && !s.status_done, "stall: no message, stream open");
	r = next_dx509(&s, 3000);
	dt = mono_us() - t0;
	ok(r && r->n_x509_svids == 1 && dt >= 700000, "stall: the held update arrives after the stall (%lld ms)",
	   (long long)dt / 1000);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	ok(ctl(&fa, out, sizeof out, "malformed") == 0 && strstr(out, "sent=1"), "ctl malformed");
	/* Half-TTL pushes (every second here) may come first. */
	for (int i = 0; i < 4; i++) {
		m = NULL;
		k = stream_next(&s, &spire__api__agent__delegatedidentity__v1__subscribe_to_x509_svids_response__descriptor,
				3000, &m);
		if (k != 1)
			break;
		protobuf_c_message_free_unpacked(m, NULL);
	}
	ok(k == -EBADMSG, "malformed: an undecodable message arrives");
	ok(ctl(&fa, out, sizeof out, "oversize 200k") == 0 && strstr(out, "sent=1"), "ctl oversize 200k");
	for (int i = 0; i < 4; i++) {
		r = next_dx509(&s, 3000);
		if (!r || s.last_len > 200 * 1024)
			break;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		r = NULL;
	}
	ok(r && r->n_x509_svids == 1 && s.last_len > 200 * 1024,
	   "oversize: a valid message of %zu bytes, still decodable", s.last_len);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	X509SVIDRequest wreq2 = X509_SVIDREQUEST__INIT;
	stream_open(&s2, fa.wsock, "/SpiffeWorkloadAPI/FetchX509SVID", &wreq2.base, true);
	m = NULL;
	k = stream_next(&s2, &x509_svidresponse__descriptor, 5000, &m);
	ok(k == 1, "Workload API stream open");
	if (k == 1)
		protobuf_c_message_free_unpacked(m, NULL);
	ctl(&fa, NULL, 0, "rotate spiffe://example.org/me");
	m = NULL;
	k = stream_next(&s2, &x509_svidresponse__descriptor, 3000, &m);
	ok(k == 1 && ((X509SVIDResponse *)m)->n_svids == 1, "Workload API stream gets the rotation");
	if (k == 1)
		protobuf_c_message_free_unpacked(m, NULL);

	ok(ctl(&fa, out, sizeof out, "restart 400") == 0, "ctl restart 400");
	ok(status_is(&s, GRPC_STATUS_UNAVAILABLE, NULL), "restart: Delegated stream ends UNAVAILABLE");
	ok(status_is(&s2, GRPC_STATUS_UNAVAILABLE, NULL), "restart: Workload stream ends UNAVAILABLE");
	stream_close(&s);
	stream_close(&s2);
	ok(access(fa.asock, F_OK) < 0, "restart: socket gone meanwhile");
	/* Back after its 400 ms: wait for the socket (bounded), not for a fixed time. */
	for (int i = 0; i < 500 && access(fa.asock, F_OK) < 0; i++)
		usleep(20 * 1000);
	ok(ctl(&fa, out, sizeof out, "list") == 0 && strstr(out, "auto-u-1 spiffe://example.org/ns/shop/sa/cart"),
	   "restart keeps entries");
	sub_x509(&s, &fa, k8s_sel, 0);
	r = next_dx509(&s, 5000);
	ok(r && r->n_x509_svids == 1, "after restart: streams work again");
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	stream_close(&s);

	ok(ctl(&fa, out, sizeof out, "refuse 1500") == 0, "ctl refuse 1500");
	sub_x509(&s, &fa, k8s_sel, 0);
	ok(status_is(&s, GRPC_STATUS_UNAVAILABLE, NULL), "refuse: a new connection fails UNAVAILABLE");
	stream_close(&s);
	/* End the refusal now rather than sleeping past it. */
	ok(ctl(&fa, out, sizeof out, "refuse 0") == 0, "ctl refuse 0 ends the refusal");

	ok(ctl(&fa, out, sizeof out, "set-delay 700") == 0, "ctl set-delay 700");
	const char *k8s_sel2[] = {"k8s:pod-uid:u-2", "k8s:ns:shop", "k8s:sa:pay", NULL};
	t0 = mono_us();
	sub_x509(&s, &fa, k8s_sel2, 0);
	r = next_dx509(&s, 5000);
	dt = mono_us() - t0;
	ok(r && r->n_x509_svids == 1 && dt >= 600000,
	   "first-SVID delay: the first message waits for the SVID (%lld ms)", (long long)dt / 1000);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	stream_close(&s);
	ok(stop_agent(&fa) == 0, "fault devagent exits 0");
	/* a second devagent on a live socket fails and leaves the first one alone */
	for (int i = 0; i < 2; i++) {
		snprintf(cmd, sizeof cmd, "%s --admin-socket %s 2>/dev/null", devagent, a.asock);
		int st2 = system(cmd);
		ok(WIFEXITED(st2) && WEXITSTATUS(st2) == 1 && access(a.asock, F_OK) == 0,
		   "second devagent on a live socket exits 1 (attempt %d), socket kept", i + 1);
	}
	sub_x509(&s, &a, web_sel, 0);
	r = next_dx509(&s, 5000);
	ok(r && r->n_x509_svids == 1, "first devagent still serves its socket");
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	stream_close(&s);

	/* regression: an entry outside the trust domain was logged after it was freed (crash) */
	snprintf(cmd, sizeof cmd, "%s --admin-socket %s/x.sock --entry 'spiffe://other.org/x selectors=a:b' 2>/dev/null",
		 devagent, dir);
	int st = system(cmd);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 1, "entry outside the trust domain: clean error, exit 1");
	ok(stop_agent(&a) == 0, "first devagent exits 0 on SIGTERM");
	grpc_shutdown();
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	(void)!system(cmd);
	return failures ? 1 : 0;
}
