# Existing-hosts preflight, on the workstation: log in to every node at once over SSH, run
# existing_check there as root, and report every problem of every node together, before any step
# changes anything on any of them. Stdin: the SSH private key (unless MESHLAB_SSH_AGENT=true).
# Every connection is checked against the node's pinned host key (MESHLAB_HOST_KEYS, "NAME TYPE BASE64"
# a line) and the bastion's (MESHLAB_BASTION_HOST_KEY).
# Inputs: MESHLAB_NODES (one "NAME IP ROLE CPUS MEMORY_MIB DISK_GIB" a line), MESHLAB_SSH_USER,
# MESHLAB_SSH_AGENT, MESHLAB_BASTION ("USER@HOST:PORT" or empty), MESHLAB_NODE_CHECK (the
# rendered existing_check script), and the check's own inputs: MESHLAB_INTERFACE, MESHLAB_GUEST_ARCH,
# MESHLAB_SUPPORTED_OS, MESHLAB_MEMORY_PERCENT, MESHLAB_SERVER_PORTS, MESHLAB_AGENT_PORTS,
# MESHLAB_TIME_SYNC_TIMEOUT_SECONDS, MESHLAB_FREE_ADDRESSES (checked from the first node only).
require_env MESHLAB_NODES MESHLAB_HOST_KEYS MESHLAB_SSH_USER MESHLAB_NODE_CHECK MESHLAB_INTERFACE MESHLAB_GUEST_ARCH \
  MESHLAB_SUPPORTED_OS MESHLAB_MEMORY_PERCENT MESHLAB_SERVER_PORTS MESHLAB_AGENT_PORTS \
  MESHLAB_TIME_SYNC_TIMEOUT_SECONDS

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ssh_options=() login=""
login_options "$work"
# Every node's pinned host key: its connection is refused if it presents another.
while read -r name key; do
  [ -n "$name" ] || continue
  printf '%s\n' "$key" >"$work/$name.pinned"
done <<<"${MESHLAB_HOST_KEYS:-}"

# Sudo first: without passwordless sudo nothing else can be checked (or done later). The line runs
# on the node, so its expansions are the node's.
# shellcheck disable=SC2016
remote='if sudo -n true 2>/dev/null; then sudo -n bash -s; else printf "problem\tsudo\ta password prompt for %s\tpasswordless sudo (NOPASSWD) for it\n" "$(id -un)"; fi'

# bounded SECONDS COMMAND...: COMMAND, ended after SECONDS where coreutils' timeout exists (not on
# macOS, where ssh's keepalives above still end a connection that stops answering).
bounded() {
  local seconds=$1
  shift
  if command -v timeout >/dev/null 2>&1; then
    timeout "$seconds" "$@"
  else
    "$@"
  fi
}

names=()
while read -r name ip role cpus memory_mib disk_gib; do
  [ -n "$name" ] || continue
  names+=("$name")
  printf '%s\n' "$ip" >"$work/$name.ip"
  [ -s "$work/$name.pinned" ] || die "no pinned SSH host key for $name in MESHLAB_HOST_KEYS"
  pinned=$(cat "$work/$name.pinned")
  known_hosts_line "$ip" 22 "$pinned" >"$work/$name.known_hosts"
  ports=$MESHLAB_AGENT_PORTS
  [ "$role" != server ] || ports=$MESHLAB_SERVER_PORTS
  # The addresses meshlab will announce are looked for once, from the first node (a server).
  free=""
  [ "${#names[@]}" -ne 1 ] || free=${MESHLAB_FREE_ADDRESSES:-}
  {
    for input in "NODE_NAME=$name" "NODE_IP=$ip" "ROLE=$role" "CPUS=$cpus" "MEMORY_MIB=$memory_mib" \
      "DISK_GIB=$disk_gib" "PORTS=$ports" "INTERFACE=$MESHLAB_INTERFACE" "GUEST_ARCH=$MESHLAB_GUEST_ARCH" \
      "SUPPORTED_OS=$MESHLAB_SUPPORTED_OS" "MEMORY_PERCENT=$MESHLAB_MEMORY_PERCENT" \
      "TIME_SYNC_TIMEOUT_SECONDS=$MESHLAB_TIME_SYNC_TIMEOUT_SECONDS" "FREE_ADDRESSES=$free"; do
      printf 'export MESHLAB_%s=%q\n' "${input%%=*}" "${input#*=}"
    done
    printf '%s\n' "$MESHLAB_NODE_CHECK"
  } >"$work/$name.sh"
  # Every node at once: a lab of seven is no slower than one.
  (
    status=0
    bounded 300 ssh "${ssh_options[@]}" -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$work/$name.known_hosts" \
      "$MESHLAB_SSH_USER@$ip" "$remote" <"$work/$name.sh" \
      >"$work/$name.out" 2>"$work/$name.err" || status=$?
    printf '%s\n' "$status" >"$work/$name.status"
  ) &
done <<<"$MESHLAB_NODES"
wait

problems=() facts=() failing=0
for name in "${names[@]}"; do
  ip=$(cat "$work/$name.ip")
  status=$(cat "$work/$name.status")
  before=${#problems[@]}
  if [ "$status" = 255 ] && grep -q 'Host key verification failed' "$work/$name.err"; then
    pinned=$(cat "$work/$name.pinned")
    problems+=("$name ($ip) host key: found $(presented_key "$work/$name.err"); needs the pinned ${pinned%% *} key $(fingerprint "$pinned") (see 'SSH host keys' in docs/hosts.md to accept a new one deliberately)")
  elif [ "$status" = 255 ] || [ "$status" = 124 ]; then
    why=$(grep -v '^\s*$' "$work/$name.err" | tail -n 1)
    [ "$status" != 124 ] || why="no answer within 300 s"
    problems+=("$name ($ip) ssh: found no login as $MESHLAB_SSH_USER (${why:-ssh exit $status}); needs key login with $login")
  else
    while IFS=$'\t' read -r kind check found needed; do
      case "$kind" in
        problem) problems+=("$name ($ip) $check: found $found; needs $needed") ;;
        fact) facts+=("$name ($ip): $check") ;;
      esac
    done <"$work/$name.out"
    if [ "$status" != 0 ]; then
      problems+=("$name ($ip) check: the check itself failed (exit $status): $(tail -n 1 "$work/$name.err")")
    fi
  fi
  [ "${#problems[@]}" -eq "$before" ] || failing=$((failing + 1))
done

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'meshlab existing-hosts preflight found %d problem(s) on %d of %d node(s); nothing was changed on any:\n' \
    "${#problems[@]}" "$failing" "${#names[@]}" >&2
  printf '  - %s\n' "${problems[@]}" >&2
  exit 1
fi
printf '%s\n' "${facts[@]}"
