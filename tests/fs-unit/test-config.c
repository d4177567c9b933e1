// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "kv.h"
#include "registration.h"

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/svidfs-config.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	(void)!system(cmd);
}

TestSuite(config, .init = setup, .fini = teardown);

Test(config, file_then_flags)
{
	char conf[128], ids[128], *err = NULL;
	snprintf(ids, sizeof ids, "%s/ids", tmpdir);
	mkdir(ids, 0700);
	write_file("svidfs.conf",
		   "# comment\n\n"
		   "mountpoint = /run/x\n"
		   "agent = child-01 unix:///run/spire/agent-sockets/child-01-socket\n"
		   "agent=child-02 unix:///run/spire/agent-sockets/child-02-socket\n"
		   "log_level = debug\n"
		   "cgroup_root = /svidfs-test\n");
	write_file("ids/node.conf", "name = node-agent\nselector = unix:uid:0\nuid=0\n");
	write_file("ids/ignored.txt", "garbage\n");
	snprintf(conf, sizeof conf, "%s/svidfs.conf", tmpdir);
	char idflag[160];
	snprintf(idflag, sizeof idflag, "--identities-dir=%s", ids);
	char *argv[] = {"svidfs", "-c", conf,	  "--state-dir=/var/tmp/s",
			idflag,	  "-m", "/mnt/y", NULL};
	Config c;
	cr_assert_eq(config_load(7, argv, &c, &err), 0, "%s", err ? err : "");
	cr_assert_str_eq(c.mountpoint, "/mnt/y");
	cr_assert_str_eq(c.state_dir, "/var/tmp/s");
	cr_assert_eq(c.log_level, 7);
	cr_assert_eq(c.n_agents, 2);
	cr_assert_str_eq(c.agents[1].name, "child-02");
	cr_assert_str_eq(config_find_agent(&c, "child-01")->address,
			 "unix:///run/spire/agent-sockets/child-01-socket");
	cr_assert_str_eq(c.cgroup_root, "/svidfs-test");
	cr_assert_eq(c.n_identities, 1);
	cr_assert_str_eq(kv_get(c.identities[0], "name"), "node-agent");
	cr_assert_str_eq(kv_get(c.identities[0], "kind"), "identity");
	config_done(&c);
}

Test(config, agent_flags_replace_file_agents_and_defaults)
{
	char *err = NULL;
	char *argv[] = {"svidfs", "--config=/nonexistent/x.conf", NULL};
	Config c;
	cr_assert_eq(config_load(2, argv, &c, &err), -ENOENT);
	cr_assert_not_null(err);
	free(err);
	config_done(&c);
	char idflag[160];
	snprintf(idflag, sizeof idflag, "--identities-dir=%s/none", tmpdir);
	char *argv2[] = {"svidfs", "-a", "a=unix:///tmp/a.sock", "--agent=b=unix:///tmp/b.sock",
			 idflag,   NULL};
	cr_assert_eq(config_load(5, argv2, &c, &err), 0);
	cr_assert_eq(c.n_agents, 2);
	cr_assert_str_eq(c.agents[0].name, "a");
	config_done(&c);
	char *argv3[] = {"svidfs", idflag, NULL};
	cr_assert_eq(config_load(2, argv3, &c, &err), 0);
	cr_assert_eq(c.n_agents, 1);
	cr_assert_str_eq(c.agents[0].address, CONFIG_DEFAULT_AGENT);
	config_done(&c);
}

Test(config, bad_input)
{
	Config c = {};
	char *err = NULL;
	cr_assert_eq(config_parse_text(&c, "nonsense\n", "t", &err), -EINVAL);
	cr_assert(strstr(err, "t:1"));
	free(err);
	err = NULL;
	cr_assert_eq(config_parse_text(&c, "\nunknown=1\n", "t", &err), -EINVAL);
	cr_assert(strstr(err, "t:2"));
	free(err);
	err = NULL;
	cr_assert_eq(config_parse_text(&c, "agent=x tcp://1.2.3.4:1\n", "t", &err), -EINVAL);
	free(err);
	err = NULL;
	cr_assert_eq(config_parse_text(&c, "log_level=loud\n", "t", &err), -EINVAL);
	free(err);
	config_done(&c);
	char *argv[] = {"svidfs", "extra", NULL};
	cr_assert_eq(config_load(2, argv, &c, &err), -EINVAL);
	free(err);
	config_done(&c);
}

/* pod_pattern was removed (attribution follows kubelet's layout, issue 12): the default of
 * earlier releases still loads (and is ignored, with a warning from main), any other pattern
 * is refused, on the command line too, rather than silently changing who counts as a pod. */
Test(config, obsolete_pod_pattern)
{
	Config c = {};
	char *err = NULL;
	cr_assert_eq(config_parse_text(
			 &c, "pod_pattern = ^[a-z_-]*pod([0-9a-fA-F_-]{36})(\\.slice)?$\n", "t",
			 &err),
		     0, "%s", err ? err : "");
	cr_assert_str_eq(c.pod_pattern, CONFIG_OBSOLETE_POD_PATTERN);
	cr_assert_eq(config_parse_text(&c, "pod_pattern = ^workload-([a-z0-9]+)$\n", "t", &err),
		     -EINVAL);
	cr_assert(strstr(err, "t:1: pod_pattern is no longer supported"), "%s", err);
	free(err);
	err = NULL;
	config_done(&c);
	char conf[128];
	write_file("empty.conf", "");
	snprintf(conf, sizeof conf, "--config=%s/empty.conf", tmpdir);
	char *argv[] = {"svidfs", conf, "--pod-pattern=(x)", NULL};
	cr_assert_eq(config_load(3, argv, &c, &err), -EINVAL);
	cr_assert(strstr(err, "pod_pattern is no longer supported"), "%s", err);
	free(err);
	config_done(&c);
}

static Registration *reg(const char *text, int expect)
{
	KvMsg *m = NULL;
	char *err = NULL;
	const char *why = NULL;
	Registration *r = NULL;
	cr_assert_eq(config_parse_kv_file_text(text, &m, &err), 0);
	cr_assert_eq(registration_from_kv(m, &r, &why), expect, "%s", why ? why : "");
	kv_free(m);
	return r;
}

Test(registration, pod_selectors_and_defaults)
{
	Registration *r = reg("op=register\npod_uid=6c1f0a2e-7d3b-4c1e-9a51-0d8e2f4b7a10\nnamespace=ns1\nservice_account=sa1\n"
			      "pod_name=web-0\nref=vol1\n",
			      0);
	cr_assert_str_eq(r->name, "pods/6c1f0a2e-7d3b-4c1e-9a51-0d8e2f4b7a10");
	cr_assert_eq(r->n_selectors, 4);
	cr_assert_str_eq(r->selectors[0], "k8s:pod-uid:6c1f0a2e-7d3b-4c1e-9a51-0d8e2f4b7a10");
	cr_assert_str_eq(r->selectors[1], "k8s:ns:ns1");
	cr_assert_str_eq(r->selectors[2], "k8s:sa:sa1");
	cr_assert_str_eq(r->selectors[3], "k8s:pod-name:web-0");
	cr_assert_eq(r->layout, TREE_LAYOUT_SPIFFE);
	cr_assert_eq(r->cert_mode, 0444);
	cr_assert_eq(r->key_mode, 0400);
	registration_free(r);
	r = reg("pod_uid=0f6e2d1c0b9a88776655443322110000\ngid=1000\nagent=b\nagent=a\n", 0);
	cr_assert_eq(r->key_mode, 0440);
	cr_assert_eq(r->gid, 1000);
	cr_assert_eq(r->n_agents, 2);
	cr_assert_str_eq(r->agents[0], "b");
	registration_free(r);
}

Test(registration, refusals)
{
	reg("namespace=x\n", -EINVAL);
	reg("pod_uid=../x\n", -EINVAL);
	reg("pod_uid=22222222-3333-4444-8555-666666666666\nkey_mode=0444\n", -EINVAL);
	registration_free(reg("pod_uid=22222222-3333-4444-8555-666666666666\nkey_mode=0440\n", 0));
	reg("pod_uid=22222222-3333-4444-8555-666666666666\ncert_mode=0666\n", -EINVAL);
	reg("pod_uid=22222222-3333-4444-8555-666666666666\nlayout=weird\n", -EINVAL);
	reg("pod_uid=22222222-3333-4444-8555-666666666666\nsvid_file_name=a/b\n", -EINVAL);
	reg("pod_uid=22222222-3333-4444-8555-666666666666\nlayout=spiffe\nsvid_file_name=a\n", -EINVAL);
	reg("pod_uid=22222222-3333-4444-8555-666666666666\njwt_svid=onlyname\n", -EINVAL);
	reg("pod_uid=22222222-3333-4444-8555-666666666666\nselector=k8s:ns:x\n", -EINVAL);
	reg("kind=identity\nname=x\n", -EINVAL);
	reg("kind=identity\nname=x\nselector=nocolon\n", -EINVAL);
	reg("kind=thing\n", -EINVAL);
	reg("pod_uid=22222222-3333-4444-8555-666666666666\nnamespace=Bad_NS\n", -EINVAL);
}

/* The pod facts follow the Kubernetes API's rules (common/k8sname.c): the "namespace=.."
 * was accepted and became the selector k8s:ns:.. */
Test(registration, pod_facts_follow_the_kubernetes_rules)
{
#define POD "pod_uid=22222222-3333-4444-8555-666666666666\n"
	reg(POD "namespace=..\n", -EINVAL);
	reg(POD "namespace=.\n", -EINVAL);
	reg(POD "namespace=a.b\n", -EINVAL); /* a label: no dot */
	reg(POD "namespace=-ns\n", -EINVAL);
	reg(POD "namespace=ns-\n", -EINVAL);
	reg(POD "service_account=a..b\n", -EINVAL);
	reg(POD "service_account=.a\n", -EINVAL);
	reg(POD "pod_name=web-0.\n", -EINVAL);
	reg(POD "pod_name=Web-0\n", -EINVAL);
	registration_free(reg(POD "namespace=kube-system\nservice_account=a.b-c\n"
				  "pod_name=web-0.x\n",
			      0));
	reg("pod_uid=1234-abcd\n", -EINVAL);			     /* neither form */
	reg("pod_uid=22222222-3333-4444-8555-66666666666G\n", -EINVAL); /* not hex */
	reg("pod_uid=22222222-3333-4444-8555-6666666666666\n", -EINVAL);
	reg("pod_uid=0F6E2D1C0B9A88776655443322110000\n", -EINVAL); /* uppercase */
	registration_free(reg("pod_uid=0f6e2d1c0b9a88776655443322110000\n", 0));
#undef POD
}

Test(registration, custom_names_imply_spiffe_helper_and_round_trip)
{
	Registration *r = reg("pod_uid=11111111-2222-4333-8444-555555555555\nsvid_file_name=tls.crt\nsvid_key_file_name=tls.key\n"
			      "jwt_svid=token aud-1\njwt_svid=t2 https://x/y\n"
			      "include_federated_domains=true\njwt_bundle_file_name=jb.json\n",
			      0);
	cr_assert_eq(r->layout, TREE_LAYOUT_SPIFFE_HELPER);
	cr_assert_eq(r->n_jwt, 2);
	cr_assert_str_eq(r->jwt[1].audience, "https://x/y");
	cr_assert(r->include_federated);
	KvMsg *m = NULL;
	kv_new(&m);
	cr_assert_eq(registration_to_kv(r, m), 0);
	Registration *r2 = NULL;
	const char *why = NULL;
	cr_assert_eq(registration_from_kv(m, &r2, &why), 0);
	cr_assert(registration_equal(r, r2));
	char *file = NULL;
	cr_assert_eq(registration_state_file(r2, &file), 0);
	cr_assert_str_eq(file, "pod-11111111-2222-4333-8444-555555555555.conf");
	free(file);
	registration_free(r2);
	kv_free(m);
	Registration *r3 = reg("pod_uid=11111111-2222-4333-8444-555555555555\nsvid_file_name=other.crt\n", 0);
	cr_assert_not(registration_equal(r, r3));
	registration_free(r3);
	registration_free(r);
}

Test(registration, identity)
{
	Registration *r =
	    reg("kind=identity\nname=node-agent\nselector=unix:uid:0\nselector=unix:gid:0\n", 0);
	cr_assert_str_eq(r->name, "identities/node-agent");
	cr_assert_eq(r->n_selectors, 2);
	KvMsg *m = NULL;
	kv_new(&m);
	cr_assert_eq(registration_to_kv(r, m), 0);
	cr_assert_str_eq(kv_get(m, "name"), "node-agent");
	kv_free(m);
	registration_free(r);
}

Test(registration, identity_file_refuses_other_kinds)
{
	static const char *const texts[] = {
	    "kind = self\n",
	    "kind = pod\npod_uid = 6c1f0a2e-7d3b-4c1e-9a51-0d8e2f4b7a10\n",
	};
	for (size_t i = 0; i < 2; i++) {
		KvMsg *m = NULL;
		char *err = NULL;
		const char *why = NULL;
		Registration *r = (Registration *)0x1;
		cr_assert_eq(config_parse_kv_file_text(texts[i], &m, &err), 0);
		cr_assert_eq(registration_from_identity_file(m, &r, &why), -EINVAL);
		cr_assert_str_eq(why, "kind must be identity");
		cr_assert_eq(r, (Registration *)0x1, "*ret untouched on failure");
		kv_free(m);
	}
	KvMsg *m = NULL;
	char *err = NULL;
	const char *why = NULL;
	Registration *r = NULL;
	cr_assert_eq(config_parse_kv_file_text("kind=identity\nname=n\nselector=unix:uid:0\n", &m,
					       &err),
		     0);
	cr_assert_eq(registration_from_identity_file(m, &r, &why), 0);
	cr_assert_str_eq(r->name, "identities/n");
	registration_free(r);
	kv_free(m);
}

/* A unit suffix must not wrap the size around 2^64 into the accepted range. */
Test(config, secure_heap_suffix_does_not_wrap)
{
	static const char *const bad[] = {"secure_heap = 17179869185G\n",
					   "secure_heap = 18014398509482048k\n",
					   "secure_heap = 17592186044417M\n"};
	Config c = {};
	char *err = NULL;
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(config_parse_text(&c, bad[i], "t", &err), -EINVAL, "%s", bad[i]);
		free(err);
		err = NULL;
	}
	cr_assert_eq(config_parse_text(&c, "secure_heap = 4G\n", "t", &err), 0);
	cr_assert_eq(c.secure_heap, (size_t)4 << 30);
	cr_assert_eq(config_parse_text(&c, "secure_heap = 64k\n", "t", &err), 0);
	cr_assert_eq(c.secure_heap, (size_t)64 << 10);
	config_done(&c);
}
