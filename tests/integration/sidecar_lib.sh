# SPDX-License-Identifier: Apache-2.0
# Helpers for the duet-sidecar integration tests (sourced). Every helper is
# prefixed sc_; every wait is bounded; only PIDs recorded in SC_PIDS are ever
# killed. Certificates come from the openssl CLI (a throwaway EC CA per run),
# published by hand in the Secret-volume layout the agent uses.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sc_setup() {
    : "${DUET_SIDECAR:?}"
    for tool in openssl curl python3; do
        command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }
    done
    t_setup sc SC_PIDS
}

# sc_wait_port PORT: until something listens on 127.0.0.1:PORT (10 s at most).
sc_wait_port() {
    local i
    for i in $(seq 1 100); do
        if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    t_fail "nothing listens on port $1"
}

# sc_ca DIR NAME: an EC P-256 root CA (DIR/NAME.key, DIR/NAME.crt) plus a
# minimal `openssl ca` database for CRLs and back-dated certificates.
sc_ca() {
    local d=$1 n=$2
    mkdir -p "$d/$n.db"
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/$n.key" 2>/dev/null
    openssl req -x509 -new -key "$d/$n.key" -sha256 -days 3650 -subj "/O=duet test/CN=$n" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$d/$n.crt" 2>/dev/null
    : >"$d/$n.db/index.txt"
    echo 1000 >"$d/$n.db/crlnumber"
    cat >"$d/$n.cnf" <<CNF
[ ca ]
default_ca = dca
[ dca ]
database = $d/$n.db/index.txt
new_certs_dir = $d/$n.db
certificate = $d/$n.crt
private_key = $d/$n.key
serial = $d/$n.db/serial
crlnumber = $d/$n.db/crlnumber
default_md = sha256
default_crl_days = 30
policy = pany
unique_subject = no
copy_extensions = copy
[ pany ]
commonName = supplied
[ ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth,serverAuth
[ srv ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
CNF
    openssl rand -hex 16 >"$d/$n.db/serial"
}

# sc_leaf DIR CA NAME CN [SAN] [START END]: key DIR/NAME.key and certificate
# DIR/NAME.crt signed by CA, for client and server use. START/END
# (YYYYMMDDHHMMSSZ) make a certificate valid in another period (`openssl ca`).
# SC_EXT=srv makes a serverAuth-only certificate (the agent's --server kind).
sc_leaf() {
    local d=$1 ca=$2 n=$3 cn=$4 san=${5:-} start=${6:-} end=${7:-}
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/$n.key" 2>/dev/null
    [ -n "$san" ] || san="URI:spiffe://example.org/dev/$n,DNS:localhost,IP:127.0.0.1"
    openssl req -new -key "$d/$n.key" -subj "/O=duet test/CN=$cn" -addext "subjectAltName=$san" \
        -out "$d/$n.csr" 2>/dev/null
    if [ -n "$start" ]; then
        openssl ca -batch -config "$d/$ca.cnf" -extensions "${SC_EXT:-ext}" -startdate "$start" -enddate "$end" \
            -in "$d/$n.csr" -out "$d/$n.crt" -notext 2>/dev/null || t_fail "openssl ca $n"
    else
        openssl ca -batch -config "$d/$ca.cnf" -extensions "${SC_EXT:-ext}" -days 30 \
            -in "$d/$n.csr" -out "$d/$n.crt" -notext 2>/dev/null || t_fail "openssl ca $n"
    fi
}

# sc_serial CERT: the serial in upper-case hex, as nginx logs $ssl_client_serial.
sc_serial() {
    openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'
}

# sc_revoke DIR CA NAME: revoke NAME and write DIR/CA.crl.
sc_revoke() {
    local d=$1 ca=$2 n=$3
    openssl ca -batch -config "$d/$ca.cnf" -revoke "$d/$n.crt" 2>/dev/null || t_fail "revoke $n"
    openssl ca -batch -config "$d/$ca.cnf" -gencrl -out "$d/$ca.crl" 2>/dev/null || t_fail "gencrl"
}

# sc_crl DIR CA: an empty CRL DIR/CA.crl.
sc_crl() {
    openssl ca -batch -config "$1/$2.cnf" -gencrl -out "$1/$2.crl" 2>/dev/null || t_fail "gencrl"
}

# sc_publish OUT KEY CRT CA: publish a set into OUT like the agent (and
# kubelet) do: a fresh ..<timestamp> folder, ..data switched with one
# rename, top-level symlinks, the old folder removed.
sc_publish() {
    local out=$1 key=$2 crt=$3 ca=$4
    local v="..$(date -u +%Y_%m_%d_%H_%M_%S).$(date +%N)"
    local old=""
    mkdir -p "$out/$v"
    cp "$key" "$out/$v/tls.key"
    cp "$crt" "$out/$v/tls.crt"
    cp "$ca" "$out/$v/ca.crt"
    chmod 600 "$out/$v/tls.key"
    [ -L "$out/..data" ] && old=$(readlink "$out/..data")
    ln -s "$v" "$out/..data_tmp"
    mv -T "$out/..data_tmp" "$out/..data"
    local f
    for f in tls.key tls.crt ca.crt; do
        [ -L "$out/$f" ] || ln -s "..data/$f" "$out/$f"
    done
    [ -n "$old" ] && rm -rf "${out:?}/$old"
    return 0
}

# sc_start NAME ARGS...: start duet-sidecar in the background, log in $T/NAME.log.
sc_start() {
    local name=$1
    shift
    "$DUET_SIDECAR" "$@" >"$T/$name.log" 2>&1 &
    SC_PID=$!
    SC_PIDS+=("$SC_PID")
}

# sc_start_bound NAME FILE TARGET ARGS...: sc_start, in a private mount
# namespace where FILE is bound over TARGET (e.g. /etc/hosts or
# /etc/resolv.conf). Needs root and unshare.
sc_start_bound() {
    local name=$1 file=$2 target=$3
    shift 3
    unshare -m bash -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' _ "$file" "$target" \
        "$DUET_SIDECAR" "$@" >"$T/$name.log" 2>&1 &
    SC_PID=$!
    SC_PIDS+=("$SC_PID")
}

# sc_nginx NAME PORT CERT KEY CLIENT_CA: TLS server demanding a client
# certificate, logging "$ssl_client_serial" per request to $T/NAME.access.
sc_nginx() {
    local name=$1 port=$2 crt=$3 key=$4 ca=$5
    mkdir -p "$T/$name"
    cat >"$T/$name/nginx.conf" <<NGX
daemon off;
worker_processes 1;
pid $T/$name/nginx.pid;
error_log $T/$name.log info;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $T/$name;
    proxy_temp_path $T/$name;
    fastcgi_temp_path $T/$name;
    uwsgi_temp_path $T/$name;
    scgi_temp_path $T/$name;
    log_format serial '\$ssl_client_serial \$ssl_protocol \$ssl_session_reused \$request_uri';
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $crt;
        ssl_certificate_key $key;
        ssl_client_certificate $ca;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_requests 100000;
        access_log $T/$name.access serial;
        location / { return 200 "hello \$ssl_client_s_dn\n"; }
    }
}
NGX
    nginx -p "$T/$name" -c "$T/$name/nginx.conf" -e "$T/$name.log" >>"$T/$name.log" 2>&1 &
    SC_PIDS+=("$!")
    sc_wait_port "$port"
}

# sc_backend PORT: a plain HTTP backend on 127.0.0.1 (python http.server).
sc_backend() {
    mkdir -p "$T/www"
    echo "backend ok" >"$T/www/index.html"
    (cd "$T/www" && exec python3 -m http.server "$1" --bind 127.0.0.1) >"$T/backend.log" 2>&1 &
    SC_PIDS+=("$!")
    sc_wait_port "$1"
}

# sc_rss PID: VmRSS in KiB.
sc_rss() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# sc_stop PID LOG [SECONDS]: SIGTERM, wait (bounded), require exit 0 and no
# sanitizer report in LOG.
sc_stop() {
    local pid=$1 log=$2 secs=${3:-30} i rc=0
    kill -TERM "$pid"
    for i in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && t_fail "sidecar $pid still running ${secs}s after SIGTERM"
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || t_fail "sidecar exited $rc after SIGTERM"
    if grep -q "Sanitizer" "$log"; then
        t_fail "sanitizer report in $log"
    fi
}

# sc_metric PORT REGEX: the value of the first /metrics line matching REGEX.
sc_metric() {
    curl -sS "http://127.0.0.1:$1/metrics" | grep -E "$2" | head -1 | awk '{print $NF}'
}

# sc_wait_log FILE REGEX [SECONDS]: until a line of FILE matches REGEX (10 s
# at most, or SECONDS); the sidecar may log a refusal just after the client
# has seen it, and a loaded machine may be slow to start a helper.
sc_wait_log() {
    local i
    for i in $(seq 1 $((${3:-10} * 10))); do
        grep -Eq "$2" "$1" && return 0
        sleep 0.1
    done
    return 1
}

# sc_wait_metric PORT REGEX MIN: until the metric matching REGEX is >= MIN
# (5 s at most); returns 1 if it never gets there.
sc_wait_metric() {
    local i v
    for i in $(seq 1 50); do
        v=$(sc_metric "$1" "$2")
        [ -n "$v" ] && [ "$v" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}
