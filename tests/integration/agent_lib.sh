# SPDX-License-Identifier: Apache-2.0
# Helpers for the duet-agent integration tests (sourced). Every helper is
# prefixed agent_; every wait is bounded; only PIDs recorded in AGENT_PIDS
# are ever killed.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

agent_setup() {
    : "${DUET_AGENT:?}" "${DUET_BUILD:?}" "${DUET_SRC:?}"
    t_setup agent AGENT_PIDS
}

# agent_make_ca DIR: an EC P-256 root with a passphrase-encrypted PKCS#8 key,
# as the OpenSSL workflow makes (ca.crt, ca.key, ca.pass in DIR).
agent_make_ca() {
    local d=$1 cn=${2:-Test Root CA}
    mkdir -p "$d"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$d/ca.pass"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 \
        -pass "file:$d/ca.pass" -out "$d/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$d/ca.key" -passin "file:$d/ca.pass" -sha256 -days 3650 \
        -subj "/C=LK/O=Example, Inc./CN=$cn" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$d/ca.crt"
}

# agent_sign_with_ca NAME EXT SUBJECT: $T/NAME.key (EC P-256) and $T/NAME.crt
# from the CA that agent_make_ca made in $T/ca, with the extensions EXT.
agent_sign_with_ca() {
    local n=$1 ext=$2 subj=$3
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/$n.key" 2>/dev/null
    openssl req -new -key "$T/$n.key" -subj "$subj" -out "$T/$n.csr"
    printf '%s\n' "$ext" >"$T/$n.ext"
    openssl x509 -req -in "$T/$n.csr" -CA "$T/ca/ca.crt" -CAkey "$T/ca/ca.key" \
        -passin "file:$T/ca/ca.pass" -CAcreateserial -days 2 -sha256 \
        -extfile "$T/$n.ext" -out "$T/$n.crt" 2>/dev/null
}

# agent_wait SECONDS CMD...: poll CMD every 50 ms until it succeeds.
agent_wait() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    while [ "$SECONDS" -lt "$end" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    "$@" >/dev/null 2>&1
}

# Serial of a certificate file (empty if unreadable).
agent_serial() {
    openssl x509 -in "$1" -noout -serial 2>/dev/null | sed 's/serial=//'
}

# True when DIR holds a set whose key matches its certificate and whose
# certificate verifies against its ca.crt for client auth.
agent_set_ok() {
    local d=$1
    [ -f "$d/tls.key" ] && [ -f "$d/tls.crt" ] && [ -f "$d/ca.crt" ] || return 1
    openssl verify -CAfile "$d/ca.crt" -purpose sslclient "$d/tls.crt" >/dev/null 2>&1 || return 1
    [ "$(openssl pkey -in "$d/tls.key" -pubout 2>/dev/null | sha256sum)" = \
      "$(openssl x509 -in "$d/tls.crt" -noout -pubkey 2>/dev/null | sha256sum)" ]
}

# agent_set_ok_new DIR OLD_SERIAL: a good set with another serial.
agent_set_ok_new() {
    agent_set_ok "$1" && [ "$(agent_serial "$1/tls.crt")" != "$2" ]
}

# agent_start NAME CONFIG: run the agent in the background, log to $T/NAME.log.
agent_start() {
    local name=$1 cfg=$2
    "$DUET_AGENT" run --config "$cfg" >>"$T/$name.log" 2>&1 &
    AGENT_PID=$!
    AGENT_PIDS+=("$AGENT_PID")
}

# agent_stop PID: SIGTERM, and the exit status must be 0 within 10 s (a
# loaded machine, LeakSanitizer at exit); tests time what they promise.
agent_stop() {
    local pid=$1 i
    kill -TERM "$pid"
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && t_fail "agent $pid still running 10 s after SIGTERM"
    wait "$pid" || t_fail "agent $pid exited with status $? after SIGTERM"
}

# agent_metric PORT NAME LABELSUBSTR: the value of one metric line.
agent_metric() {
    curl -fsS "http://127.0.0.1:$1/metrics" | grep "^$2" | grep -F -- "$3" | awk '{print $2}' | head -1
}
