/* SPDX-License-Identifier: Apache-2.0 */
/* k8sname.h: the Kubernetes API's rules for the pod facts kubelet hands to a CSI driver
 * (podInfoOnMount), the one copy shared by the daemon's registrations and the CSI plugin's
 * volume context. The rules follow apimachinery's validation exactly: a namespace is a DNS-1123
 * label, pod and service account names are DNS-1123 subdomains, and a pod UID is what kubelet
 * sees: the API server's UUID or the 32-hex hash kubelet gives a static pod. Pure; no state;
 * any thread. */
#pragma once

#include <stdbool.h>

#define K8S_DNS1123_LABEL_MAX 63
#define K8S_DNS1123_SUBDOMAIN_MAX 253

/* [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1-63 bytes. */
bool k8s_dns1123_label(const char *s);
/* DNS-1123 labels joined by '.', 1-253 bytes in all (a label of a subdomain has no limit of its
 * own beyond the total, as in apimachinery's IsDNS1123Subdomain). */
bool k8s_dns1123_subdomain(const char *s);

bool k8s_namespace_valid(const char *s);       /* DNS-1123 label */
bool k8s_pod_name_valid(const char *s);        /* DNS-1123 subdomain */
bool k8s_service_account_valid(const char *s); /* DNS-1123 subdomain */
/* A lowercase UUID (8-4-4-4-12 hex digits, as the API server generates them) or 32 lowercase hex
 * digits (kubelet's md5 UID for a static pod whose manifest sets none). Either can be a path
 * component and a selector value as it is. */
bool k8s_pod_uid_valid(const char *s);
