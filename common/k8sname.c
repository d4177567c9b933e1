// SPDX-License-Identifier: Apache-2.0
#include <string.h>

#include "k8sname.h"

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool lower_hex(char c)
{
	return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9');
}

/* One label of n bytes at s: alphanumeric at both ends, '-' allowed inside. */
static bool label_ok(const char *s, size_t n)
{
	if (n == 0 || !lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 1; i + 1 < n; i++)
		if (!lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

bool k8s_dns1123_label(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n <= K8S_DNS1123_LABEL_MAX && label_ok(s, n);
}

bool k8s_dns1123_subdomain(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > K8S_DNS1123_SUBDOMAIN_MAX)
		return false;
	for (const char *p = s;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (!label_ok(p, l))
			return false;
		if (!dot)
			return true;
		p = dot + 1;
	}
}

bool k8s_namespace_valid(const char *s)
{
	return k8s_dns1123_label(s);
}

bool k8s_pod_name_valid(const char *s)
{
	return k8s_dns1123_subdomain(s);
}

bool k8s_service_account_valid(const char *s)
{
	return k8s_dns1123_subdomain(s);
}

bool k8s_pod_uid_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 32) {
		for (size_t i = 0; i < n; i++)
			if (!lower_hex(s[i]))
				return false;
		return true;
	}
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !lower_hex(s[i]))
			return false;
	}
	return true;
}
