#!/usr/bin/env bash
# Throw-away certificates for trying TLS and mutual TLS on one machine or a private
# network (not for production: the CA's key sits next to the certificates).
#
#   scripts/dev-certs.sh DIR [NAME|IP ...]
#
# Writes into DIR (created; refused if it already holds a CA, so certificates already
# handed out stay valid):
#   ca.pem, ca.key          a CA, valid 10 years: what clients and pools trust (--tls-ca)
#                           and what the coordinator checks client certificates against
#                           (--tls-client-ca)
#   server.pem, server.key  the coordinator's certificate (--tls-cert, --tls-key), valid a
#                           year, for localhost, 127.0.0.1, ::1 and each NAME or IP given:
#                           clients check that the address they dial is one of these
#   client.pem, client.key  a client certificate (CN prelude-client) for mutual TLS
#                           (--tls-cert, --tls-key of the client and of pools)
# Keys are written with mode 600. Needs `openssl` (scripts/install-deps.sh).
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  [[ $# -ge 1 ]] && exit 0 || exit 2
fi
command -v openssl > /dev/null || { echo "dev-certs: needs openssl (apt-get install openssl)" >&2; exit 1; }
dir=$1; shift
if [[ -e $dir/ca.pem || -e $dir/ca.key ]]; then
  echo "dev-certs: $dir already holds a CA (ca.pem): remove it or choose another directory" >&2
  exit 2
fi

# The server's subject alternative names: a word of digits and dots or holding a
# colon is an IP address, anything else a DNS name.
sans="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in "$@"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then sans+=",IP:$name"
  elif [[ $name =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then sans+=",DNS:$name"
  else echo "dev-certs: '$name' is neither a host name nor an IP address" >&2; exit 2; fi
done

mkdir -p "$dir"
umask 077  # keys (and everything else written here) readable by their owner only
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A minimal config, so the system's openssl.cnf adds no extensions of its own.
printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n' > "$tmp/req.cnf"
serial() { echo "0x$(openssl rand -hex 16)"; }
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

openssl req -x509 -config "$tmp/req.cnf" "${newkey[@]}" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
  -days 3650 -subj "/CN=Prelude dev CA $(date -u +%Y-%m-%dT%H:%M:%SZ)" -set_serial "$(serial)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" 2> "$tmp/log" || { cat "$tmp/log" >&2; exit 1; }

sign() {  # sign NAME CN EXTENSIONS: NAME.key and NAME.pem, signed by the CA
  openssl req -new -config "$tmp/req.cnf" "${newkey[@]}" -keyout "$dir/$1.key" -out "$tmp/$1.csr" \
    -subj "/CN=$2" 2> "$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
  printf '%b' "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "$(serial)" \
    -days 365 -extfile "$tmp/$1.ext" -out "$dir/$1.pem" 2> "$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
}
common="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
common+="authorityKeyIdentifier=keyid\n"
sign server localhost "${common}extendedKeyUsage=serverAuth\nsubjectAltName=$sans\n"
sign client prelude-client "${common}extendedKeyUsage=clientAuth\n"

chmod 600 "$dir"/*.key
chmod 644 "$dir"/*.pem
echo "dev-certs: wrote $dir/{ca,server,client}.{pem,key}; the server certificate names ${sans//,/, }" >&2
