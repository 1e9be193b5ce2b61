# Existing-hosts preflight, on the workstation: log in to every node at once over SSH, run
# existing_check there as root, and report every problem of every node together, before any step
# changes anything on any of them. Stdin: the SSH private key (unless MESHLAB_SSH_AGENT=true).
# Inputs: MESHLAB_NODES (one "NAME IP ROLE CPUS MEMORY_MIB DISK_GIB" a line), MESHLAB_SSH_USER,
# MESHLAB_SSH_AGENT, MESHLAB_BASTION ("USER@HOST:PORT" or empty), MESHLAB_NODE_CHECK (the
# rendered existing_check script), and the check's own inputs: MESHLAB_INTERFACE, MESHLAB_GUEST_ARCH,
# MESHLAB_SUPPORTED_OS, MESHLAB_MEMORY_PERCENT, MESHLAB_SERVER_PORTS, MESHLAB_AGENT_PORTS,
# MESHLAB_TIME_SYNC_TIMEOUT_SECONDS, MESHLAB_FREE_ADDRESSES (checked from the first node only).
require_env MESHLAB_NODES MESHLAB_SSH_USER MESHLAB_NODE_CHECK MESHLAB_INTERFACE MESHLAB_GUEST_ARCH \
  MESHLAB_SUPPORTED_OS MESHLAB_MEMORY_PERCENT MESHLAB_SERVER_PORTS MESHLAB_AGENT_PORTS \
  MESHLAB_TIME_SYNC_TIMEOUT_SECONDS

command -v ssh >/dev/null 2>&1 || die "ssh is not on PATH: the existing hosts are reached over SSH (apt install openssh-client)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Host keys are not pinned, as the command provider's own SSH connections do not pin them either.
ssh_options=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
  -o ConnectTimeout=10 -o ServerAliveInterval=10 -o ServerAliveCountMax=3)
login="meshlab:sshPrivateKey"
if [ "${MESHLAB_SSH_AGENT:-false}" = true ]; then
  login="your ssh-agent (meshlab:sshAgent)"
  [ -n "${SSH_AUTH_SOCK:-}" ] ||
    die "meshlab:sshAgent is true but SSH_AUTH_SOCK is not set: start ssh-agent and ssh-add the nodes' key"
else
  (umask 077 && cat >"$work/key")
  grep -q 'PRIVATE KEY-----' "$work/key" ||
    die "meshlab:sshPrivateKey is not a private key (no '-----BEGIN ... PRIVATE KEY-----' line)"
  ssh_options+=(-o IdentitiesOnly=yes -i "$work/key")
fi
if [ -n "${MESHLAB_BASTION:-}" ]; then
  bastion=${MESHLAB_BASTION%:*} bastion_port=${MESHLAB_BASTION##*:}
  # printf %q: the jump's own ssh line is parsed by a shell.
  ssh_options+=(-o "ProxyCommand=ssh $(printf '%q ' "${ssh_options[@]}")-p $bastion_port -W %h:%p $bastion")
fi

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
    bounded 300 ssh "${ssh_options[@]}" "$MESHLAB_SSH_USER@$ip" "$remote" <"$work/$name.sh" \
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
  if [ "$status" = 255 ] || [ "$status" = 124 ]; then
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
