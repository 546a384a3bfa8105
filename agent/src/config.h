/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration of `duet-agent run` (DESIGN.md "duet-agent"), loaded
 * and fully validated in one call: after ag_config_load() succeeds every
 * field is present (defaults applied) and every cross-field rule holds, so
 * the daemon never re-checks. Member names are the JSON keys, except the
 * subject, which lands directly in a struct duet_subject (C -> c, ST -> st,
 * L -> l, O -> o, OU -> ou, emailAddress -> email; cn stays NULL, the CN
 * comes from cn_template). Durations are milliseconds.
 */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duet/err.h"
#include "duet/pki.h"

/* Largest configuration file read. */
#define AG_CONFIG_MAX_SIZE (1024 * 1024)

enum ag_issuer_type {
    AG_ISSUER_LOCAL = 1,
    AG_ISSUER_CFSSL,
};

/*
 * Keys of the other issuer type are refused at load. NULL strings were not
 * configured.
 */
struct ag_issuer_cfg {
    enum ag_issuer_type type;
    /* local: ca_cert and ca_key required; ca_bundle (published as ca.crt,
     * e.g. old and new roots during a CA rotation) defaults to ca_cert. */
    char *ca_cert;
    char *ca_key;
    char *ca_key_passphrase_file; /* NULL: the CA key is not encrypted */
    /* cfssl: url and ca_bundle required. */
    char *url;            /* http:// or https://, checked */
    char *profile;        /* NULL: CFSSL's default profile */
    char *server_profile; /* for identities with "server": true; NULL: profile */
    char *auth_key_file;  /* NULL: /sign without authentication */
    char *ca_bundle;      /* roots issued certificates must chain to */
    char *server_ca;      /* verifies CFSSL's HTTPS certificate; set to ca_bundle when absent */
    char *client_cert;    /* both or neither of client_cert, client_key */
    char *client_key;
    int64_t timeout;      /* ms, default 10 s */
    bool insecure_http;   /* allow an http:// url (warned at every start) */
    int64_t max_backdate; /* ms, default 6 min: how far notBefore may precede issuance */
};

struct ag_identity_cfg {
    char *product;               /* [A-Za-z0-9-], unique */
    enum duet_key_type key_type; /* the top-level key_type when absent */
    int64_t validity;            /* ms; the top-level validity when absent */
    bool server;                 /* also serverAuth, with DNS/IP SANs */
    char **dns;                  /* only with server */
    size_t n_dns;
    char **ip; /* textual IPv4/IPv6, checked; only with server */
    size_t n_ip;
};

/* One (namespace, ServiceAccount) and the products its pods may hold. */
struct ag_csi_binding {
    char *namespace;       /* a Kubernetes namespace name (DNS label) */
    char *service_account; /* a ServiceAccount name (DNS subdomain) */
    char **products;       /* each one an identities[].product; at least one */
    size_t n_products;
};

/*
 * The "csi" section: present, the agent is a CSI node plugin and hands
 * identities to pods (csi.c); absent, it publishes folders (output_dir).
 */
struct ag_csi_cfg {
    char *driver;   /* CSI driver name, DNS-like; default "duet.example.org" */
    char *endpoint; /* CSI socket path; default /var/lib/kubelet/plugins/<driver>/csi.sock */
    char
        *registration_dir; /* kubelet's plugin watcher; default /var/lib/kubelet/plugins_registry */
    char *state_dir;       /* the agent's tmpfs of volumes; default /var/lib/duet/csi */
    char *pods_dir;        /* kubelet's pods folder: every target lies below it */
    char *node_id;         /* default: $NODE_NAME, else the host name */
    int64_t max_volumes;   /* volumes on this node; default 512 */
    int64_t tmpfs_size_mb; /* size of the state tmpfs; default 64 */
    int64_t key_pool;      /* keys ready per key type (keypool.h); 0: none; default 110 */
    struct ag_csi_binding *bindings; /* may be empty: then every pod is refused */
    size_t n_bindings;
};

struct ag_config {
    char *env;          /* [A-Za-z0-9-] */
    char *trust_domain; /* SPIFFE trust domain: [a-z0-9._-] */
    char *output_dir;   /* absolute; required without csi, unused with it */
    struct duet_subject subject;
    char *cn_template; /* contains {product}; {env} optional; default "{env}.{product}.{env}" */
    enum duet_key_type key_type; /* default rsa2048 */
    int64_t validity;            /* ms, default 365d */
    int64_t renew_before;        /* ms; 0: not set (random 70-90% of the lifetime) */
    struct ag_issuer_cfg issuer;
    struct ag_identity_cfg *identities; /* at least one */
    size_t n_identities;
    int64_t key_group;      /* gid for tls.key (mode 0640); -1: not set (mode 0600) */
    char *status_listen;    /* "host:port", "[v6]:port"; NULL: no status listener */
    char *log_level;        /* error|warn|info|debug, checked; NULL: not set */
    struct ag_csi_cfg *csi; /* NULL: folder publishing */
};

/*
 * Read and validate `path`. On success *out is owned by the caller (release
 * with ag_config_free). On failure *out is NULL and eb holds one line naming
 * the file and the field ("agent.json: identities[1].key_type: unknown key
 * type \"rsa999\""); the code is of class CONFIG (exit status 2) except for
 * I/O and memory failures.
 */
int ag_config_load(const char *path, struct ag_config **out,
                   struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Same from JSON text (tests, fuzzing); messages carry no file name. */
int ag_config_parse(const char *text, size_t len, struct ag_config **out,
                    struct duet_errbuf *eb) DUET_MUST_CHECK;
void ag_config_free(struct ag_config *c);

#endif
