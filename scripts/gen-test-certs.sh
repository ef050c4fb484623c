#!/usr/bin/env bash
# Generates a small private PKI for Strata's TLS and mutual TLS with openssl
# (docs/security.md). For tests, local experiments and a first Kubernetes
# Secret; for production prefer your organisation's CA or cert-manager.
#
#   scripts/gen-test-certs.sh OUT_DIR [SERVER_SANS] [DAYS]
#
# SERVER_SANS: the server certificate's subjectAltName entries, default
#   "DNS:localhost,IP:127.0.0.1". Clients check the name they dial against
#   these. Keep DNS:localhost when the TLS Kubernetes overlay's probes are
#   used (they dial 127.0.0.1 with --tls_server_name=localhost).
# DAYS: validity of every certificate (default 365).
#
# Writes (keys are unencrypted EC P-256, PEM, mode 0600):
#   ca.crt ca.key                 the CA (--tls_client_ca on the server,
#                                 --tls_ca on clients)
#   server.crt server.key         serving certificate, signed by ca; usable
#                                 as a client certificate too (EKU serverAuth
#                                 and clientAuth), so probes can present it
#   client.crt client.key         a client certificate (CN=strata-client)
#   other-ca.crt other-ca.key     a second, unrelated CA
#   other-client.crt other-client.key
#                                 a client certificate from other-ca (must
#                                 be refused by a server trusting ca only)
#   other-server.crt other-server.key
#                                 a serving certificate from other-ca with
#                                 the same SANs (for rotation tests)
# Existing files in OUT_DIR are overwritten.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  echo "usage: $0 OUT_DIR [SERVER_SANS] [DAYS]" >&2
  exit 2
fi
out="$1"
sans="${2:-DNS:localhost,IP:127.0.0.1}"
days="${3:-365}"
command -v openssl >/dev/null 2>&1 || { echo "$0: openssl is not installed (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$out"
cd "$out"
umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ca NAME CN
ca() {
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -noenc -keyout "$1.key" -out "$1.crt" -days "$days" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; exit 1; }
}

# leaf NAME CA CN EXTENSIONS
leaf() {
  printf '%s\n' "$4" >"$tmp/$1.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -noenc \
    -keyout "$1.key" -out "$tmp/$1.csr" -subj "/CN=$3" 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; exit 1; }
  openssl x509 -req -in "$tmp/$1.csr" -CA "$2.crt" -CAkey "$2.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -out "$1.crt" \
    -extfile "$tmp/$1.ext" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
}

server_ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$sans"
client_ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

ca ca "Strata Test CA"
ca other-ca "Other Test CA"
leaf server ca strata-server "$server_ext"
leaf client ca strata-client "$client_ext"
leaf other-client other-ca other-client "$client_ext"
leaf other-server other-ca strata-server "$server_ext"
# Certificates are public; keys stay 0600.
chmod 0644 ./*.crt
echo "gen-test-certs: wrote CA, server, client and other-CA certificates to $out (SANs $sans, $days days)"
