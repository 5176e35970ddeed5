#!/bin/sh
# The main job in one go: the tpmcard service on the in-process TPM
# simulator, and a card's life through the CLI. Usage: demo.sh path/to/tpmcard
set -eu
tpmcard=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$(mktemp -d "${TMPDIR:-/tmp}/tpmcard-demo.XXXXXX")
export TPMCARD_SOCKET="$work/tpmcard.sock"
service_pid=
cleanup() {
	[ -n "$service_pid" ] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n==> %s\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s#$tpmcard#tpmcard#"; "$@"; }
# expect_fail runs a command that must fail and shows its message.
expect_fail() {
	printf '$ %s\n' "$*" | sed "s#$tpmcard#tpmcard#"
	if "$@"; then echo "demo: that should have failed" >&2; exit 1; fi
}

say "start the service on the in-process TPM simulator (its log: $work/service.log)"
"$tpmcard" service run --tpm sim --state-dir "$work/state" --socket "$TPMCARD_SOCKET" \
	--admin-group "$(id -gn)" --log-format console --config /dev/null >"$work/service.log" 2>&1 &
service_pid=$!
i=0
until [ -S "$TPMCARD_SOCKET" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/service.log"; exit 1; }
	sleep 0.1
done
run "$tpmcard" service status

say "create a card: default PIN 12345678, a PUK generated and shown once"
run "$tpmcard" card create --label "demo card" --pin-tries 3 --json | tee "$work/card.json"
puk=$(sed -n 's/.*"puk": "\(.*\)".*/\1/p' "$work/card.json")

say "generate an ECDSA P-256 key inside the TPM"
run "$tpmcard" key generate --alg ecdsa-p256 --label sign-in
run "$tpmcard" key export >"$work/key.pem"
cat "$work/key.pem"

say "the card refuses to sign until the default PIN is changed"
echo "challenge from the server $(date +%s)" >"$work/challenge"
echo 12345678 | expect_fail "$tpmcard" sign --pin-stdin --in "$work/challenge" --out "$work/sig"

say "change the PIN, sign the challenge, verify the signature with the exported key"
printf '12345678\nmy new PIN 2468\n' | run "$tpmcard" pin change --pin-stdin --new-pin-stdin
echo "my new PIN 2468" | run "$tpmcard" sign --pin-stdin --in "$work/challenge" --out "$work/sig"
run openssl dgst -sha256 -verify "$work/key.pem" -signature "$work/sig" "$work/challenge"

say "wrong PINs until the TPM locks the card; then even the right PIN is refused"
for guess in 1111aaaa 2222bbbb 3333cccc; do
	echo "$guess" | expect_fail "$tpmcard" sign --pin-stdin --in "$work/challenge" --out "$work/sig"
done
echo "my new PIN 2468" | expect_fail "$tpmcard" sign --pin-stdin --in "$work/challenge" --out "$work/sig"
run "$tpmcard" card list

say "unblock with the PUK; the new PIN must be changed again before signing"
printf '%s\ntemporary 1357\n' "$puk" | run "$tpmcard" pin unblock --puk-stdin --new-pin-stdin
printf 'temporary 1357\nmy newer PIN 8642\n' | run "$tpmcard" pin change --pin-stdin --new-pin-stdin

say "sign again"
echo "my newer PIN 8642" | run "$tpmcard" sign --pin-stdin --in "$work/challenge" --out "$work/sig"
run openssl dgst -sha256 -verify "$work/key.pem" -signature "$work/sig" "$work/challenge"
run "$tpmcard" card status

say "done: the service stops and the simulator forgets everything"
