# Existing hosts, on the workstation: the SSH host key one node (or the bastion) is pinned to, printed
# as "TYPE BASE64". Learned on first contact (trust on first use: check it out of band, or give it in
# the stack instead); every later run checks that the host still presents the key it is pinned to
# (PULUMI_COMMAND_STDOUT, this step's last output) and refuses another, before anything logs in.
# Inputs: MESHLAB_KEY_OF ("node" or "bastion"), MESHLAB_NAME, MESHLAB_ADDRESS (the node's IP, or the
# bastion's HOST:PORT), MESHLAB_HOST_KEY_ALGORITHMS (the order the command provider asks in), and for a
# node the login's: MESHLAB_SSH_USER, MESHLAB_SSH_AGENT, MESHLAB_BASTION, MESHLAB_BASTION_HOST_KEY.
# Stdin: the SSH private key (a node, unless MESHLAB_SSH_AGENT=true).
require_env MESHLAB_KEY_OF MESHLAB_NAME MESHLAB_ADDRESS MESHLAB_HOST_KEY_ALGORITHMS

host=${MESHLAB_ADDRESS%:*} port=22
[ "$MESHLAB_KEY_OF" = node ] || port=${MESHLAB_ADDRESS##*:}
what="$MESHLAB_NAME ($MESHLAB_ADDRESS)"
accept="add $MESHLAB_NAME=KEY to meshlab:sshHostKeys (pulumi config set --path 'meshlab:sshHostKeys[N]' '$MESHLAB_NAME=TYPE BASE64', N the next free index)"
if [ "$MESHLAB_KEY_OF" = bastion ]; then
  what="the bastion $MESHLAB_ADDRESS"
  accept="set meshlab:sshBastionHostKey (pulumi config set meshlab:sshBastionHostKey 'TYPE BASE64')"
fi
pinned=$(printf '%s\n' "${PULUMI_COMMAND_STDOUT:-}" | grep -E '^[a-z0-9-]+ [A-Za-z0-9+/=]+$' | tail -n 1 || true)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "$MESHLAB_KEY_OF" = bastion ]; then
  # The bastion is reached directly: ssh-keyscan reads its keys without logging in, and the first in
  # the provider's order is what its connections are shown.
  command -v ssh-keyscan >/dev/null 2>&1 || die "ssh-keyscan is not on PATH (apt install openssh-client)"
  ssh-keyscan -T 10 -p "$port" "$host" >"$work/scan" 2>"$work/err" || true
  presented=""
  for type in ${MESHLAB_HOST_KEY_ALGORITHMS//,/ }; do
    [ "$type" != rsa-sha2-256 ] && [ "$type" != rsa-sha2-512 ] || type=ssh-rsa
    presented=$(awk -v type="$type" '$2 == type { print $2 " " $3; exit }' "$work/scan")
    [ -z "$presented" ] || break
  done
  [ -n "$presented" ] || die "$what: no SSH host key could be read (ssh-keyscan: $(tail -n 1 "$work/err"))"
  if [ -n "$pinned" ] && [ "$presented" != "$pinned" ]; then
    die "$what presents a different SSH host key than the one meshlab pinned on first contact; nothing was changed anywhere.
  pinned:    ${pinned%% *} $(fingerprint "$pinned")
  presented: ${presented%% *} $(fingerprint "$presented")
Someone may be intercepting the connection. If the bastion was reinstalled or its keys rotated, check the new key on the bastion itself (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then accept it deliberately: $accept."
  fi
  printf '%s\n' "$presented"
  exit 0
fi

ssh_options=()
login_options "$work"
: >"$work/known_hosts"
checking=(-o StrictHostKeyChecking=yes)
if [ -n "$pinned" ]; then
  known_hosts_line "$host" "$port" "$pinned" >"$work/known_hosts"
else
  # First contact: OpenSSH records the key the host shows when asked in the provider's order.
  checking=(-o StrictHostKeyChecking=accept-new)
fi
status=0
ssh "${ssh_options[@]}" "${checking[@]}" -o "UserKnownHostsFile=$work/known_hosts" \
  "${MESHLAB_SSH_USER:-root}@$host" true </dev/null >/dev/null 2>"$work/err" || status=$?
if [ -n "$pinned" ]; then
  if grep -q 'Host key verification failed' "$work/err"; then
    die "$what presents $(presented_key "$work/err"), not the ${pinned%% *} key $(fingerprint "$pinned") meshlab pinned on first contact; nothing was changed on it.
Someone may be intercepting the connection. If the machine was reinstalled or its keys rotated, check its new key on the machine itself (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then accept it deliberately: $accept."
  fi
  printf '%s\n' "$pinned"
  exit 0
fi
# The key is recorded during the key exchange, before the login: a login problem is the preflight's.
learned=$(awk 'NF >= 3 { print $2 " " $3; exit }' "$work/known_hosts")
[ -n "$learned" ] || die "$what: no SSH host key could be read (ssh exit $status: $(grep -v '^\s*$' "$work/err" | tail -n 1))"
printf '%s\n' "$learned"
